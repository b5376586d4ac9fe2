"""The audio contract, and reading audio files into it.

Everything downstream of this module sees 16 kHz mono float32 samples in [-1, 1].
Files of any rate, channel count and PCM encoding that libsndfile reads (WAV, FLAC,
OGG/Vorbis, MP3 where libsndfile has it, ...) are converted on the way in, block by
block, so that a long file never has to sit in memory whole. Other formats (.m4a, .webm,
video files, ...) are decoded through ffmpeg where it is on the PATH. A source is a path or
a seekable binary file object (`read_stream` makes one of standard input or a pipe).
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000  # Hz; every model sees this rate
N_FFT = 400  # 25 ms analysis window
WIN_LENGTH = N_FFT
HOP_LENGTH = 160  # 10 ms between feature frames
N_MELS = 80
FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE  # 0.01 s per feature frame
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 feature frames a second
F_MIN = 20.0  # Hz, the lowest mel filter's lower edge (the top is SAMPLE_RATE / 2)

BLOCK_SECONDS = 10.0  # how much of a file is read at a time
# WAV data sizes that mean "unknown length": written by tools that stream a WAV into a pipe and
# cannot seek back to fill it in (ffmpeg -f wav pipe:1 writes 0xFFFFFFFF; sox, arecord 0x7FFFFFFF).
# libsndfile then reads to the end of the file, as sox and ffmpeg do.
UNKNOWN_WAV_SIZES = (0xFFFFFFFF, 0x7FFFFFFF)
STDIN = "-"  # the file name that means standard input
STREAM_MEMORY = 64 << 20  # bytes of a stream (stdin, a pipe) held in memory before it spills to a temporary file


class AudioError(Exception):
    """A file or buffer that cannot be used as audio. str() is one line naming the input and why."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UnsupportedFormat(AudioError):
    """A format libsndfile does not recognise (iter_blocks hands such a file to ffmpeg where there is one)."""


def source_name(source) -> str:
    """How messages name a source: its path, or a file object's name."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<audio buffer>"


def _reason(err: OSError) -> str:
    """'permission denied' from PermissionError(13, 'Permission denied')."""
    text = err.strerror or type(err).__name__
    return text[:1].lower() + text[1:]


class _Stream(tempfile.SpooledTemporaryFile):
    """A stream's bytes, seekable: in memory up to STREAM_MEMORY, then in a temporary file."""

    def __init__(self, name: str):
        super().__init__(max_size=STREAM_MEMORY)
        self._stream_name = name

    @property
    def name(self) -> str:
        return self._stream_name


def read_stream(f: BinaryIO, name: str = "<stdin>") -> BinaryIO:
    """All of a binary stream that cannot seek (standard input, a pipe) in a seekable buffer
    named `name`, for the functions here: libsndfile needs to seek, and a stream is read once."""
    buf = _Stream(name)
    shutil.copyfileobj(f, buf, 1 << 20)
    buf.seek(0)
    return buf


def open_input(path: str):
    """What a command line's file argument reads: `-` is standard input and a pipe (bash's
    <(...)) is read whole into a buffer (read_stream); anything else stays a path."""
    import sys
    if path == STDIN:
        return read_stream(sys.stdin.buffer)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path  # info() says what is wrong with it
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            with open(path, "rb") as f:
                return read_stream(f, path)
        except OSError:
            return path
    return path


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


def _check_file(path: str) -> None:
    """Raise AudioError if path is not a readable, non-empty file."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(path, "is a directory, not an audio file")
        open(path, "rb").close()  # may we read it?
    except FileNotFoundError:
        raise AudioError(path, "no such file") from None
    except NotADirectoryError:
        raise AudioError(path, "no such file (a folder on its path is a file)") from None
    except PermissionError:
        raise AudioError(path, "permission denied") from None
    except OSError as err:
        raise AudioError(path, f"cannot be read ({_reason(err)})") from None
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def info(source) -> sf._SoundFileInfo:
    """Header information of an audio file (a path or a seekable file object), raising
    AudioError for anything unusable (UnsupportedFormat for a format libsndfile does not know)."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        source = name
        _check_file(source)
    else:
        if source.seek(0, os.SEEK_END) == 0:
            raise AudioError(name, "empty input (0 bytes)")
        source.seek(0)
    try:
        meta = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        reason = _describe_soundfile_error(err)
        if reason.startswith("not a supported"):
            raise UnsupportedFormat(name, reason) from None
        raise AudioError(name, f"corrupt or truncated header ({reason})") from None
    # libsndfile quietly shortens a WAV whose data chunk is cut off; its log says "should be".
    # A size that means "unknown length" (a WAV written to a pipe) is no promise: all is read.
    for line in meta.extra_info.splitlines():
        found = re.match(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", line.strip())
        if found and int(found[1]) not in UNKNOWN_WAV_SIZES:
            raise AudioError(name, f"truncated: the header promises {found[1]} bytes of samples, "
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


def iter_blocks(source, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield a file's audio as 16 kHz mono float32 blocks of about block_seconds each.

    source: a path or a seekable binary file object. A format libsndfile does not read is
    decoded through ffmpeg where ffmpeg is on the PATH. Raises AudioError (one line: the file
    and the reason) for a missing, unreadable, empty, corrupt or truncated file, or one with
    NaN/Inf samples. Memory stays bounded by the block size.
    """
    name = source_name(source)
    try:
        meta = info(source)
    except UnsupportedFormat as err:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise UnsupportedFormat(name, f"{err.reason}; if it is audio or video, install ffmpeg (asr then reads it "
                                          f"through ffmpeg) or convert it: ffmpeg -i IN -ar 16000 -ac 1 OUT.wav") from None
        yield from _ffmpeg_blocks(ffmpeg, source, name, block_seconds)
        return
    if isinstance(source, (str, os.PathLike)):
        source = name
    else:
        source.seek(0)
    if meta.frames == 0:
        raise AudioError(name, "contains no audio (zero samples)")
    if meta.samplerate <= 0:
        raise AudioError(name, f"invalid sample rate {meta.samplerate}")
    resample = Resampler(meta.samplerate)
    block_frames = max(1, int(block_seconds * meta.samplerate))
    total = 0
    try:
        with sf.SoundFile(source) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                last = len(block) < block_frames
                total += len(block)
                mono = to_mono(block)
                check_samples(mono, name)
                out = resample(mono, last=last)
                if len(out):
                    yield out
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(name, f"corrupt or truncated audio ({_describe_soundfile_error(err)})") from None
    if total == 0:
        raise AudioError(name, "contains no audio (zero samples)")
    if meta.frames > 0 and total < meta.frames:
        raise AudioError(name, f"truncated: header promises {meta.frames} samples, file holds {total}")


def _ffmpeg_blocks(ffmpeg: str, source, name: str, block_seconds: float) -> Iterator[np.ndarray]:
    """A file ffmpeg decodes, as 16 kHz mono float32 blocks (ffmpeg resamples and mixes down)."""
    spill = None
    if not isinstance(source, (str, os.PathLike)):  # ffmpeg needs to seek in some formats (.m4a): a real file
        spill = tempfile.NamedTemporaryFile(prefix="asr-", suffix=os.path.splitext(name)[1])
        source.seek(0)
        shutil.copyfileobj(source, spill, 1 << 20)
        spill.flush()
        source = spill.name
    path = os.fspath(source)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-vn",
                                 "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        block_bytes = 4 * max(1, int(block_seconds * SAMPLE_RATE))
        total = 0
        try:
            while True:
                data = proc.stdout.read(block_bytes)  # all of it but at the end
                if not data:
                    break
                block = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").astype(np.float32)
                check_samples(block, name)
                total += len(block)
                yield block
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            if spill is not None:
                spill.close()
        if rc != 0:
            log.seek(0)
            lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
            why = re.sub(r"^\S*" + re.escape(path) + r":\s*", "", lines[-1]) if lines else f"exit status {rc}"
            if total == 0:
                raise AudioError(name, f"not a supported audio file (format not recognised; ffmpeg: {why})")
            raise AudioError(name, f"corrupt or truncated audio (ffmpeg: {why})")
    if total == 0:
        raise AudioError(name, "contains no audio (zero samples)")


def load_audio(source) -> np.ndarray:
    """A whole file as one 16 kHz mono float32 array (use iter_blocks for long files)."""
    blocks = list(iter_blocks(source))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def duration(source) -> float:
    """Duration in seconds from the header (AudioError for a file only ffmpeg reads)."""
    meta = info(source)
    return meta.frames / meta.samplerate if meta.samplerate else 0.0


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes -> float32 in [-1, 1)."""
    if len(data) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
