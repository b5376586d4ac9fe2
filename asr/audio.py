"""The audio contract, and reading audio files into it.

Everything downstream of this module sees 16 kHz mono float32 samples in [-1, 1].
Files of any rate, channel count and PCM encoding that libsndfile reads (WAV, FLAC,
OGG/Vorbis, MP3 where libsndfile has it, ...) are converted on the way in, block by
block, so that a long file never has to sit in memory whole.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000  # Hz; every model sees this rate
N_FFT = 400  # 25 ms analysis window
WIN_LENGTH = N_FFT
HOP_LENGTH = 160  # 10 ms between feature frames
N_MELS = 80
FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE  # 0.01 s per feature frame

BLOCK_SECONDS = 10.0  # how much of a file is read at a time


class AudioError(Exception):
    """A file or buffer that cannot be used as audio. str() is one line naming the input and why."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def _describe_soundfile_error(err: Exception) -> str:
    msg = str(err)
    # libsndfile messages look like "Error opening 'x.wav': Format not recognised."
    if ":" in msg and msg.startswith("Error opening"):
        msg = msg.split(":", 1)[1].strip()
    msg = msg.rstrip(".")
    if "Format not recognised" in msg or "unknown format" in msg.lower():
        return "not a supported audio file (format not recognised)"
    msg = msg.replace("Error : ", "").replace("Error in", "error in")
    return msg[:1].lower() + msg[1:] if msg else "unreadable audio"


def info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header information of an audio file, raising AudioError for anything unusable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(path, "no such file")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        meta = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        reason = _describe_soundfile_error(err)
        raise AudioError(path, reason if reason.startswith("not a supported") else
                         f"corrupt or truncated header ({reason})") from None
    # libsndfile quietly shortens a WAV whose data chunk is cut off; its log says "should be".
    for line in meta.extra_info.splitlines():
        found = re.match(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", line.strip())
        if found:
            raise AudioError(path, f"truncated: the header promises {found[1]} bytes of samples, "
                                   f"the file holds {found[2]}")
    return meta


def check_samples(samples: np.ndarray, source: str) -> None:
    """Raise AudioError if samples hold NaN or infinite values."""
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(source, f"contains {bad} NaN or infinite sample(s)")


def to_mono(block: np.ndarray) -> np.ndarray:
    """(n, channels) or (n,) -> (n,) float32, averaging channels."""
    if block.ndim == 2:
        block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
    return np.ascontiguousarray(block, dtype=np.float32)


class Resampler:
    """Streaming resampler to SAMPLE_RATE (soxr); identical output whatever the block sizes."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE):
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._rs = None if self.in_rate == self.out_rate else soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._rs is None:
            return samples
        return self._rs.resample_chunk(samples, last=last)


def iter_blocks(path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield a file's audio as 16 kHz mono float32 blocks of about block_seconds each.

    Raises AudioError (one line: the file and the reason) for a missing, empty, corrupt or
    truncated file, or one with NaN/Inf samples. Memory stays bounded by the block size.
    """
    path = os.fspath(path)
    meta = info(path)
    if meta.frames == 0:
        raise AudioError(path, "contains no audio (zero samples)")
    if meta.samplerate <= 0:
        raise AudioError(path, f"invalid sample rate {meta.samplerate}")
    resample = Resampler(meta.samplerate)
    block_frames = max(1, int(block_seconds * meta.samplerate))
    total = 0
    try:
        with sf.SoundFile(path) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                last = len(block) < block_frames
                total += len(block)
                mono = to_mono(block)
                check_samples(mono, path)
                out = resample(mono, last=last)
                if len(out):
                    yield out
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"corrupt or truncated audio ({_describe_soundfile_error(err)})") from None
    if total == 0:
        raise AudioError(path, "contains no audio (zero samples)")
    if meta.frames > 0 and total < meta.frames:
        raise AudioError(path, f"truncated: header promises {meta.frames} samples, file holds {total}")


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """A whole file as one 16 kHz mono float32 array (use iter_blocks for long files)."""
    blocks = list(iter_blocks(path))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the header."""
    meta = info(path)
    return meta.frames / meta.samplerate if meta.samplerate else 0.0


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes -> float32 in [-1, 1)."""
    if len(data) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
