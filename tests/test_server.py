"""`asr serve`: vosk-server's protocol over WebSocket, many clients batched through one model.

Clients here speak exactly as vosk-server's own test client does (config, binary PCM chunks
each answered by one reply, '{"eof" : 1}'), in one event loop with the server."""
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asr.audio import load_audio
from asr.server import ServerConfig, StreamingServer
from asr.streaming import Recognizer
from asr.transcribe import transcribe

from conftest import REPO

TIMEOUT = 60  # seconds; no test here should come near it


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def file_pcm(path) -> tuple[bytes, int]:
    data, rate = sf.read(path, dtype="int16")
    return data.astype("<i2").tobytes(), rate


def run_with_server(model, client_main, **config):
    """Start a server on a free port, run client_main(server, url), stop the server."""
    async def main():
        server = StreamingServer(Recognizer(model), ServerConfig(port=0, **config))
        port = await server.start()
        try:
            return await asyncio.wait_for(client_main(server, f"ws://127.0.0.1:{port}"), TIMEOUT)
        finally:
            await server.stop()
    return asyncio.run(main())


async def vosk_client(url, pcm: bytes, rate: int, chunk_bytes: int, config: dict | None = None,
                      eof='{"eof" : 1}') -> list[dict]:
    """vosk-server's test.py: config, then chunk / reply in lockstep, then eof / final reply."""
    replies = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": rate, **(config or {})}}))
        for i in range(0, len(pcm), chunk_bytes):
            await ws.send(pcm[i:i + chunk_bytes])
            replies.append(json.loads(await ws.recv()))
        await ws.send(eof)
        replies.append(json.loads(await ws.recv()))
        with pytest.raises(ConnectionClosed):  # the server closes after the final result
            await ws.recv()
    return replies


def text_of(replies: list[dict]) -> str:
    """The transcript: every result's text in order (partials are not results)."""
    return " ".join(r["text"] for r in replies if r.get("text"))


def test_a_client_gets_what_transcribe_gives(tiny_model, cathy_clips):
    path, text = cathy_clips[0]
    pcm, rate = file_pcm(path)

    async def client(server, url):
        return await vosk_client(url, pcm, rate, chunk_bytes=int(rate * 0.2) * 2)
    replies = run_with_server(tiny_model, client)
    assert text_of(replies) == transcribe(tiny_model, path, punctuation=False).text == text  # Vosk: no marks
    partials = [r["partial"] for r in replies[:-1] if "partial" in r]
    assert partials and all(text.startswith(p) for p in partials) and len(partials[-1]) > len(text) // 2
    final = replies[-1]
    assert [w["word"] for w in final["result"]] == text.split()
    for w in final["result"]:
        assert set(w) == {"word", "start", "end", "conf"} and 0 <= w["start"] < w["end"] <= 3.3 and 0 < w["conf"] <= 1


def test_other_rates_and_odd_chunks_equal_transcribing_the_same_file(tiny_model, cathy_clips, tmp_path):
    """A 22.05 kHz client, chunks of an odd number of bytes (samples split across messages):
    the server's streaming resampler gives exactly what transcribing that file gives."""
    path, _ = cathy_clips[2]
    x = load_audio(path)
    y = soxr.resample(x, 16000, 22050)
    wav = tmp_path / "clip22k.wav"
    sf.write(wav, y, 22050, subtype="PCM_16")
    pcm, rate = file_pcm(wav)

    async def client(server, url):
        return await vosk_client(url, pcm, rate, chunk_bytes=1001)
    assert text_of(run_with_server(tiny_model, client)) == transcribe(tiny_model, wav, punctuation=False).text


def test_twenty_concurrent_clients_each_get_their_own_text(tiny_model, cathy_clips):
    clips = [(file_pcm(p), t) for p, t in cathy_clips]

    async def client(server, url):
        jobs = [vosk_client(url, *clips[i % 8][0], chunk_bytes=3200 + 320 * (i % 5)) for i in range(20)]
        results = await asyncio.gather(*jobs)
        return results, server.ticks
    results, ticks = run_with_server(tiny_model, client)
    for i, replies in enumerate(results):
        assert text_of(replies) == clips[i % 8][1], i
    chunks = sum(len(r) for r in results)
    assert ticks < chunks / 3  # the streams really were stepped together


def test_protocol_details_words_alternatives_and_config_without_reply(tiny_model, cathy_clips):
    path, text = cathy_clips[4]
    pcm, rate = file_pcm(path)

    async def client(server, url):
        plain = await vosk_client(url, pcm, rate, 6400, config={"words": False})
        alts = await vosk_client(url, pcm, rate, 6400, config={"max_alternatives": 3, "phrase_list": ["a b"]})
        async with connect(url) as ws:  # no config at all: the server's default rate; eof as plain JSON
            await ws.send(pcm)
            first = json.loads(await ws.recv())
            await ws.send(json.dumps({"eof": 1}))
            last = json.loads(await ws.recv())
        async with connect(url) as ws:  # eof before any audio
            await ws.send('{"eof" : 1}')
            empty = json.loads(await ws.recv())
        return plain, alts, first, last, empty
    plain, alts, first, last, empty = run_with_server(tiny_model, client)
    assert plain[-1] == {"text": text}  # no "result" when words are off
    assert all(set(r) == {"partial"} for r in plain[:-1])
    alt = alts[-1]["alternatives"]
    assert len(alt) == 1 and alt[0]["text"] == text and 0 < alt[0]["confidence"] <= 1
    assert [w["word"] for w in alt[0]["result"]] == text.split()
    assert set(first) == {"partial"} and text_of([first, last]) == text
    assert empty == {"text": ""}


def test_bad_clients_are_answered_or_dropped_and_the_others_go_on(tiny_model, cathy_clips):
    good = [file_pcm(p) for p, _ in cathy_clips[:3]]

    async def expect_error(url, *messages):
        async with connect(url) as ws:
            for m in messages:
                await ws.send(m)
            replies = []
            with pytest.raises(ConnectionClosed):
                while True:
                    replies.append(json.loads(await ws.recv()))
            return replies[-1], ws.close_code

    async def abrupt(url, pcm):  # vanishes mid-stream without a close frame
        ws = await connect(url)
        await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        await ws.send(pcm[:3200])
        await ws.recv()
        await ws.send(pcm[3200:6400])
        ws.transport.abort()

    async def oversized(url):
        async with connect(url, max_size=None) as ws:
            await ws.send(b"\0" * 5000)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    async def client(server, url):
        goods = [vosk_client(url, pcm, rate, 3200) for pcm, rate in good]
        bads = [expect_error(url, "{not json"),
                expect_error(url, json.dumps({"config": {"sample_rate": "fast"}})),
                expect_error(url, json.dumps({"config": []})),
                expect_error(url, json.dumps({"hello": 1})),
                expect_error(url, json.dumps([1, 2])),
                expect_error(url, "eof"),
                expect_error(url, json.dumps({"eof": 0})),
                expect_error(url, good[0][0][:3200], json.dumps({"config": {"sample_rate": 8000}})),
                abrupt(url, good[1][0]), abrupt(url, good[2][0]), oversized(url)]
        results = await asyncio.gather(*goods, *bads)
        # the server still serves a newcomer afterwards
        after = await vosk_client(url, *good[0], 3200)
        for _ in range(100):  # each handler ends just after its client sees the close
            if not server.connections:
                break
            await asyncio.sleep(0.01)
        return results, after, len(server.connections)
    results, after, still_open = run_with_server(tiny_model, client, max_message=4096)
    for replies, (_, text) in zip(results[:3], cathy_clips[:3]):
        assert text_of(replies) == text
    for reply, code in results[3:11]:
        assert set(reply) == {"error"} and code == 1003, reply
    assert results[13] == 1009  # message too big
    assert text_of(after) == cathy_clips[0][1]
    assert still_open == 0  # every connection, good or bad, was cleaned up


def test_idle_connections_are_closed(tiny_model):
    async def client(server, url):
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason
    code, reason = run_with_server(tiny_model, client, idle_timeout=0.3)
    assert code == 1000 and "idle" in reason


def test_too_many_connections_are_refused(tiny_model):
    from websockets.exceptions import InvalidStatus

    async def client(server, url):
        async with connect(url), connect(url):
            with pytest.raises(InvalidStatus) as err:
                async with connect(url):
                    pass
            return err.value.response.status_code
    assert run_with_server(tiny_model, client, max_connections=2) == 503


def test_endpoints_end_utterances_mid_stream(tiny_live_model, cathy_clips):
    """Speech, a 2 s pause, speech: a result at the pause, the rest after eof; the words are
    those of the whole stream without endpoints."""
    a, b = load_audio(cathy_clips[1][0]), load_audio(cathy_clips[5][0])
    x = np.concatenate([np.zeros(4000, np.float32), a, np.zeros(32000, np.float32), b, np.zeros(8000, np.float32)])
    pcm = pcm16(x)

    async def client(server, url):
        return await vosk_client(url, pcm, 16000, 3200)
    model = tiny_live_model
    from asr.endpoint import EndpointConfig

    async def main():
        server = StreamingServer(Recognizer(model, endpoint=EndpointConfig()), ServerConfig(port=0))
        port = await server.start()
        try:
            return await asyncio.wait_for(client(server, f"ws://127.0.0.1:{port}"), TIMEOUT)
        finally:
            await server.stop()
    replies = asyncio.run(main())
    results = [r for r in replies if "text" in r]
    mid = [r for r in replies[:-1] if "text" in r and r["text"]]
    assert [r["text"] for r in mid] == [cathy_clips[1][1]]
    assert replies[-1]["text"] == cathy_clips[5][1]
    pcm_x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    whole = Recognizer(model).stream()
    whole.accept(pcm_x)
    words = [w for r in results for w in r.get("result", [])]
    assert [(w["word"], w["start"], w["end"]) for w in words] == \
        [(w.word, round(w.start, 3), round(w.end, 3)) for w in whole.finish().words]


def served_url(proc) -> str | None:
    """The ws:// URL a started `asr serve --port 0` prints on stderr (None if it stops first)."""
    for _ in range(200):
        line = proc.stderr.readline()
        if not line:
            return None
        if "serving on" in line:
            return line.split("serving on ")[1].split()[0]
    return None


def test_serve_command_end_to_end(tiny_model, tiny_model_path, cathy_clips):
    """`asr serve --port 0` as a user runs it; a client gets what transcribing the file gives
    (the library call under `asr transcribe`); SIGINT stops the server cleanly."""
    path, _ = cathy_clips[3]
    expected = transcribe(tiny_model, path, punctuation=False).text
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--port", "0", "--model", str(tiny_model_path)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = served_url(proc)
        assert url and url.startswith("ws://127.0.0.1:"), "the server did not start"
        pcm, rate = file_pcm(path)
        replies = asyncio.run(asyncio.wait_for(vosk_client(url, pcm, rate, 8000), TIMEOUT))
        assert text_of(replies) == expected
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.mark.parametrize("field, value, message", [
    ("port", 70000, "port 70000: must be 0..65535"),
    ("sample_rate", 0, "sample_rate must be a positive number (got 0)"),
    ("idle_timeout", float("inf"), "idle_timeout must be a positive number (got inf)"),
    ("stall_timeout", float("nan"), "stall_timeout must be a positive number (got nan)"),
    ("max_upload", -1, "max_upload must be a positive number (got -1)"),
])
def test_server_config_refuses_bad_values(field, value, message):
    with pytest.raises(ValueError) as err:
        ServerConfig(**{field: value})
    assert str(err.value) == message


def test_serve_command_refuses_a_bad_value_in_one_line_before_loading_a_model(cli, tmp_path):
    """The check is ServerConfig's; the command shows its message (no model is needed to see it)."""
    out = cli("serve", "--port", "70000", "--model", tmp_path / "no-such-model.onnx")
    assert (out.returncode, out.stderr) == (2, "asr: error: port 70000: must be 0..65535\n")
    out = cli("serve", "--max-connections", "0", "--model", tmp_path / "no-such-model.onnx")
    assert (out.returncode, out.stderr) == (2, "asr: error: max_connections must be a positive number (got 0)\n")


def test_a_failing_step_is_reported_and_the_server_goes_on(tiny_model, cathy_clips):
    """A bug met while stepping (here: a decoder that fails on one connection's audio) is
    answered with an error and code 1011, logged, and later connections are served."""
    from asr.decoding import GreedyDecoder
    made = []

    class Flaky(GreedyDecoder):
        def update(self, log_probs):
            if len(made) == 1:
                raise RuntimeError("boom")
            super().update(log_probs)

    def factory():
        made.append(1)
        return Flaky(0.04)
    pcm, rate = file_pcm(cathy_clips[6][0])

    async def main():
        server = StreamingServer(Recognizer(tiny_model, decoder=factory), ServerConfig(port=0))
        url = f"ws://127.0.0.1:{await server.start()}"
        try:
            async with connect(url) as ws:
                await ws.send(pcm[:6400])
                reply = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                code = ws.close_code
            after = await vosk_client(url, pcm, rate, 6400)
        finally:
            await server.stop()
        return reply, code, after
    reply, code, after = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert reply == {"error": "internal error: RuntimeError"} and code == 1011
    assert text_of(after) == cathy_clips[6][1]


def test_server_text_equals_transcribe_with_the_lm_on_for_several_utterances(cathy_clips, tmp_path):
    """The bundled model with its LM, as `asr serve` and `asr transcribe` run by default, on three
    real sentences with pauses between them: the server ends an utterance at each pause and
    beam-searches it whole; `transcribe` cuts the file at the same frames, with the same LM
    context, so every client, however it chunks the audio, gets exactly transcribe's words and
    times. (Before, transcribe searched the file in 20 s pieces and the texts differed.)"""
    from asr.beam import decoder_for
    from asr.checkpoint import load_model
    from asr.endpoint import EndpointConfig
    model = load_model(None)
    decoder = decoder_for(model)
    parts = [np.zeros(4000, np.float32)]
    for path in (REPO / "asr" / "samples" / "cathy_a0046.flac", cathy_clips[3][0], cathy_clips[2][0]):
        parts += [load_audio(path), np.zeros(int(16000 * 1.4), np.float32)]
    wav = tmp_path / "three.wav"
    sf.write(wav, np.concatenate(parts), 16000, subtype="PCM_16")
    expected = transcribe(model, wav, decoder, punctuation=False)
    pcm, rate = file_pcm(wav)

    async def main():
        server = StreamingServer(Recognizer(model, decoder, endpoint=EndpointConfig()), ServerConfig(port=0))
        url = f"ws://127.0.0.1:{await server.start()}"
        try:
            return await asyncio.gather(vosk_client(url, pcm, rate, 6400), vosk_client(url, pcm, rate, 1001))
        finally:
            await server.stop()
    for replies in asyncio.run(asyncio.wait_for(main(), 300)):
        results = [r for r in replies if r.get("text")]
        assert len(results) == 3  # one per sentence
        assert text_of(replies) == expected.text
        assert [(w["word"], w["start"], w["end"]) for r in results for w in r["result"]] == \
            [(w.word, round(w.start, 3), round(w.end, 3)) for w in expected.words]


def test_absurd_numbers_and_nesting_are_refused_with_1003_and_no_traceback(tiny_model, caplog):
    """A 400-digit sample_rate (no float holds it) and JSON nested 100 000 deep (beyond the
    parser's recursion): the documented {"error"} and code 1003, nothing logged as an error."""
    async def refused(url, message):
        async with connect(url) as ws:
            await ws.send(message)
            reply = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return reply, ws.close_code

    async def client(server, url):
        return await asyncio.gather(refused(url, '{"config": {"sample_rate": ' + "9" * 400 + "}}"),
                                    refused(url, '{"config": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                                    refused(url, "[" * 100_000),
                                    refused(url, '{"config": {"sample_rate": 1e400}}'))
    for reply, code in run_with_server(tiny_model, client):
        assert set(reply) == {"error"} and code == 1003, reply
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_trickling_connection_cannot_hold_a_slot(tiny_model, cathy_clips):
    """One byte every 0.1 s: the connection is closed (1008) once it has been open stall_timeout
    longer than the audio it sent; a client streaming faster than real time is not."""
    pcm, rate = file_pcm(cathy_clips[0][0])

    async def trickle(url):
        async with connect(url) as ws:
            t0 = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.send(b"\0")
                    await ws.recv()
                    await asyncio.sleep(0.1)
            return ws.close_code, ws.close_reason, time.monotonic() - t0

    async def steady(url):  # 0.1 s of audio every 0.05 s, for about 3 s
        replies = []
        async with connect(url) as ws:
            for i in range(0, len(pcm), 3200):
                await ws.send(pcm[i:i + 3200])
                replies.append(json.loads(await ws.recv()))
                await asyncio.sleep(0.05)
            await ws.send('{"eof" : 1}')
            replies.append(json.loads(await ws.recv()))
        return replies

    async def client(server, url):
        return await asyncio.gather(trickle(url), steady(url))
    (code, reason, lasted), replies = run_with_server(tiny_model, client, stall_timeout=1.5, idle_timeout=30)
    assert code == 1008 and "slow" in reason and 1.4 < lasted < 10
    assert text_of(replies) == cathy_clips[0][1]
