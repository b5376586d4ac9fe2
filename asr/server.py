"""A WebSocket streaming server speaking vosk-server's protocol, so Vosk clients work unchanged.

Protocol (alphacep/vosk-server, websocket/asr_server.py), per connection:

    client -> {"config": {"sample_rate": 8000, "words": true, "max_alternatives": 0}}   optional
    client -> binary chunks of 16-bit little-endian mono PCM at that rate
    server <- one reply per chunk: {"partial": "..."}, or at an endpoint
              {"text": "...", "result": [{"word", "start", "end", "conf"}, ...]}
    client -> {"eof" : 1}
    server <- the final result of the rest of the audio, then closes the connection.

A valid config gets no reply (as in vosk-server). `phrase_list` is accepted and ignored;
`max_alternatives` > 0 gives vosk's {"alternatives": [{"text", "confidence", "result"}]} form
with the one hypothesis a CTC decoder has. Anything else (malformed JSON, wrong types, a
text message that is neither config nor eof) is answered with {"error": "..."} and the
connection is closed (code 1003) without disturbing the others; frames over the size limit
are refused by websockets (code 1009); idle connections are closed after a timeout.

Throughput: every connection's chunk goes to one worker, which runs the model over all the
streams that have audio in ONE batched step per tick (`Recognizer.step`), in a thread so the
event loop keeps serving sockets meanwhile. A connection has at most one chunk in the
worker (it reads its next message after the reply), so buffers stay bounded: the worker's
one chunk plus websockets' receive queue of `max_queue` messages of at most `max_message`
bytes each.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

import numpy as np

from .audio import Resampler, pcm16_to_float
from .decoding import Segment
from .streaming import Recognizer, Stream

log = logging.getLogger("asr.server")

CLOSE_UNSUPPORTED = 1003  # RFC 6455: data the endpoint cannot accept
CLOSE_INTERNAL = 1011  # RFC 6455: the server met an unexpected condition


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 2700  # vosk-server's port
    sample_rate: int = 16000  # assumed when a client sends no config
    max_message: int = 1 << 20  # bytes per WebSocket message (32 s of 16 kHz PCM)
    max_queue: int = 8  # messages buffered per connection before TCP back-pressure
    max_connections: int = 256
    idle_timeout: float = 60.0  # seconds without a message before the server closes
    step_seconds: float = 1.0  # most audio of one stream per model step (keeps batches even)
    words: bool = True  # default of the `words` config key
    max_alternatives: int = 0  # default of the `max_alternatives` config key


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
        self.closed = False

    def configure(self, config) -> None:
        if not isinstance(config, dict):
            raise ProtocolError('"config" must be an object')
        if "sample_rate" in config:
            rate = config["sample_rate"]
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                    or not 1000 <= rate <= 384000 or rate != int(rate):
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

    def __init__(self, recognizer: Recognizer, config: ServerConfig = ServerConfig()):
        self.recognizer = recognizer
        self.config = config
        self.connections: set[Connection] = set()
        self.port: int | None = None
        self._jobs: list[Job] = []
        self._wake: asyncio.Event | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="asr-step")
        self._server = None
        self._worker: asyncio.Task | None = None
        sub = recognizer.model.cfg.subsampling
        self._max_frames = max(sub, int(config.step_seconds * 100) // sub * sub)  # 10 ms feature frames
        self.ticks = 0  # model steps taken (for tests and benchmarks)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        """Bind and start serving; returns the port (useful with port 0)."""
        from websockets.asyncio.server import serve
        self._wake = asyncio.Event()
        self._worker = asyncio.create_task(self._work())
        self._server = await serve(self._handle, self.config.host, self.config.port, process_request=self._admit,
                                   max_size=self.config.max_message, max_queue=self.config.max_queue,
                                   compression=None, logger=logging.getLogger("asr.server.ws"))
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def run(self, stop: asyncio.Future | None = None, on_ready=None) -> None:
        """Serve until `stop` completes (forever when None)."""
        port = await self.start()
        if on_ready:
            on_ready(self.config.host, port)
        try:
            await (stop if stop is not None else asyncio.Future())
        finally:
            await self.stop()

    def _admit(self, connection, request):
        if len(self.connections) >= self.config.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        return None

    # ------------------------------------------------------------------ connections
    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed
        conn = Connection(self, ws.remote_address)
        self.connections.add(conn)
        log.info("connection from %s", conn.peer)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.config.idle_timeout):
                        message = await ws.recv()
                except TimeoutError:
                    await ws.close(1000, f"idle for {self.config.idle_timeout:g} s")
                    return
                try:
                    reply, done = await self._reply(conn, message)
                except ProtocolError as err:
                    await ws.send(json.dumps({"error": str(err)}))
                    await ws.close(err.code, str(err)[:120])
                    return
                if reply is not None:
                    await ws.send(json.dumps(reply, ensure_ascii=False))
                if done:
                    await ws.close()
                    return
        except ConnectionClosed:
            pass  # the client went away (or sent an oversized frame); nothing to answer
        finally:
            conn.closed = True
            self.connections.discard(conn)
            log.info("closed %s", conn.peer)

    async def _reply(self, conn: Connection, message) -> tuple[dict | None, bool]:
        """The reply to one message (None: no reply) and whether the connection is done."""
        if isinstance(message, str):
            try:
                obj = json.loads(message)
            except ValueError:
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
        while True:
            if not carry:
                await self._wake.wait()
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
                seg = j.conn.stream.endpoint()
                if seg is not None:
                    j.segments.append(seg)
                    j.conn.stream.words.clear()  # sent; a long-lived connection must not hoard them
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
                done.append((j, j.conn.result([j.conn.stream.final_segment()])))
        self.ticks += 1
        return done, carry


def serve(recognizer: Recognizer, config: ServerConfig = ServerConfig(), on_ready=None) -> None:
    """Run the server until SIGINT or SIGTERM."""
    import signal

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        await StreamingServer(recognizer, config).run(stop, on_ready)

    asyncio.run(main())
