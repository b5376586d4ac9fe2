"""The OpenAI-style HTTP transcription API of `asr serve`: what whisper.cpp's server,
faster-whisper servers and LocalAI speak, so the `openai` client (with `base_url`) and other
tools that talk to them work unchanged.

    POST /v1/audio/transcriptions   multipart/form-data: file (required), model, language,
                                    response_format = json | text | srt | vtt | verbose_json,
                                    timestamp_granularities[] = segment | word (verbose_json),
                                    prompt (its words are favoured as hotwords), stream = true
                                    (server-sent events: transcript.text.delta per utterance as
                                    it is recognised, then transcript.text.done); temperature
                                    is accepted and ignored
    GET  /v1/models                 the models files can be transcribed with
    POST /v1/audio/translations     an OpenAI-shaped error: English only, nothing to translate
    GET  /v1/audio/transcriptions   an OpenAI-shaped error: use POST

The file is transcribed exactly as `asr transcribe --model ID FILE` does it (the same model,
reader, decoder, language model, endpointing and punctuation), so texts and times are the same. `asr serve`
started without --model offers the bundled offline model (the default, as for `asr transcribe`)
and the streaming one; `model` picks one by its id and any other name (`whisper-1`) gets the
default. The upload is streamed to
a temporary file (at most `max_upload` bytes, within `stall_timeout` seconds; text fields at
most FIELD_BYTES each and MAX_FIELDS in all) and decoded in a thread of its own: the event loop
and the live streams' worker go on meanwhile. Uploads take turns (asr/uploads.py): a file whose
audio lasts longer than `max_audio_seconds` is refused, work stops when its client goes away,
and at most `max_uploads` files are in work at once (a quarter of them from one client).
Errors come in OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with a 4xx
status for anything the client sent.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass
from typing import Callable

from .audio import AudioError
from .decoding import Result
from .guard import client_key
from .transcribe import transcribe
from .uploads import Busy, Cancelled, Job, TooLong, Turns, check_header, run_in_thread
from .writers import to_srt, to_vtt

log = logging.getLogger("asr.server.http")

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
ENGLISH = {"en", "eng", "english"}
FIELD_BYTES = 4096  # most bytes of one text field of the form
MAX_FIELDS = 64  # most text fields in one form
FIRST_TURN_WAIT = 30.0  # seconds an upload may wait for its first turn before it is refused (503)
RETRY_AFTER = 5  # seconds, the Retry-After of a 503/429
POLL_SECONDS = 0.2  # how often a handler looks whether its client is still there


class RequestError(Exception):
    """A request the API refuses: status, message, offending parameter, code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status, self.param, self.code, self.retry_after = status, param, code, retry_after


def compression_ratio(text: str) -> float:
    """As whisper computes it: the text's length over its zlib-compressed length."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def verbose_json(result: Result, granularities: set[str]) -> dict:
    """OpenAI's verbose_json: whisper's fields, filled with what a CTC recogniser knows.

    `tokens` is empty (characters, not BPE tokens), `temperature` 0 (no sampling),
    `avg_logprob` the mean log confidence of the segment's words, `no_speech_prob` 0 (a
    segment exists only where words were recognised); words carry `probability`, their
    confidence, as whisper's word timestamps do."""
    out = {"task": "transcribe", "language": "english", "duration": round(result.duration, 3), "text": result.text}
    if "segment" in granularities:
        out["segments"] = [{"id": i, "seek": 0, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
                            "tokens": [], "temperature": 0.0,
                            "avg_logprob": round(sum(math.log(max(w.conf, 1e-10)) for w in s.words)
                                                 / max(1, len(s.words)), 4),
                            "compression_ratio": round(compression_ratio(s.text), 4), "no_speech_prob": 0.0}
                           for i, s in enumerate(result.segments)]
    if "word" in granularities:
        out["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                         "probability": round(w.conf, 3)} for w in result.words]
    return out


@dataclass
class FileModel:
    """A model the API transcribes files with: what `asr transcribe --model ID` would use.

    make_decoder: a factory of fresh decoders (None: greedy); endpoint: the endpointing rules;
    punctuation: marks and capitals from the bundled punctuation model, as `asr transcribe` writes."""
    model: object
    make_decoder: Callable | None = None
    endpoint: object = None
    id: str | None = None  # default: the model file's name without its extension
    punctuation: bool = True

    def __post_init__(self):
        source = getattr(self.model, "source", None) or "model"
        self.id = self.id or os.path.splitext(os.path.basename(str(source)))[0]
        try:
            self.created = int(os.path.getmtime(source))
        except (OSError, TypeError):
            self.created = int(time.time())


class TranscriptionAPI:
    """The handlers, bound to a StreamingServer (its limits and lifetime).

    files: the models uploads may name, the default first (default: the live recogniser's)."""

    def __init__(self, server, files: list[FileModel] | None = None):
        self.server = server
        self.config = server.config
        # The upload threads are not at a lower OS priority: they hold the GIL for stretches of
        # the beam search, and a descheduled holder stalls the live worker and the event loop
        # (measured: replies up to 25 s late on a busy machine with nice +10).
        self.turns = Turns(self.config.upload_workers)
        self.jobs: dict[Job, str] = {}  # uploads in work -> their client
        self.folders: set[str] = set()  # temporary upload folders in use
        self.handlers: set[asyncio.Task] = set()  # upload requests in progress (receiving or in work)
        rec = server.recognizer
        self.files = files or [FileModel(rec.model, rec.make_decoder, rec.endpoint)]
        self.uploads = 0  # transcriptions done (for tests and benchmarks)
        self.cancelled = 0  # transcriptions stopped because their client went away

    def file_model(self, name: str) -> FileModel:
        """The model a request names (by id), else the default: clients made for OpenAI send
        `whisper-1`, and whisper.cpp's and faster-whisper's servers answer those too."""
        return next((f for f in self.files if f.id == name.strip()), self.files[0])

    def cancel_all(self) -> None:
        """Stop every upload (the server is stopping): those in work end at their next block,
        those still arriving at once (their handlers are cancelled; their folders removed)."""
        for job in list(self.jobs):
            job.cancel()
        for task in list(self.handlers):
            task.cancel()

    def close(self, wait: float = 2.0) -> None:
        """Cancel the uploads, give their threads `wait` seconds to end, remove what they left."""
        self.cancel_all()
        end = time.monotonic() + wait
        for job in list(self.jobs):
            job.finished.wait(max(0.0, end - time.monotonic()))
        for folder in list(self.folders):
            shutil.rmtree(folder, ignore_errors=True)
            self.folders.discard(folder)

    # ------------------------------------------------------------------ responses
    @staticmethod
    def error(status: int, message: str, param: str | None = None, code: str | None = None,
              kind: str | None = None):
        """A JSON error in OpenAI's shape."""
        from aiohttp import web
        return web.json_response(TranscriptionAPI.error_body(status, message, param, code, kind), status=status)

    @staticmethod
    def error_body(status: int, message: str, param: str | None = None, code: str | None = None,
                   kind: str | None = None) -> dict:
        """error()'s JSON body (also for answers made outside a handler)."""
        kind = kind or ("invalid_request_error" if status < 500 else "server_error")  # OpenAI's types
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}

    async def models(self, request):
        from aiohttp import web
        return web.json_response({"object": "list", "data": [
            {"id": f.id, "object": "model", "created": f.created, "owned_by": "asr"} for f in self.files]})

    # ------------------------------------------------------------------ transcriptions
    async def transcriptions(self, request):
        from aiohttp import web
        tmp = tempfile.TemporaryDirectory(prefix="asr-upload-")
        self.folders.add(tmp.name)
        task = asyncio.current_task()
        self.handlers.add(task)
        try:
            try:
                async with asyncio.timeout(self.config.stall_timeout):
                    fields, path, filename = await self._receive(request, tmp.name)
                fmt, granularities = self._options(fields)
                chosen = self.file_model((fields.get("model") or [""])[-1])
            except (TimeoutError, asyncio.TimeoutError):
                raise RequestError(408, f"the upload did not arrive within {self.config.stall_timeout:g} s") from None
            stream, decoder = self._extras(fields, chosen, fmt)
            if stream:
                return await self._stream(request, chosen, decoder, path, filename)
            t0 = time.perf_counter()
            try:
                result = await self._work(request, chosen, path, decoder)
            except RequestError:
                raise
            except AudioError as err:
                raise RequestError(400, f"{filename}: {err.reason}", "file", "invalid_audio") from None
            except TooLong as err:
                raise RequestError(400, f"{filename}: {err}", "file", "audio_too_long") from None
            except Busy:
                raise RequestError(503, "every upload worker is busy; try again later", code="server_busy",
                                   retry_after=RETRY_AFTER) from None
            except Cancelled:
                if self._gone(request):
                    self.cancelled += 1
                    log.info("%s: its client went away; transcription stopped", filename)
                    return web.Response(status=499)  # nobody reads it (nginx's code for this case)
                raise RequestError(503, "the server is shutting down", code="server_shutting_down") from None
            except Exception as err:  # a bug met on this file: say so in the API's shape, serve on
                log.exception("transcribing %s failed", filename)
                raise RequestError(500, f"{filename}: internal error ({type(err).__name__})") from None
            self.uploads += 1
            log.info("transcribed %s (%.1f s of audio) in %.2f s", filename, result.duration, time.perf_counter() - t0)
        except RequestError as err:
            response = self.error(err.status, str(err), err.param, err.code)
            if err.retry_after is not None:
                response.headers["Retry-After"] = str(err.retry_after)
            response.force_close()  # the rest of a refused body is not read: end the connection
            log.info("refused an upload from %s: %d %s", request.remote, err.status, err)
            return response
        finally:
            self.handlers.discard(task)
            tmp.cleanup()
            self.folders.discard(tmp.name)
        if fmt == "json":
            return web.json_response({"text": result.text}, dumps=lambda o: json.dumps(o, ensure_ascii=False))
        if fmt == "verbose_json":
            return web.json_response(verbose_json(result, granularities or {"segment"}),
                                     dumps=lambda o: json.dumps(o, ensure_ascii=False))
        text = {"text": lambda r: r.text + "\n", "srt": to_srt, "vtt": to_vtt}[fmt](result)
        return web.Response(text=text, content_type="application/x-subrip" if fmt == "srt" else
                            "text/vtt" if fmt == "vtt" else "text/plain", charset="utf-8")

    @staticmethod
    def _gone(request) -> bool:
        """Whether the request's client has closed its connection."""
        return request.transport is None or request.transport.is_closing()

    async def _work(self, request, chosen: FileModel, path: str, decoder=None) -> Result:
        """Transcribe in a thread of its own, taking turns with the other uploads; cancelled
        when the client goes away (looked at every POLL_SECONDS) or the handler is cancelled."""
        client = client_key(request.remote)
        per_client = max(1, self.config.max_uploads // 4)
        if len(self.jobs) >= self.config.max_uploads:
            raise RequestError(503, f"{len(self.jobs)} uploads are in work, the most this server takes; "
                                    "try again later", code="server_busy", retry_after=RETRY_AFTER)
        if sum(c == client for c in self.jobs.values()) >= per_client:
            raise RequestError(429, f"{per_client} of your uploads are in work already, the most one client "
                                    "may have; wait for one to finish", code="rate_limit_exceeded",
                               retry_after=RETRY_AFTER)
        job = Job(self.turns, self.config.max_audio_seconds)
        self.jobs[job] = client
        future = run_in_thread(self._transcribe, chosen, path, job, decoder)

        def finished(f):
            self.jobs.pop(job, None)
            f.exception()  # looked at: a job whose handler is gone (the server stopping) ends quietly
        future.add_done_callback(finished)
        try:
            while not future.done():
                await asyncio.wait([future], timeout=POLL_SECONDS)
                if not future.done() and self._gone(request):
                    job.cancel()
                    await future  # raises Cancelled within a block of audio
            return future.result()
        except asyncio.CancelledError:  # the server is stopping
            job.cancel()
            raise

    @staticmethod
    def _transcribe(chosen: FileModel, path: str, job: Job, decoder=None) -> Result:
        """The upload thread: the file as `asr transcribe --model ID` transcribes it, refused
        first if its header says it is too long, and stopped between blocks by the job."""
        try:
            check_header(path, job.limit)
            return job.run(lambda: transcribe(chosen.model, path, decoder or chosen.make_decoder or "greedy",
                                              endpoint=chosen.endpoint, on_progress=job.progress,
                                              punctuation=chosen.punctuation), FIRST_TURN_WAIT)
        finally:
            job.finished.set()

    def _extras(self, fields: dict[str, list[str]], chosen: FileModel, fmt: str):
        """`stream` (true/false) and the decoder for `prompt` (its words as hotwords; None: the model's own)."""
        stream = (fields.get("stream") or ["false"])[-1].strip().lower()
        if stream not in ("true", "false", "1", "0", ""):
            raise RequestError(400, f"stream {stream!r}: must be true or false", "stream")
        stream = stream in ("true", "1")
        if stream and fmt not in ("json", "text"):
            raise RequestError(400, f"stream: server-sent events carry text; response_format {fmt!r} cannot stream "
                                    "(use json or text)", "stream")
        hotwords = prompt_hotwords((fields.get("prompt") or [""])[-1])
        if not hotwords:
            return stream, None
        from .beam import NO_LM, decoder_for
        base = chosen.make_decoder or decoder_for(chosen.model, lm=NO_LM)
        return stream, base.with_hotwords(hotwords)

    async def _stream(self, request, chosen: FileModel, decoder, path: str, filename: str):
        """The transcription as OpenAI's server-sent events: a transcript.text.delta for each
        utterance (a bidirectional model's window) as soon as it is recognised and punctuated,
        then transcript.text.done with the whole text (the deltas joined). An audio error before
        any text is an ordinary JSON error; one after, an `error` event."""
        from aiohttp import web

        from .punctuation import bundled, punctuate_words
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        punctuator = bundled() if chosen.punctuation else None

        def on_words(words):  # the upload thread
            words = punctuate_words(words, punctuator) if punctuator else words
            loop.call_soon_threadsafe(queue.put_nowait, " ".join(w.word for w in words))

        work = run_in_thread(lambda: transcribe(
            chosen.model, path, decoder or chosen.make_decoder or "greedy", endpoint=chosen.endpoint,
            punctuation=False, on_words=on_words))
        work.add_done_callback(lambda _: queue.put_nowait(None))
        item = await queue.get()
        if item is None and work.exception() is not None:
            err = work.exception()
            if isinstance(err, AudioError):
                raise RequestError(400, f"{filename}: {err.reason}", "file", "invalid_audio")
            log.error("transcribing %s failed: %r", filename, err)
            raise RequestError(500, f"{filename}: internal error ({type(err).__name__})")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        texts = []

        async def send(event: dict, name: str | None = None) -> None:
            head = f"event: {name}\n" if name else ""
            await response.write(f"{head}data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
        try:
            while item is not None:
                await send({"type": "transcript.text.delta", "delta": (" " if texts else "") + item})
                texts.append(item)
                item = await queue.get()
            err = work.exception()
            if err is not None:
                reason = err.reason if isinstance(err, AudioError) else f"internal error ({type(err).__name__})"
                await send({"error": {"message": f"{filename}: {reason}", "type": "invalid_request_error",
                                      "param": "file", "code": "invalid_audio"}}, "error")
            else:
                await send({"type": "transcript.text.done", "text": " ".join(texts)})
                self.uploads += 1
            await response.write_eof()
        except ConnectionError:  # the client went away: the recognition finishes in its thread, unread
            log.info("%s: the client left before the end of the stream", filename)
        return response

    async def translations(self, request):
        """POST /v1/audio/translations: an error a client can show (the model is English only)."""
        response = self.error(400, "translation is not supported: English only (this model transcribes English "
                                   "speech; use /v1/audio/transcriptions)", None, "unsupported_task")
        response.force_close()  # the upload is not read
        return response

    async def use_post(self, request):
        """GET on /v1/audio/transcriptions: say how to call it."""
        response = self.error(405, f"use POST for {request.path} (a multipart/form-data upload with a `file` field)",
                              None, "method_not_allowed")
        response.headers["Allow"] = "POST"
        return response

    async def _receive(self, request, folder: str) -> tuple[dict[str, list[str]], str, str]:
        """Read the multipart form: its text fields, and its file streamed to `folder`."""
        limit = self.config.max_upload
        if request.content_type != "multipart/form-data":
            raise RequestError(415, f"expected a multipart/form-data upload with a `file` field, "
                                    f"not {request.content_type or 'no content type'}", "file")
        if request.content_length is not None and request.content_length > limit + (1 << 16):
            raise RequestError(413, f"the upload is {request.content_length} bytes; the limit is {limit}", "file",
                               "file_too_large")
        from aiohttp.http_exceptions import HttpProcessingError
        fields: dict[str, list[str]] = {}
        path = filename = None
        n_fields = 0
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "file" and path is None:
                    filename = _safe_name(part.filename or "upload")
                    path = os.path.join(folder, "upload" + os.path.splitext(filename)[1][:12])
                    size = 0
                    with open(path, "wb") as f:
                        while chunk := await part.read_chunk(1 << 16):
                            size += len(chunk)
                            if size > limit:
                                raise RequestError(413, f"{filename}: larger than the limit of {limit} bytes",
                                                   "file", "file_too_large")
                            f.write(chunk)
                    if size == 0:
                        raise RequestError(400, f"{filename}: empty file (0 bytes)", "file", "empty_file")
                elif part.filename is None and part.name:
                    n_fields += 1
                    if n_fields > MAX_FIELDS:
                        raise RequestError(400, f"more than {MAX_FIELDS} form fields", None, "too_many_fields")
                    value = await _read_field(part)
                    fields.setdefault(part.name[:100], []).append(value)
                else:  # another file: not ours to read; counted against the limit as it passes
                    size = 0
                    while chunk := await part.read_chunk(1 << 16):
                        size += len(chunk)
                        if size > limit:
                            raise RequestError(413, f"a form part is larger than the limit of {limit} bytes",
                                               None, "file_too_large")
        except RequestError:
            raise
        except ConnectionError:  # the client hung up mid-upload: nobody to answer
            raise RequestError(400, "the upload was cut off") from None
        except (ValueError, AssertionError, KeyError, LookupError, UnicodeError, RuntimeError,
                HttpProcessingError) as err:
            reason = str(getattr(err, "message", None) or err or type(err).__name__).split("\n")[0]
            raise RequestError(400, f"malformed multipart/form-data body: {_printable(reason, 200)}") from None
        if path is None:
            raise RequestError(400, "no `file` field in the form: send the audio as multipart field `file`", "file")
        return fields, path, filename

    def _options(self, fields: dict[str, list[str]]) -> tuple[str, set[str]]:
        def one(name: str, default: str = "") -> str:
            return (fields.get(name) or [default])[-1].strip()
        fmt = one("response_format", "json") or "json"
        if fmt not in RESPONSE_FORMATS:
            raise RequestError(400, f"response_format {fmt!r}: must be one of {', '.join(RESPONSE_FORMATS)}",
                               "response_format")
        language = one("language").lower()
        if language and language.split("-")[0].split("_")[0] not in ENGLISH:
            raise RequestError(400, f"language {language!r}: this model transcribes English only", "language",
                               "unsupported_language")
        granularities = set(fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", []))
        granularities = {g.strip() for g in granularities if g.strip()}
        bad = granularities - set(GRANULARITIES)
        if bad:
            raise RequestError(400, f"timestamp_granularities: {', '.join(sorted(bad))}: must be segment or word",
                               "timestamp_granularities")
        if granularities and fmt != "verbose_json":
            raise RequestError(400, "timestamp_granularities needs response_format verbose_json",
                               "timestamp_granularities")
        return fmt, granularities


async def _read_field(part) -> str:
    """A text field's value, at most FIELD_BYTES (read no further: RequestError beyond)."""
    data = bytearray()
    while chunk := await part.read_chunk(FIELD_BYTES + 1):
        data += chunk
        if len(data) > FIELD_BYTES:
            break
    else:
        data = part.decode(data)  # base64, gzip, ...: still at most FIELD_BYTES when decoded
    if len(data) > FIELD_BYTES:
        raise RequestError(400, f"form field {_printable(part.name, 100)!r} is longer than {FIELD_BYTES} bytes",
                           _printable(part.name, 100), "field_too_long")
    return bytes(data).decode("utf-8", "replace")


def _printable(text: str, limit: int) -> str:
    """text with unprintable characters as '?', at most `limit` characters."""
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


# Words a prompt holds that say nothing of what the audio contains.
_PROMPT_STOPWORDS = frozenset("""a an and are as at be but by for from has have he her his i in is it its of on or our
she that the their them then there these they this to was we were what when which who will with you your""".split())


def prompt_hotwords(prompt: str, limit: int = 50) -> list[str]:
    """OpenAI's `prompt` (text in the style and vocabulary of the audio: names, terms) as hotwords
    for the beam search: its words, normalised, without common function words, at most `limit`."""
    from .text import normalize
    words = [w for w in normalize(prompt).split() if len(w) > 1 and w not in _PROMPT_STOPWORDS]
    return list(dict.fromkeys(words))[:limit]


def _safe_name(name: str) -> str:
    """The client's file name, for messages only: its last component, printable, short."""
    return _printable(re.split(r"[\\/]", name)[-1], 100) or "upload"
