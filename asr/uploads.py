"""How the HTTP API's uploads share the machine: turns, a duration limit, cancellation.

An uploaded file is transcribed in a thread of its own, block by block (asr.transcribe calls
`on_progress` after every block of about 10 s of audio). Between blocks the job

- stops when it has been cancelled (its client went away, or the server is shutting down);
- stops when its audio has passed the duration limit (a format whose length the header does
  not state exactly, or states wrongly, cannot run longer than the limit: `check_header`
  refuses the others before any work);
- passes its turn when an upload that has had less audio done waits: `workers` jobs compute
  at once and the others take turns, a block each, the next turn going to the job with the
  least audio done so far (least attained service, as OS schedulers favour short jobs
  without knowing their length). A new upload starts after the block in work, so a
  two-hour file cannot make a two-second one wait for it; two long ones alternate.

The threads are daemon threads: a job stuck in one long call cannot keep the process alive
at shutdown (the server cancels every job, waits a moment, and exits).
"""
from __future__ import annotations

import asyncio
import itertools
import threading

from .audio import AudioError, info


class Cancelled(Exception):
    """The job was cancelled: its client went away or the server is stopping."""


class TooLong(Exception):
    """The audio lasts longer than the limit; str() says by how much."""


class Busy(Exception):
    """No turn came within the wait allowed."""


def check_header(path: str, limit: float) -> None:
    """Raise TooLong where the file's header says it lasts longer than `limit` seconds.
    MP3 headers only estimate their length, and formats only ffmpeg reads have none here:
    for those the limit is kept while decoding (Job.progress)."""
    try:
        meta = info(path)
    except AudioError:
        return  # transcribe says what is wrong with it (or reads it through ffmpeg)
    if meta.format == "MP3" or meta.samplerate <= 0 or meta.frames <= 0:
        return
    seconds = meta.frames / meta.samplerate
    if seconds > limit:
        raise TooLong(f"the audio lasts {hms(seconds)} ({meta.frames} samples at {meta.samplerate} Hz); "
                      f"the limit is {hms(limit)}")


def hms(seconds: float) -> str:
    """3725.0 -> '1 h 2 min 5 s'; 42.5 -> '42.5 s'."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return " ".join(f"{v} {u}" for v, u in ((h, "h"), (m, "min"), (s, "s")) if v)


class Turns:
    """`workers` jobs compute at once; of those waiting, the one with the least audio done
    goes next (the one that came first among equals)."""

    def __init__(self, workers: int):
        self._cond = threading.Condition()
        self._free = workers
        self._queue: list[Job] = []  # waiting, in arrival order
        self._arrivals = itertools.count()

    def _next(self) -> "Job":
        return min(self._queue, key=lambda j: (j.seconds, j.arrival))

    def acquire(self, job: "Job", timeout: float | None = None) -> None:
        """Wait for a turn (Busy after `timeout` s; Cancelled when the job is cancelled meanwhile)."""
        with self._cond:
            job.arrival = next(self._arrivals)
            self._queue.append(job)
            try:
                ready = self._cond.wait_for(lambda: job.cancelled.is_set() or
                                            (self._free > 0 and self._next() is job), timeout)
            finally:
                self._queue.remove(job)
                self._cond.notify_all()  # the next in line may be at the head now
            if job.cancelled.is_set():
                raise Cancelled
            if not ready:
                raise Busy
            self._free -= 1
            job.holding = True

    def release(self, job: "Job") -> None:
        with self._cond:
            if job.holding:
                job.holding = False
                self._free += 1
                self._cond.notify_all()

    def behind(self, job: "Job") -> bool:
        """Whether a waiting job has had less audio done than `job` (and so should go first)."""
        with self._cond:
            return any(j.seconds < job.seconds for j in self._queue)

    def wake(self) -> None:
        """Let waiting jobs look at their cancel flag."""
        with self._cond:
            self._cond.notify_all()


class Job:
    """One upload's transcription: its limit, cancel flag and turns. `progress` is the
    on_progress callback of asr.transcribe."""

    def __init__(self, turns: Turns, limit: float):
        self.turns = turns
        self.limit = limit
        self.seconds = 0.0  # audio consumed so far
        self.arrival = 0  # when it last joined the queue (Turns)
        self.cancelled = threading.Event()
        self.holding = False  # has a turn now
        self.finished = threading.Event()  # set by its thread at the end

    def cancel(self) -> None:
        self.cancelled.set()
        self.turns.wake()

    def progress(self, seconds: float) -> None:
        self.seconds += seconds
        if self.cancelled.is_set():
            raise Cancelled
        if self.seconds > self.limit:
            raise TooLong(f"the audio lasts longer than the limit of {hms(self.limit)}")
        if self.turns.behind(self):  # an upload with less done waits: let it go first
            self.turns.release(self)
            self.turns.acquire(self)

    def run(self, work, first_turn_wait: float):
        """work() in this thread with a turn held (the caller's thread: see run_in_thread)."""
        self.turns.acquire(self, first_turn_wait)
        try:
            return work()
        finally:
            self.turns.release(self)


def run_in_thread(fn, *args) -> asyncio.Future:
    """fn(*args) in a new daemon thread; its result or exception in the returned future."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(ok: bool, value) -> None:
        if not future.done():
            (future.set_result if ok else future.set_exception)(value)

    def main():
        try:
            value, ok = fn(*args), True
        except BaseException as err:  # handed to the awaiting handler
            value, ok = err, False
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:  # the loop is closed: the server is gone, nobody waits
            pass
    threading.Thread(target=main, name="asr-upload", daemon=True).start()
    return future

