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
event loop keeps serving sockets meanwhile. A connection has at most one message in the worker
(it reads its next message after the reply), and the worker takes at most `step_seconds` of a
message's audio a tick (resampled, framed and stepped), so what a connection holds is bounded:
its one message of at most `max_message` bytes, aiohttp's read buffer (64 KiB, then it stops
reading the socket) and about a second of audio on its way through the model, whatever the
sample rate (docs/live.md gives the measured figure).

Who may connect, and how much one client may hold: asr/guard.py (Host, Origin, API key,
--max-per-client).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import FRAMES_PER_SECOND, Resampler, pcm16_to_float, sample_rate_problem
from .guard import HEADERS, PAGE_CSP, PAGE_HEADERS, Guard, PerClient, Refused, quiet_parse_errors

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


SHUTDOWN_SECONDS = 2.0  # at a stop, how long requests in progress may take to end before they are cancelled


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
    upload_workers: int = 1  # files transcribed at once (the others take turns with them)
    max_uploads: int = 8  # files in work at once (computing or waiting for a turn), a quarter per client
    max_audio_seconds: float = 7200.0  # longest audio an upload may hold (decoded duration)
    max_per_client: int = 32  # WebSocket connections and HTTP requests in progress of one client address
    step_seconds: float = 1.0  # most audio of one stream per model step (keeps batches even)
    words: bool = True  # default of the `words` config key
    max_alternatives: int = 0  # default of the `max_alternatives` config key
    allow_origins: tuple[str, ...] = ()  # other sites whose pages may use the server ("*": any)
    allow_hosts: tuple[str, ...] = ()  # Host names served besides IP literals, localhost and `host` ("*": any)
    api_key: str | None = field(default=None, repr=False)  # required on the API and WebSockets when set

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port}: must be 0..65535")
        for name in ("sample_rate", "max_connections", "max_message", "max_upload", "upload_workers", "idle_timeout",
                     "stall_timeout", "step_seconds", "max_uploads", "max_audio_seconds", "max_per_client"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number (got {value})")
        for origin in self.allow_origins:
            if origin != "*" and not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s]+", origin):
                raise ValueError(f"allowed origin {origin!r}: must be SCHEME://HOST[:PORT] "
                                 "(as a browser sends it, e.g. https://example.com) or *")
        for host in self.allow_hosts:
            if not re.fullmatch(r"[a-zA-Z0-9.*:\[\]-]+", host):
                raise ValueError(f"allowed host {host!r}: must be a host name (example.com) or *")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key must not be empty")


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
    fed: int = 0  # bytes of pcm fed to the stream so far (a step_seconds piece a tick)
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
            if problem := sample_rate_problem(rate):  # the rule files and uploads follow, too
                raise ProtocolError(f'"sample_rate": {problem}')
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
        self.guard = Guard(config)
        self.per_client = PerClient(config.max_per_client)
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
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/v1/models", self.api.models)
        app.router.add_post("/v1/audio/transcriptions", self.api.transcriptions)
        app.router.add_get("/v1/audio/transcriptions", self.api.use_post)
        app.router.add_route("*", "/v1/audio/translations", self.api.translations)
        app.router.add_route("*", "/{path:.*}", self._any)
        app.on_shutdown.append(self._close_sockets)
        # keepalive_timeout: a connection that completes no request (slow or no headers) is
        # closed after it, as an idle WebSocket is
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS,
                                     keepalive_timeout=self.config.idle_timeout)
        await self._runner.setup()
        quiet_parse_errors(self._runner.server, self.api.error_body)
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
        self.api.cancel_all()  # uploads in work end at their next block of audio
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
        """Middleware: who may connect (asr/guard.py), then max_connections and max_per_client,
        which count WebSocket connections and HTTP requests in progress."""
        from aiohttp import web
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        try:
            self.guard.check(request, needs_key=websocket or request.path.startswith("/v1/"), websocket=websocket)
        except Refused as err:
            log.info("refused %s %s from %s: %s", request.method, request.path[:100], request.remote, err)
            response = self.api.error(err.status, str(err), code=err.code)
            if err.status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if self.active >= self.config.max_connections:
            return self._busy(503, "too many connections; try again later", "server_busy")
        client = self.per_client.take(request.remote)
        if client is None:
            return self._busy(429, f"this client has {self.config.max_per_client} connections and requests in "
                                   "progress, the most one client may have", "rate_limit_exceeded")
        self.active += 1
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as err:  # a bug: its traceback in the log, an answer in the API's shape
            log.exception("%s %s failed", request.method, request.path[:100])
            return self.api.error(500, f"internal error ({type(err).__name__})")
        finally:
            self.active -= 1
            self.per_client.give_back(client)
    _limit.__middleware_version__ = 1  # aiohttp's marker for new-style middlewares

    def _busy(self, status: int, message: str, code: str):
        from .openai_api import RETRY_AFTER
        response = self.api.error(status, message, code=code)
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response

    @staticmethod
    async def _headers(request, response) -> None:
        """Every response: no MIME sniffing, no referrer; the page: its CSP, never in a frame."""
        response.headers.update(HEADERS)
        if response.content_type == "text/html" or (response.headers.get("Content-Type") or "").startswith("text/html"):
            host = request.headers.get("Host", "")
            sockets = f"ws://{host} wss://{host}" if re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", host) else ""
            response.headers["Content-Security-Policy"] = PAGE_CSP.format(sockets=sockets)
            response.headers.update(PAGE_HEADERS)

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
                    msg = message = None  # not held while the client's next message is awaited
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
            # a step's worth of the message at a time: resampling, analysis windows and features
            # of a whole message (32 s at 16 kHz, 9 min at 1 kHz) would cost ~30-600 MB at once
            if j.fed < len(j.pcm) and j.conn.stream.backlog < self._max_frames:
                piece = memoryview(j.pcm)[j.fed:j.fed + 2 * max(1, int(self.config.step_seconds * j.conn.sample_rate))]
                j.fed += len(piece)
                j.conn.stream.feed(j.conn.samples(piece))
        done, carry = [], []
        if going:
            self.recognizer.step([j.conn.stream for j in going], max_frames=self._max_frames)
            sub = self.recognizer.model.cfg.subsampling
            for j in going:
                while (seg := j.conn.stream.endpoint()) is not None:
                    j.segments.append(seg)
                if j.fed < len(j.pcm) or j.conn.stream.backlog >= sub:
                    carry.append(j)  # more of its message next tick, before it is answered
                    continue
                j.pcm, j.fed = b"", 0  # the message is done with (the worker's last batch is kept a while)
                if j.segments:
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
    """Run the server until SIGINT or SIGTERM (files: as StreamingServer's). The first signal
    stops it within a few seconds whatever runs (uploads in work are cancelled, their folders
    removed); a second one ends the process at once."""
    import os
    import signal
    server = StreamingServer(recognizer, config, files)

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def on_signal():
            if stop.done():
                log.warning("stopping now (second signal)")
                server.api.close(wait=0)  # removes the upload folders
                os._exit(1)
            log.info("stopping")
            stop.set_result(None)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await server.run(stop, on_ready)

    asyncio.run(main())
