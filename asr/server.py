"""`asr serve`: one port, three interfaces over one batched model.

1. vosk-server's WebSocket protocol (alphacep/vosk-server, websocket/asr_server.py), on any
   path, so Vosk clients work unchanged. Per connection:

    client -> {"config": {"sample_rate": 8000, "words": true, "max_alternatives": 0}}   optional
    client -> binary chunks of 16-bit little-endian mono PCM at that rate
    server <- one reply per chunk: {"partial": "..."}, or at an endpoint
              {"text": "...", "result": [{"word", "start", "end", "conf"}, ...]}
    client -> {"eof" : 1}
    server <- the final result of the rest of the audio, then closes the connection.

   A valid config gets no reply (as in vosk-server). `phrase_list` is accepted and ignored;
   `max_alternatives` > 0 gives vosk's {"alternatives": [{"text", "confidence", "result"}]}
   form with the one hypothesis a CTC decoder has. Anything else (malformed or absurdly
   nested JSON, wrong types, out-of-range numbers, a text message that is neither config nor
   eof) is answered with {"error": "..."} and the connection is closed (code 1003) without
   disturbing the others; frames over the size limit are refused (code 1009); a connection
   silent for `idle_timeout` is closed (1000), and so is one that has been open longer than
   the audio it sent plus `stall_timeout`, counting only the time spent waiting for it (1008:
   a client trickling bytes cannot hold a slot).
2. A page at / (the files in asr/web/): the browser's microphone streams over the same
   WebSocket protocol; a file dropped on it goes through the HTTP API.
3. The OpenAI-style HTTP API, POST /v1/audio/transcriptions and GET /v1/models
   (asr/openai_api.py): a file is transcribed exactly as `asr transcribe` does it, in a
   thread of its own, so live streams keep their latency.

aiohttp serves all three (HTTP, multipart uploads and WebSocket on one port, with bounded
per-connection read buffers); `websockets` cannot: its server answers GET requests only.

Throughput: every connection's chunk goes to one worker, which runs the model over all the
streams that have audio in ONE batched step per tick (`Recognizer.step`), in a thread so the
event loop keeps serving sockets meanwhile. A connection has at most one chunk in the worker
(it reads its next message after the reply), so buffers stay bounded: the worker's one chunk
plus aiohttp's read buffer (64 KiB, then it stops reading the socket) and one message of at
most `max_message` bytes.
"""
from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import FRAMES_PER_SECOND, Resampler, pcm16_to_float

if TYPE_CHECKING:  # not at run time: `asr serve --help` reads ServerConfig without loading torch
    from .decoding import Segment
    from .streaming import Recognizer, Stream

log = logging.getLogger("asr.server")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_UNSUPPORTED = 1003  # RFC 6455: data the endpoint cannot accept
CLOSE_POLICY = 1008  # RFC 6455: a message (or behaviour) that violates the server's policy
CLOSE_INTERNAL = 1011  # RFC 6455: the server met an unexpected condition
WEB = Path(__file__).parent / "web"  # the page's files
WEB_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
             ".svg": "image/svg+xml"}


TRIM_SECONDS = 5.0  # after this long idle, the worker returns freed memory to the system


def release_memory() -> None:
    """Return the C heap's free pages to the system (glibc's malloc_trim); elsewhere a no-op."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 2700  # vosk-server's port
    sample_rate: int = 16000  # assumed when a client sends no config
    max_message: int = 1 << 20  # bytes per WebSocket message (32 s of 16 kHz PCM)
    max_connections: int = 256  # WebSocket connections and HTTP requests in progress, together
    idle_timeout: float = 60.0  # seconds without a message (or a request) before the server closes
    stall_timeout: float = 120.0  # seconds waited for a client beyond its audio's length; an upload's deadline
    max_upload: int = 25 << 20  # bytes of one uploaded file (OpenAI's limit is 25 MB)
    upload_workers: int = 1  # files transcribed at once (the others wait their turn)
    step_seconds: float = 1.0  # most audio of one stream per model step (keeps batches even)
    words: bool = True  # default of the `words` config key
    max_alternatives: int = 0  # default of the `max_alternatives` config key

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port}: must be 0..65535")
        for name in ("sample_rate", "max_connections", "max_message", "max_upload", "upload_workers", "idle_timeout",
                     "stall_timeout", "step_seconds"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number (got {value})")


class ProtocolError(Exception):
    """A client message the protocol does not allow; str() is the reason sent back."""

    code = CLOSE_UNSUPPORTED


class InternalError(ProtocolError):
    """The server failed on a client's audio (a bug): reported to that client as an error."""

    code = CLOSE_INTERNAL


@dataclass
class Job:
    """One message of one connection, waiting for the worker."""
    conn: "Connection"
    pcm: bytes | None  # audio to feed, or None for eof
    future: asyncio.Future
    segments: list[Segment] = field(default_factory=list)  # endpoints met while stepping it


class Connection:
    """A client's settings, resampler and stream; touched by the worker thread only once audio flows."""

    def __init__(self, server: "StreamingServer", peer):
        self.peer = peer
        self.sample_rate = server.config.sample_rate
        self.words = server.config.words
        self.max_alternatives = server.config.max_alternatives
        self.stream: Stream | None = None  # made at the first audio, as vosk-server does
        self.resampler: Resampler | None = None
        self.odd_byte = b""  # a 16-bit sample split across two messages
        self.audio_bytes = 0  # PCM received
        self.closed = False
        self.punctuation = False  # vosk-server's results are lower case without marks; {"punctuation": true} asks

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received so far."""
        return self.audio_bytes / (2 * self.sample_rate)

    def configure(self, config) -> None:
        if not isinstance(config, dict):
            raise ProtocolError('"config" must be an object')
        if "sample_rate" in config:
            rate = config["sample_rate"]
            # a range check before any float conversion: an int of 400 digits overflows a float
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 1000 <= rate <= 384000 \
                    or (isinstance(rate, float) and not rate.is_integer()):
                raise ProtocolError('"sample_rate" must be a whole number of Hz between 1000 and 384000')
            if self.stream is not None and int(rate) != self.sample_rate:
                raise ProtocolError('"sample_rate" cannot change once audio has been sent')
            self.sample_rate = int(rate)
        if "words" in config:
            if not isinstance(config["words"], (bool, int)):
                raise ProtocolError('"words" must be true or false')
            self.words = bool(config["words"])
        if "max_alternatives" in config:
            n = config["max_alternatives"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ProtocolError('"max_alternatives" must be a non-negative integer')
            self.max_alternatives = n
        if "punctuation" in config:  # our extension (the page sends it): final results punctuated
            if not isinstance(config["punctuation"], bool):
                raise ProtocolError('"punctuation" must be true or false')
            self.punctuation = config["punctuation"]
        if "phrase_list" in config:
            if not isinstance(config["phrase_list"], list) or not all(isinstance(p, str) for p in config["phrase_list"]):
                raise ProtocolError('"phrase_list" must be a list of strings')
            log.info("%s: phrase_list is not supported by this recogniser; ignored", self.peer)

    def samples(self, pcm: bytes, last: bool = False) -> np.ndarray:
        """PCM bytes -> 16 kHz float samples, carrying an odd byte to the next message."""
        pcm = self.odd_byte + pcm
        cut = len(pcm) - len(pcm) % 2
        self.odd_byte = pcm[cut:]
        return self.resampler(pcm16_to_float(pcm[:cut]), last=last)

    def result(self, segments: list[Segment]) -> dict:
        """Vosk's Result()/FinalResult() for the segments closed since the last reply."""
        if self.punctuation:
            from .punctuation import bundled, punctuate_segment
            segments = [punctuate_segment(s, bundled()) for s in segments] if bundled() else segments
        words = [w for s in segments for w in s.words]
        text = " ".join(s.text for s in segments if s.text)
        if self.max_alternatives > 0:
            alt = {"text": text, "confidence": round(sum(w.conf for w in words) / len(words), 3) if words else 1.0}
            if self.words and words:
                alt["result"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in words]
            return {"alternatives": [alt]}
        out = {"text": text}
        if self.words and words:
            out = {"result": [w.to_dict() for w in words], "text": text}
        return out


class StreamingServer:
    """The server: connections feed one batching worker. Use `run()` or `start()`/`stop()`."""

    def __init__(self, recognizer: Recognizer, config: ServerConfig = ServerConfig(), files=None):
        """files: the models the HTTP API transcribes uploads with (openai_api.FileModel, the
        default first); None: the recogniser's model."""
        from .openai_api import TranscriptionAPI
        self.recognizer = recognizer
        self.config = config
        self.connections: set[Connection] = set()  # open WebSocket (Vosk protocol) connections
        self.active = 0  # WebSocket connections and HTTP requests in progress (max_connections)
        self.port: int | None = None
        self.api = TranscriptionAPI(self, files)
        self._jobs: list[Job] = []
        self._wake: asyncio.Event | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="asr-step")
        self._runner = None
        self._sockets: set = set()  # the aiohttp WebSocketResponses, to close at shutdown
        self._worker: asyncio.Task | None = None
        sub = recognizer.model.cfg.subsampling
        self._max_frames = max(sub, int(config.step_seconds * FRAMES_PER_SECOND) // sub * sub)
        self.ticks = 0  # model steps taken (for tests and benchmarks)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        """Bind and start serving; returns the port (useful with port 0)."""
        from aiohttp import web
        self._wake = asyncio.Event()
        self._worker = asyncio.create_task(self._work())
        # client_max_size: the most a handler may read into memory at once (the upload itself
        # is streamed to a file and bounded by max_upload)
        app = web.Application(middlewares=[self._limit], client_max_size=1 << 20)
        app.router.add_get("/v1/models", self.api.models)
        app.router.add_post("/v1/audio/transcriptions", self.api.transcriptions)
        app.router.add_get("/v1/audio/transcriptions", self.api.use_post)
        app.router.add_route("*", "/v1/audio/translations", self.api.translations)
        app.router.add_route("*", "/{path:.*}", self._any)
        app.on_shutdown.append(self._close_sockets)
        # keepalive_timeout: a connection that completes no request (slow or no headers) is
        # closed after it, as an idle WebSocket is
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0,
                                     keepalive_timeout=self.config.idle_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._worker.cancel()
            raise
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)
        self.api.close()

    async def run(self, stop: asyncio.Future | None = None, on_ready=None) -> None:
        """Serve until `stop` completes (forever when None)."""
        port = await self.start()
        if on_ready:
            on_ready(self.config.host, port)
        try:
            await (stop if stop is not None else asyncio.Future())
        finally:
            await self.stop()

    async def _close_sockets(self, app) -> None:
        for ws in list(self._sockets):
            await ws.close(code=CLOSE_GOING_AWAY, message=b"server shutting down")

    # ------------------------------------------------------------------ HTTP
    async def _limit(self, request, handler):
        """Middleware: max_connections counts WebSocket connections and HTTP requests in progress."""
        if self.active >= self.config.max_connections:
            return self.api.error(503, "too many connections; try again later", kind="server_error")
        self.active += 1
        try:
            return await handler(request)
        finally:
            self.active -= 1
    _limit.__middleware_version__ = 1  # aiohttp's marker for new-style middlewares

    async def _any(self, request):
        """A WebSocket upgrade on any path speaks the Vosk protocol; GET / is the page."""
        from aiohttp import web
        if request.method == "GET" and web.WebSocketResponse().can_prepare(request).ok:
            return await self._vosk(request)
        name = request.match_info["path"] or "index.html"
        path = WEB / name
        if request.method in ("GET", "HEAD") and "/" not in name and path.suffix in WEB_TYPES and path.is_file():
            return web.FileResponse(path, headers={"Content-Type": WEB_TYPES[path.suffix],
                                                   "Cache-Control": "no-cache"})
        if request.method not in ("GET", "HEAD"):
            return self.api.error(405, f"{request.method} {request.path}: not allowed here")
        return self.api.error(404, f"{request.path}: no such page (the API is under /v1/)")

    # ------------------------------------------------------------------ WebSocket connections
    async def _vosk(self, request):
        from aiohttp import WSMsgType, web
        cfg = self.config
        ws = web.WebSocketResponse(max_msg_size=cfg.max_message, compress=False)
        await ws.prepare(request)
        conn = Connection(self, request.remote)
        self.connections.add(conn)
        self._sockets.add(ws)
        loop = asyncio.get_running_loop()
        waited = 0.0  # seconds spent waiting for this client's messages (not for our replies)
        log.info("connection from %s", conn.peer)
        try:
            while True:
                # The server may wait for a client at most stall_timeout longer, in all, than the
                # audio it has sent lasts: a live client (real time) never gets there, one that
                # trickles bytes does. Time spent on our replies does not count, so a client held
                # back by a busy server is not blamed for it.
                left = cfg.stall_timeout + conn.audio_seconds - waited
                wait = min(cfg.idle_timeout, left)
                t0 = loop.time()
                try:
                    if wait <= 0:
                        raise TimeoutError
                    msg = await ws.receive(timeout=wait)
                except (TimeoutError, asyncio.TimeoutError):
                    if wait < cfg.idle_timeout:
                        log.info("%s: closed, waited %.0f s for %.1f s of audio", conn.peer,
                                 waited + loop.time() - t0, conn.audio_seconds)
                        await ws.close(code=CLOSE_POLICY, message=f"too slow: waited {cfg.stall_timeout:g} s "
                                                                  "longer than the audio sent lasts".encode())
                    else:
                        await ws.close(code=CLOSE_NORMAL, message=f"idle for {cfg.idle_timeout:g} s".encode())
                    return ws
                waited += loop.time() - t0
                if msg.type == WSMsgType.TEXT:
                    message = msg.data
                elif msg.type == WSMsgType.BINARY:
                    message = msg.data
                    conn.audio_bytes += len(message)
                else:  # closed by the client, or refused by aiohttp (too big: 1009) and closed
                    return ws
                try:
                    reply, done = await self._reply(conn, message)
                except ProtocolError as err:
                    await self._send(ws, {"error": str(err)})
                    await ws.close(code=err.code, message=str(err)[:120].encode())
                    return ws
                if reply is not None:
                    await self._send(ws, reply)
                if done:
                    await ws.close()
                    return ws
        except (ConnectionError, TimeoutError, asyncio.TimeoutError):
            return ws  # the client went away, or stopped reading what we send
        finally:
            conn.closed = True
            self.connections.discard(conn)
            self._sockets.discard(ws)
            log.info("closed %s", conn.peer)

    async def _send(self, ws, reply: dict) -> None:
        async with asyncio.timeout(self.config.idle_timeout):  # a client that does not read
            await ws.send_str(json.dumps(reply, ensure_ascii=False))

    async def _reply(self, conn: Connection, message) -> tuple[dict | None, bool]:
        """The reply to one message (None: no reply) and whether the connection is done."""
        if isinstance(message, str):
            try:
                obj = json.loads(message)
            except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
                raise ProtocolError("text messages must be JSON: a config object or {\"eof\": 1}") from None
            if not isinstance(obj, dict) or not ({"config", "eof"} & obj.keys()):
                raise ProtocolError('expected {"config": {...}} or {"eof": 1}')
            if "config" in obj:
                conn.configure(obj["config"])
                return None, False
            if obj["eof"] not in (1, True):
                raise ProtocolError('"eof" must be 1')
            return await self._submit(conn, None), True
        return await self._submit(conn, bytes(message)), False

    async def _submit(self, conn: Connection, pcm: bytes | None) -> dict:
        if conn.stream is None:
            conn.stream = self.recognizer.stream()
            conn.resampler = Resampler(conn.sample_rate)
        job = Job(conn, pcm, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._wake.set()
        return await job.future

    # ------------------------------------------------------------------ the batching worker
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        carry: list[Job] = []  # jobs with audio left over after their last step
        worked = False  # since the last release of memory
        while True:
            if not carry:
                try:
                    async with asyncio.timeout(TRIM_SECONDS if worked else None):
                        await self._wake.wait()
                except TimeoutError:
                    # Idle for a while: hand the freed heap back to the system. Streams of every
                    # length come and go, and the batch's tensors change size every tick; glibc
                    # keeps what they free, scattered (benchmarks/server_soak.py).
                    await loop.run_in_executor(self._pool, release_memory)
                    worked = False
                    continue
            worked = True
            self._wake.clear()
            jobs, self._jobs = carry + self._jobs, []
            jobs = [j for j in jobs if not j.conn.closed]
            if not jobs:
                carry = []
                continue
            try:
                done, carry = await loop.run_in_executor(self._pool, self._tick, jobs)
            except Exception as err:  # a bug must not take every connection down silently
                log.exception("model step failed")
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(InternalError(f"internal error: {type(err).__name__}"))
                carry = []
                continue
            for job, reply in done:
                if not job.future.done():
                    job.future.set_result(reply)

    def _tick(self, jobs: list[Job]) -> tuple[list[tuple[Job, dict]], list[Job]]:
        """Worker thread: feed new audio, one batched model step, endpoints and replies."""
        ending = [j for j in jobs if j.pcm is None]
        going = [j for j in jobs if j.pcm is not None]
        for j in going:
            if j.pcm:
                j.conn.stream.feed(j.conn.samples(j.pcm))
                j.pcm = b""
        done, carry = [], []
        if going:
            self.recognizer.step([j.conn.stream for j in going], max_frames=self._max_frames)
            sub = self.recognizer.model.cfg.subsampling
            for j in going:
                while (seg := j.conn.stream.endpoint()) is not None:
                    j.segments.append(seg)
                if j.conn.stream.backlog >= sub:
                    carry.append(j)  # more of its chunk next tick, before it is answered
                elif j.segments:
                    done.append((j, j.conn.result(j.segments)))
                else:
                    done.append((j, {"partial": j.conn.stream.partial()}))
        if ending:
            for j in ending:
                j.conn.stream.feed(j.conn.samples(b"", last=True))
            self.recognizer.step([j.conn.stream for j in ending], final=True)
            for j in ending:
                done.append((j, j.conn.result([j.conn.stream.finish()])))
        self.ticks += 1
        return done, carry


def serve(recognizer: Recognizer, config: ServerConfig = ServerConfig(), on_ready=None, files=None) -> None:
    """Run the server until SIGINT or SIGTERM (files: as StreamingServer's)."""
    import signal

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        await StreamingServer(recognizer, config, files).run(stop, on_ready)

    asyncio.run(main())
