"""The microphone: a sounddevice InputStream at the device's own rate, as 16 kHz mono blocks.

PortAudio calls `_callback` on its own thread with each block of 16-bit samples; the block
is copied into a bounded queue and nothing else is done there. The consumer (`blocks()`)
takes blocks off the queue, writes them unchanged to --save-audio's file (exactly what
was heard), and converts them to 16 kHz mono float32 with the streaming resampler.

sounddevice is imported here only, lazily, so that transcribing files works on machines
without PortAudio. PortAudio reads the device list when sounddevice is imported: set
PULSE_SERVER and the like before the first use.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from .audio import Resampler, to_mono

BLOCK_SECONDS = 0.1  # one callback's worth of audio
QUEUE_SECONDS = 10.0  # what the queue holds before blocks are dropped (the consumer is stuck)
STALL_SECONDS = 3.0  # no audio for this long from a running stream: the device is gone


class MicError(Exception):
    """A microphone that cannot be used; str() is one line naming the device and the reason."""


def _sounddevice():
    try:
        import sounddevice
    except OSError as err:  # PortAudio missing: "PortAudio library not found"
        raise MicError(f"cannot use audio input: {err} (install PortAudio, e.g. apt-get install libportaudio2)") from None
    return sounddevice


def list_devices() -> list[dict]:
    """Input devices: [{index, name, hostapi, channels, rate, default}]."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
        apis = sd.query_hostapis()
    except sd.PortAudioError as err:
        raise MicError(f"cannot list audio devices: {err}") from None
    return [{"index": d["index"], "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "channels": d["max_input_channels"], "rate": int(d["default_samplerate"]),
             "default": d["index"] == default_in}
            for d in devices if d["max_input_channels"] > 0]


def _parse_device(device: str | int | None):
    if device is None or isinstance(device, int):
        return device
    return int(device) if device.strip().isdigit() else device


class Microphone:
    """Live audio from an input device.

        with Microphone(device=None, save_path="heard.wav") as mic:
            for block in mic.blocks():       # 16 kHz mono float32, until mic.stop()
                ...
            last = mic.flush()

    device: index or (part of a) name as sounddevice takes it; None for the default input.
    on_warning(msg): called from the consumer when audio was lost (input overflow or a full
    queue); listening goes on. A device that stops delivering raises MicError.
    """

    def __init__(self, device: str | int | None = None, save_path: str | os.PathLike | None = None,
                 block_seconds: float = BLOCK_SECONDS, on_warning: Callable[[str], None] | None = None):
        self.device = _parse_device(device)
        self.save_path = save_path
        self.block_seconds = block_seconds
        self.on_warning = on_warning
        self.rate = 0
        self.channels = 1
        self.name = "default input" if device is None else str(device)
        self.overflows = 0  # PortAudio input overflows (audio lost before we got it)
        self.dropped = 0  # blocks dropped because the consumer fell behind
        self._reported = (0, 0)
        self._queue: queue.Queue | None = None
        self._stream = None
        self._file = None
        self._stopped = threading.Event()
        self._finished = threading.Event()  # PortAudio says the stream ended
        self.resampler: Resampler | None = None

    # ------------------------------------------------------------------ open / close
    def __enter__(self) -> "Microphone":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def find(self) -> dict:
        """The device's PortAudio description; MicError if there is no such input."""
        sd = _sounddevice()
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as err:
            if self.device is None:
                raise MicError(f"no default audio input ({err}): is a microphone connected? "
                               "See `asr listen --list-devices`") from None
            raise MicError(f"{self.name}: no such input device ({err}); see `asr listen --list-devices`") from None
        self.name = f"{info['name']} (device {info['index']})"
        if info["max_input_channels"] < 1:
            raise MicError(f"{self.name}: has no input channels")
        return info

    def open(self) -> None:
        """Start capturing (blocks queue up until read)."""
        sd = _sounddevice()
        info = self.find()
        last_err = None
        for rate, channels in self._formats(info):
            self._queue = queue.Queue(maxsize=max(2, int(QUEUE_SECONDS / self.block_seconds)))
            try:
                self._stream = sd.InputStream(device=info["index"], samplerate=rate, channels=channels, dtype="int16",
                                              blocksize=int(rate * self.block_seconds), callback=self._callback,
                                              finished_callback=self._finished.set)
                self._stream.start()
            except sd.PortAudioError as err:
                last_err = err
                self._stream = None
                continue
            self.rate, self.channels = rate, channels
            break
        if self._stream is None:
            raise MicError(f"{self.name}: cannot open for recording ({last_err})")
        self.resampler = Resampler(self.rate)
        if self.save_path is not None:
            import soundfile as sf
            try:
                self._file = sf.SoundFile(self.save_path, "w", samplerate=self.rate, channels=self.channels,
                                          subtype="PCM_16")
            except (sf.LibsndfileError, TypeError, ValueError, OSError) as err:
                self.close()
                raise MicError(f"{self.save_path}: cannot write audio there ({err})") from None

    @staticmethod
    def _formats(info) -> Iterator[tuple[int, int]]:
        """(rate, channels) to try: the device's own rate first, mono, then what it insists on."""
        rates = [int(info["default_samplerate"]), 16000, 48000, 44100]
        chans = [1] + ([min(2, info["max_input_channels"])] if info["max_input_channels"] > 1 else [])
        seen = set()
        for c in chans:
            for r in rates:
                if r > 0 and (r, c) not in seen:
                    seen.add((r, c))
                    yield r, c

    def stop(self) -> None:
        """Ask blocks() to finish (from any thread)."""
        self._stopped.set()

    def close(self, timeout: float = 2.0) -> bool:
        """Stop and close the stream and the --save-audio file. False when PortAudio did not
        close the stream within timeout seconds (a lost device can hang it): the caller should
        then leave the process with os._exit, since PortAudio's own exit handler would hang too."""
        if self._file is not None:
            self._file.close()
            self._file = None
        stream, self._stream = self._stream, None
        if stream is None:
            return True

        def shut():
            try:
                stream.abort()
                stream.close()
            except Exception:  # a lost device may refuse to close cleanly; it is gone either way
                pass
        closer = threading.Thread(target=shut, daemon=True)
        closer.start()
        closer.join(timeout)
        return not closer.is_alive()

    # ------------------------------------------------------------------ the two threads
    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        """PortAudio's thread: copy and queue, nothing more."""
        if status.input_overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait(indata.copy())
        except queue.Full:
            self.dropped += 1

    def _report_losses(self) -> None:
        now = (self.overflows, self.dropped)
        if now != self._reported and self.on_warning is not None:
            new_over, new_drop = now[0] - self._reported[0], now[1] - self._reported[1]
            parts = []
            if new_over:
                parts.append(f"input overflow ({new_over}x)")
            if new_drop:
                parts.append(f"{new_drop * self.block_seconds:.1f} s dropped: transcription fell behind")
            self.on_warning(f"{self.name}: audio lost: {', '.join(parts)}; listening goes on")
        self._reported = now

    def raw_blocks(self) -> Iterator[np.ndarray]:
        """The device's blocks as captured: (n, channels) int16. After stop(), the stream is
        halted and what it had already captured still comes out, then the iteration ends."""
        last_audio = time.monotonic()
        while True:
            if self._stopped.is_set():
                self._halt()
                while not self._queue.empty():
                    yield self._queue.get_nowait()
                return
            try:
                block = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopped.is_set():
                    continue
                if self._finished.is_set() or (self._stream is not None and not self._stream.active):
                    raise MicError(f"{self.name}: the audio device stopped (unplugged or lost?)") from None
                if time.monotonic() - last_audio > STALL_SECONDS:
                    raise MicError(f"{self.name}: no audio for {STALL_SECONDS:g} s (device lost?)") from None
                continue
            last_audio = time.monotonic()
            self._report_losses()
            yield block

    def _halt(self) -> None:
        """Stop capturing (callbacks end); the stream is closed by close()."""
        if self._stream is not None and hasattr(self._stream, "abort"):
            try:
                self._stream.abort()
            except Exception:  # a lost device may refuse; it delivers nothing more either way
                pass

    def blocks(self) -> Iterator[np.ndarray]:
        """16 kHz mono float32 blocks, until stop(); then flush() gives the resampler's tail."""
        for block in self.raw_blocks():
            if self._file is not None:
                self._file.write(block)
            out = self.resampler(to_mono(block.astype(np.float32) / 32768.0))
            if len(out):
                yield out

    def flush(self) -> np.ndarray:
        """The last 16 kHz samples the resampler holds back (call once, at the end)."""
        if self.resampler is None:
            return np.zeros(0, np.float32)
        return self.resampler(np.zeros(0, np.float32), last=True)
