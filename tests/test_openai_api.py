"""`asr serve`'s OpenAI-style HTTP API (POST /v1/audio/transcriptions, GET /v1/models) and its
page's files: the official `openai` client gets what `asr transcribe` gives in every
response_format; bad uploads get 4xx errors in OpenAI's shape and the server serves on; an
upload beside live streams does not stall them."""
import asyncio
import json
import logging
import time

import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientSession, FormData
from websockets.asyncio.client import connect

from asr.audio import load_audio
from asr.endpoint import EndpointConfig
from asr.server import ServerConfig, StreamingServer
from asr.streaming import Recognizer
from asr.text import normalize
from asr.transcribe import transcribe
from asr.writers import to_srt, to_vtt

from conftest import REPO

TIMEOUT = 240


def serving(model, body, decoder=None, files=None, **config):
    """Start a server on a free port, run body(server, "http://127.0.0.1:PORT"), stop it."""
    async def main():
        server = StreamingServer(Recognizer(model, decoder, endpoint=EndpointConfig()), ServerConfig(port=0, **config),
                                 files)
        port = await server.start()
        try:
            return await asyncio.wait_for(body(server, f"http://127.0.0.1:{port}"), TIMEOUT)
        finally:
            await server.stop()
    return asyncio.run(main())


@pytest.fixture(scope="module")
def default_model():
    from asr.runtime import load_model
    return load_model(None)


@pytest.fixture(scope="module")
def multi_utterance_wav(tmp_path_factory, cathy_clips):
    """Three real sentences with pauses between them (several endpoints)."""
    parts = [np.zeros(4000, np.float32)]
    for path in (REPO / "asr" / "samples" / "cathy_a0046.flac", cathy_clips[3][0], cathy_clips[2][0]):
        parts += [load_audio(path), np.zeros(int(16000 * 1.4), np.float32)]
    path = tmp_path_factory.mktemp("multi") / "three.wav"
    sf.write(path, np.concatenate(parts), 16000, subtype="PCM_16")
    return path


def test_openai_client_gets_what_transcribe_gives_in_every_format(default_model, multi_utterance_wav, cathy_clips):
    """The bundled streaming model with its LM (`asr serve --model streaming`, `asr transcribe
    --model streaming`): several formats, several utterances."""
    from openai import AsyncOpenAI

    from asr.beam import decoder_for
    decoder = decoder_for(default_model)
    clips = [multi_utterance_wav, cathy_clips[5][0]]
    expected = [transcribe(default_model, p, decoder) for p in clips]

    async def body(server, url):
        client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        models = await client.models.list()
        got = []
        for path in clips:
            out = {}
            for fmt in ("json", "text", "srt", "vtt"):
                with open(path, "rb") as f:
                    out[fmt] = await client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt,
                                                                        language="en")
            with open(path, "rb") as f:
                out["verbose"] = await client.audio.transcriptions.create(
                    model=models.data[0].id, file=f, response_format="verbose_json",
                    timestamp_granularities=["word", "segment"])
            with open(path, "rb") as f:
                out["words_only"] = await client.audio.transcriptions.create(
                    model="default", file=f, response_format="verbose_json", timestamp_granularities=["word"])
            got.append(out)
        await client.close()
        return models, got
    models, got = serving(default_model, body, decoder)
    assert [m.id for m in models.data] == ["default"] and models.data[0].owned_by == "asr"
    for result, out in zip(expected, got):
        assert result.text and out["json"].text == result.text
        assert out["text"] == result.text + "\n"
        assert out["srt"] == to_srt(result) and out["vtt"] == to_vtt(result)
        v = out["verbose"]
        assert v.text == result.text and v.duration == pytest.approx(result.duration, abs=1e-3)
        assert [(w.word, w.start, w.end) for w in v.words] == \
            [(w.word, round(w.start, 3), round(w.end, 3)) for w in result.words]
        assert [(s.start, s.end, s.text) for s in v.segments] == \
            [(round(s.start, 3), round(s.end, 3), s.text) for s in result.segments]
        assert out["words_only"].segments is None and len(out["words_only"].words) == len(result.words)
    assert len(expected[0].segments) >= 3  # the multi-utterance clip really has several


def test_asr_serve_transcribes_uploads_as_asr_transcribe_does_with_the_offline_model(multi_utterance_wav):
    """`asr serve` without --model: live audio gets the streaming model, uploads the bundled
    offline model as `asr transcribe FILE` does; `model` picks either by its id, and a name the
    server does not have (`whisper-1`) gets the default, the offline one."""
    from asr.checkpoint import bundled_model_path
    from asr.cli import build_parser
    from asr.cli_options import decoder_or_exit
    from asr.cli_live import upload_models
    from asr.runtime import load_model  # what the commands load (ONNX Runtime)
    if bundled_model_path("offline") is None:
        pytest.skip("no offline model is bundled in this installation")
    args = build_parser(["serve"]).parse_args(["serve"])
    live = load_model(None)
    files = upload_models(args, Recognizer(live, decoder_or_exit(args, live), endpoint=EndpointConfig()))
    assert [f.id for f in files] == ["offline", "streaming"]
    assert not files[0].model.cfg.streaming and files[1].model is live
    offline = load_model(None, offline=True)
    expected = {"offline": transcribe(offline, multi_utterance_wav, decoder_or_exit(args, offline)),
                "streaming": transcribe(live, multi_utterance_wav, decoder_or_exit(args, live))}
    assert expected["offline"].text != expected["streaming"].text  # else the test could not tell them apart

    async def body(server, url):
        out = {}
        async with ClientSession() as s:
            async with s.get(url + "/v1/models") as r:
                out["models"] = [m["id"] for m in (await r.json())["data"]]
            for name in ("whisper-1", "offline", "streaming"):
                form = FormData({"model": name, "response_format": "verbose_json",
                                 "timestamp_granularities[]": "word"})
                form.add_field("file", multi_utterance_wav.read_bytes(), filename="three.wav")
                async with s.post(url + "/v1/audio/transcriptions", data=form) as r:
                    out[name] = await r.json()
        return out
    out = serving(live, body, files[1].make_decoder, files=files)
    assert out["models"] == ["offline", "streaming"]
    for name, want in (("whisper-1", "offline"), ("offline", "offline"), ("streaming", "streaming")):
        assert out[name]["text"] == expected[want].text
        assert [(w["word"], w["start"], w["end"]) for w in out[name]["words"]] == \
            [(w.word, round(w.start, 3), round(w.end, 3)) for w in expected[want].words]


def multipart(fields: dict, file: tuple[str, bytes] | None, boundary="asrtestboundary") -> bytes:
    out = b""
    for k, v in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    if file:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file[0]}"\r\n'
                f'Content-Type: application/octet-stream\r\n\r\n').encode() + file[1] + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def raw_request(port: int, head: bytes, body: bytes, stop_after: int | None = None, wait: float = 5.0) -> bytes:
    """Send a request over a plain socket (stop_after: send that much of the body, then hang
    up, or with wait > 0 go silent); returns what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + (body if stop_after is None else body[:stop_after]))
    await writer.drain()
    if stop_after is not None and wait == 0:
        writer.transport.abort()
        return b""
    try:
        return await asyncio.wait_for(reader.read(65536), wait)  # the response's start
    except TimeoutError:
        return b"(no answer)"
    finally:
        writer.close()


def test_bad_uploads_get_openai_errors_and_the_server_serves_on(tiny_model, cathy_clips, caplog):
    path, text = cathy_clips[1]
    audio = path.read_bytes()
    expected = transcribe(tiny_model, path).text

    async def post(session, url, data, **kw):
        async with session.post(url + "/v1/audio/transcriptions", data=data, **kw) as r:
            return r.status, (await r.json()) if r.content_type == "application/json" else await r.text()

    async def body(server, url):
        port = int(url.rsplit(":", 1)[1])
        out = {}
        async with ClientSession() as s:
            def form(name="clip.flac", data=audio, **fields):
                f = FormData(default_to_multipart=True)
                for k, v in fields.items():
                    f.add_field(k, v)
                if name is not None:
                    f.add_field("file", data, filename=name)
                return f
            out["good"] = await post(s, url, form())
            out["not_audio"] = await post(s, url, form("notes.txt", b"these are not the samples you are looking for"))
            out["empty"] = await post(s, url, form("empty.wav", b""))
            out["too_big"] = await post(s, url, form("big.wav", b"\0" * (len(audio) + 1001)))
            out["no_file"] = await post(s, url, form(None, model="whisper-1"))
            out["json_body"] = await post(s, url, json.dumps({"file": "clip.flac"}),
                                          headers={"Content-Type": "application/json"})
            out["bad_format"] = await post(s, url, form(response_format="docx"))
            out["french"] = await post(s, url, form(language="fr"))
            out["granularity"] = await post(s, url, form(**{"timestamp_granularities[]": "word"}))
            out["bad_boundary"] = await post(s, url, b"--nope\r\ngarbage",
                                             headers={"Content-Type": "multipart/form-data; boundary=asr"})
            out["no_boundary"] = await post(s, url, b"x", headers={"Content-Type": "multipart/form-data"})
            async with s.get(url + "/v1/models") as r:
                out["models"] = r.status, await r.json()
            async with s.get(url + "/") as r:
                out["page"] = r.status, r.content_type, await r.text()
            async with s.get(url + "/pcm-worklet.js") as r:
                out["worklet"] = r.status, r.content_type
            async with s.get(url + "/../pyproject.toml") as r:
                out["escape"] = r.status
            async with s.get(url + "/nowhere") as r:
                out["missing"] = r.status, await r.json()
            async with s.post(url + "/", data=b"x") as r:
                out["post_page"] = r.status
        body_bytes = multipart({"model": "whisper-1"}, ("clip.flac", audio))
        head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body_bytes)}\r\n"
                f"Content-Type: multipart/form-data; boundary=asrtestboundary\r\n\r\n").encode()
        await raw_request(port, head, body_bytes, stop_after=len(body_bytes) // 2, wait=0)  # hangs up mid-upload
        out["stalled"] = await raw_request(port, head, body_bytes, stop_after=len(body_bytes) // 2, wait=10)
        # and afterwards: an upload and a live client are served as before
        async with ClientSession() as s:
            out["after"] = await post(s, url, form())
        ws_url = url.replace("http", "ws")
        async with connect(ws_url) as ws:
            await ws.send(audio_pcm(path))
            await ws.recv()
            await ws.send('{"eof" : 1}')
            out["live"] = json.loads(await ws.recv())
        for _ in range(100):
            if server.active == 0:
                break
            await asyncio.sleep(0.05)
        out["active"] = server.active
        return out
    out = serving(tiny_model, body, max_upload=len(audio) + 1000, stall_timeout=2.0)
    assert out["good"] == (200, {"text": expected}) and normalize(expected) == text  # punctuated, as transcribe writes
    for key, status, param in [("not_audio", 400, "file"), ("empty", 400, "file"), ("too_big", 413, "file"),
                               ("no_file", 400, "file"), ("json_body", 415, "file"), ("bad_format", 400, "response_format"),
                               ("french", 400, "language"), ("granularity", 400, "timestamp_granularities"),
                               ("bad_boundary", 400, None), ("no_boundary", 400, None)]:
        got_status, err = out[key]
        assert got_status == status, (key, out[key])
        assert set(err) == {"error"} and set(err["error"]) == {"message", "type", "param", "code"}, key
        assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == param, (key, err)
    assert out["not_audio"][1]["error"]["message"].startswith("notes.txt: ")
    assert out["models"] == (200, {"object": "list", "data": [
        {"id": "tiny_uni", "object": "model", "created": out["models"][1]["data"][0]["created"], "owned_by": "asr"}]})
    assert out["page"][0] == 200 and out["page"][1] == "text/html" and 'id="start"' in out["page"][2]
    assert out["worklet"] == (200, "text/javascript")
    assert out["escape"] == 404 and out["missing"][0] == 404 and out["post_page"] == 405
    assert out["stalled"].startswith(b"HTTP/1.1 408")
    assert out["after"] == (200, {"text": expected})
    assert out["live"]["text"] == normalize(expected)  # the Vosk protocol: lower case, no marks, unless asked
    assert out["active"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback in the log


def audio_pcm(path) -> bytes:
    data, rate = sf.read(path, dtype="int16")
    assert rate == 16000
    return data.astype("<i2").tobytes()


def test_an_upload_does_not_stall_twenty_live_streams(tiny_model, cathy_clips, tmp_path):
    """20 clients stream in real time (a 100 ms chunk every 100 ms) while a long file is
    transcribed: the upload is decoded off the event loop, so every live stream keeps getting
    its replies while it runs (were it decoded on the loop, they would all wait for the whole
    decode). The latency figures: benchmarks/live.py upload."""
    long = tmp_path / "long.wav"
    # 38 min: long enough to outlast three live replies even on the fast runtime (12 min took 0.44 s)
    x = np.concatenate([np.concatenate([load_audio(p), np.zeros(8000, np.float32)]) for p, _ in cathy_clips] * 72)
    sf.write(long, x, 16000, subtype="PCM_16")
    pcms = [audio_pcm(p) for p, _ in cathy_clips]
    chunk = 3200

    async def live(url, pcm, log):
        async with connect(url) as ws:
            await ws.send('{"config": {"sample_rate": 16000}}')
            i = 0
            while True:
                sent = time.perf_counter()
                await ws.send(pcm[i % len(pcm): i % len(pcm) + chunk] or b"\0\0")
                await ws.recv()
                log.append((sent, time.perf_counter() - sent))
                i += chunk
                await asyncio.sleep(max(0.0, sent + 0.1 - time.perf_counter()))

    async def body(server, url):
        ws_url = url.replace("http", "ws")
        logs = [[] for _ in range(20)]
        streams = [asyncio.create_task(live(ws_url, pcms[i % 8], logs[i])) for i in range(20)]
        await asyncio.sleep(2.0)  # the streams are running
        async with ClientSession() as s:
            form = FormData()
            form.add_field("file", long.read_bytes(), filename="long.wav")
            up0 = time.perf_counter()
            async with s.post(url + "/v1/audio/transcriptions", data=form) as r:
                status, text = r.status, (await r.json())["text"]
            up1 = time.perf_counter()
        await asyncio.sleep(0.5)
        for t in streams:
            t.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        return logs, (up0, up1), status, text
    logs, (up0, up1), status, text = serving(tiny_model, body, max_upload=1 << 27)
    assert status == 200 and len(text.split()) > 3000
    upload_s = up1 - up0
    assert upload_s > 0.8, upload_s  # long enough to tell (3 replies a stream need 0.3 s)
    during = [[lat for sent, lat in log if up0 <= sent <= up1 - 0.3] for log in logs]
    assert all(len(d) >= 3 for d in during), [len(d) for d in during]  # every stream was answered meanwhile
    worst = max(max(d) for d in during)
    assert worst < 0.5 * upload_s, (worst, upload_s)


def test_stream_true_sends_text_deltas_while_the_file_is_still_recognised(default_model, multi_utterance_wav,
                                                                         monkeypatch):
    """`stream=True` in the openai client: transcript.text.delta events, each utterance's text as soon
    as it is recognised, then transcript.text.done with the whole text. The recogniser is held after
    its first utterance until the client has that utterance's delta: were the deltas sent only at the
    end, this would never happen."""
    import threading

    from openai import AsyncOpenAI

    from asr import openai_api
    from asr.beam import decoder_for
    decoder = decoder_for(default_model)
    expected = transcribe(default_model, multi_utterance_wav, decoder)
    got_first = threading.Event()
    held = []
    real = openai_api.transcribe

    def held_after_first_utterance(*args, on_words=None, **kw):
        def hook(words):
            on_words(words)
            if not held:
                held.append(got_first.wait(60))  # the client has the first delta before the rest is recognised
        return real(*args, on_words=hook if on_words else None, **kw)
    monkeypatch.setattr(openai_api, "transcribe", held_after_first_utterance)

    async def body(server, url):
        client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        events = []
        with open(multi_utterance_wav, "rb") as f:
            stream = await client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
            async for event in stream:
                events.append(event)
                got_first.set()
        with open(multi_utterance_wav, "rb") as f:
            whole = await client.audio.transcriptions.create(model="whisper-1", file=f)
        await client.close()
        return events, whole
    events, whole = serving(default_model, body, decoder)
    assert held == [True]
    assert [e.type for e in events] == ["transcript.text.delta"] * (len(events) - 1) + ["transcript.text.done"]
    assert len(events) >= 4  # three utterances, three deltas
    done = events[-1].text
    assert "".join(e.delta for e in events[:-1]) == done
    assert normalize(done) == normalize(expected.text) == normalize(whole.text)
    assert done[0].isupper() and done.endswith((".", "?"))  # each utterance punctuated


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client marks translations deprecated
def test_translations_and_get_answer_errors_the_openai_client_shows(tiny_model, cathy_clips):
    import openai
    from openai import AsyncOpenAI

    async def body(server, url):
        client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        out = {}
        with open(cathy_clips[0][0], "rb") as f:
            try:
                await client.audio.translations.create(model="whisper-1", file=f)
            except openai.APIStatusError as err:
                out["translate"] = err
        try:
            await client.get("/audio/transcriptions", cast_to=object)
        except openai.APIStatusError as err:
            out["get"] = err
        with open(cathy_clips[0][0], "rb") as f:
            out["after"] = await client.audio.transcriptions.create(model="whisper-1", file=f)
        await client.close()
        return out
    out = serving(tiny_model, body)
    assert isinstance(out["translate"], openai.BadRequestError)
    assert out["translate"].body["message"].startswith("translation is not supported: English only")
    assert out["get"].status_code == 405 and out["get"].response.headers["Allow"] == "POST"
    assert out["get"].body["message"].startswith("use POST") and out["get"].body["type"] == "invalid_request_error"
    assert out["after"].text  # the server serves on


def test_prompt_words_are_favoured_as_hotwords(default_model):
    """OpenAI's `prompt`: words to expect. The bundled model mishears the sample's "girl faced";
    given a prompt that names them, it hears them."""
    from openai import AsyncOpenAI

    from asr.beam import decoder_for
    from asr.openai_api import prompt_hotwords
    assert prompt_hotwords("A story: the girl faced him, with SUDDEN fear. The girl!") == \
        ["story", "girl", "faced", "him", "sudden", "fear"]
    sample = REPO / "asr" / "samples" / "cathy_a0046.flac"

    async def body(server, url):
        client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        out = {}
        for prompt in ("", "The girl faced him."):
            with open(sample, "rb") as f:
                out[prompt] = (await client.audio.transcriptions.create(model="whisper-1", file=f, prompt=prompt)).text
        await client.close()
        return out
    out = serving(default_model, body, decoder_for(default_model))
    assert "girl faced" not in normalize(out[""])
    assert "girl faced him" in normalize(out["The girl faced him."])


def test_verbose_json_words_only_with_word_granularity(tiny_model, cathy_clips):
    """timestamp_granularities[]: segment (the default), word, or both, through the openai client."""
    from openai import AsyncOpenAI

    async def body(server, url):
        client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        out = {}
        for g in (None, ["segment"], ["word"], ["word", "segment"]):
            with open(cathy_clips[0][0], "rb") as f:
                kw = {"timestamp_granularities": g} if g else {}
                out[str(g)] = await client.audio.transcriptions.create(model="whisper-1", file=f,
                                                                       response_format="verbose_json", **kw)
        await client.close()
        return out
    out = serving(tiny_model, body)
    assert out["None"].segments and out["None"].words is None
    assert out["['segment']"].segments and out["['segment']"].words is None
    assert out["['word']"].words and out["['word']"].segments is None
    both = out["['word', 'segment']"]
    assert both.words and both.segments and " ".join(w.word for w in both.words) == both.text
