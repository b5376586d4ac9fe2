"""The audio contract, and reading audio files into it.

Everything downstream of this module sees 16 kHz mono float32 samples in [-1, 1].
Files of any rate from MIN_SAMPLE_RATE to MAX_SAMPLE_RATE, any channel count and PCM encoding
that libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3 where libsndfile has it, ...) are converted on
the way in, block by block, so that a long file never has to sit in memory whole. Other formats
(.m4a, .webm, video files, ...) are decoded through ffmpeg where it is on the PATH. A source is a
path or a seekable binary file object (`read_stream` makes one of standard input or a pipe).

Every file is read to the end of its audio, not to the length its header gives where that length
is only an estimate or a placeholder: an MP3's sample count (a guess from the first frame's
bitrate without a Xing header), a FLAC streamed without its total, a WAV written into a pipe
(its sizes left as 0, 0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF or the size of the first write).
"""
from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
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

# The sample rates an input may have: the one rule for files, standard input, uploads and the
# WebSocket (sample_rate_problem). Below 1 kHz no speech band is left (telephone audio is 8 kHz),
# and a header claiming 1 Hz would make hours of samples of a few bytes; 768 kHz is the highest
# rate audio interfaces record at.
MIN_SAMPLE_RATE = 1000  # Hz
MAX_SAMPLE_RATE = 768_000  # Hz

BLOCK_SECONDS = 10.0  # how much of a file is read at a time
BLOCK_VALUES = 1 << 22  # ... but at most this many samples (all channels): 16 MB of float32 at 768 kHz x 8 ch
# A WAV data size from here up is a placeholder, not a promise: tools that stream a WAV into a pipe
# cannot seek back to fill the size in (ffmpeg -f wav pipe:1 leaves 0xFFFFFFFF, sox 0x7FFFF000,
# arecord 0x7FFFFFFF). Such a file, and one whose data chunk is followed by more samples instead of
# another chunk (size 0, or Python's wave module writing into a pipe: the size of its first write),
# is read to its end, as sox and ffmpeg read a pipe.
UNKNOWN_WAV_SIZE = 0x7FFF0000
MP3_TAIL = 128  # bytes an MP3 decoder may leave unread at the end (an ID3v1 tag); more means it gave up early
STDIN = "-"  # the file name that means standard input
STREAM_MEMORY = 64 << 20  # bytes of a stream (stdin, a pipe) held in memory before it spills to a temporary file


class AudioError(ValueError):
    """A file, buffer or array that cannot be used as audio. str() is one line naming the input and why."""

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


def sample_rate_problem(rate) -> str | None:
    """Why an input of `rate` Hz is refused, or None: the one rule for files, standard input, uploads,
    the WebSocket and `asr serve --sample-rate` (a whole number from MIN_SAMPLE_RATE to MAX_SAMPLE_RATE).
    Compares before converting: an int of 400 digits (JSON allows it) overflows a float."""
    whole = (isinstance(rate, (int, np.integer)) and not isinstance(rate, bool)
             or isinstance(rate, (float, np.floating)) and float(rate).is_integer())
    if whole and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        return None
    shown = repr(rate) if isinstance(rate, str) else str(rate)
    shown = shown if len(shown) <= 20 else shown[:17] + "..."
    return (f"unsupported sample rate {shown} Hz (must be a whole number of Hz from {MIN_SAMPLE_RATE} "
            f"to {MAX_SAMPLE_RATE})")


def _is_chunk(head: bytes, at: int, length: int) -> bool:
    """Whether the 8 bytes at `at` of a RIFF file `length` bytes long open a chunk (or a tag some
    tools append: ID3v2, ID3v1) rather than more samples: a printable four-character id and a size
    that fits in the file."""
    if head[:3] in (b"ID3", b"TAG"):
        return True
    return (len(head) == 8 and all(0x20 <= c <= 0x7E for c in head[:4])
            and at + 8 + int.from_bytes(head[4:], "little") <= length)


def _wav_sizes(f: BinaryIO, length: int) -> dict[int, bytes] | None:
    """For a RIFF WAVE file whose data size is a placeholder (UNKNOWN_WAV_SIZE) or is followed by more
    samples: the header bytes to read instead, {offset: bytes}, that make its data run to the end of
    the file. None for any other file: an exact WAV, or one whose data chunk promises more than the
    file holds (info() refuses it as truncated), or no WAV at all."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
        return None
    at = 12
    for _ in range(1000):  # the chunks before the data chunk (fmt, LIST, fact, ...)
        f.seek(at)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        size = int.from_bytes(chunk[4:], "little")
        if chunk[:4] == b"data":
            break
        at += 8 + size + size % 2
    else:
        return None
    start, held = at + 8, length - at - 8
    if size == held or size % 2 and size + 1 == held or held < size < UNKNOWN_WAV_SIZE:
        return None  # exact (a pad byte at most), or a real promise the file does not keep
    if size < held:
        end = start + size + size % 2
        f.seek(end)
        if end >= length - 1 or _is_chunk(f.read(8), end, length):
            return None  # another chunk follows the samples: a finished file
    return {4: min(length - 8, 0xFFFFFFFF).to_bytes(4, "little"), at + 4: min(held, 0xFFFFFFFF).to_bytes(4, "little")}


class _Patched(io.RawIOBase):
    """A seekable binary file read with some of its bytes replaced: a streamed WAV's header with
    its true sizes, for libsndfile (which believes the header)."""

    def __init__(self, f: BinaryIO, patches: dict[int, bytes], name: str):
        super().__init__()
        self._f, self._patches, self.name = f, patches, name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer) -> int:
        at = self._f.tell()
        data = self._f.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        for offset, patch in self._patches.items():
            lo, hi = max(offset, at), min(offset + len(patch), at + n)
            if lo < hi:
                buffer[lo - at:hi - at] = patch[lo - offset:hi - offset]
        return n


def _looks_like_mpeg(head: bytes) -> bool:
    """An MP3 (MPEG audio) file's first bytes: an ID3v2 tag or a frame's sync word."""
    return head[:3] == b"ID3" or len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


@contextmanager
def _for_libsndfile(source):
    """(what libsndfile reads for source, whether it is MPEG audio): the path (as bytes) or file
    object itself, or a streamed WAV's view with its true sizes (_wav_sizes)."""
    with open(source, "rb") if isinstance(source, str) else nullcontext(source) as f:
        length = f.seek(0, os.SEEK_END)
        patches = _wav_sizes(f, length)
        f.seek(0)
        mpeg = _looks_like_mpeg(f.read(4))
        f.seek(0)
        if patches is not None:
            source = _Patched(f, patches, source_name(source))
        elif isinstance(source, str):
            source = os.fsencode(source)  # a name that is not UTF-8 (caf\xe9.wav) as its bytes
        yield source, mpeg


_MPG123_NOTE = re.compile(rb"^(\[[^\]]*libmpg123[^\]]*\]|Note: |Warning: )")
_stderr_lock = threading.Lock()


@contextmanager
def _quiet_mpg123(active: bool = True):
    """libmpg123 (libsndfile's MP3 decoder) prints notes on damaged frames ("Note: Illegal
    Audio-MPEG-Header", "[src/libmpg123/layer3.c:...] error: part2_3_length ...") from C straight to
    file descriptor 2, and has no switch that libsndfile sets. While a libsndfile call runs, fd 2 goes
    to a temporary file; afterwards whatever else was written there (by another thread) is passed on."""
    if not active:
        yield
        return
    with _stderr_lock, tempfile.TemporaryFile() as captured:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no standard error to keep clean
            yield
            return
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not _MPG123_NOTE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


class _ToTheEnd(sf.SoundFile):
    """A SoundFile read front to back without seeking: soundfile seeks after every read of a file it
    may seek in, and that fails in a FLAC of unknown length and makes libmpg123 print decoding errors."""

    def seekable(self) -> bool:
        return False


@contextmanager
def _through_pipe(source):
    """An MP3 for libsndfile through a pipe: from a pipe libsndfile takes no sample count from the
    header (an estimate without a Xing header) and decodes to the end. Yields the pipe's read end;
    a thread writes the file into it."""
    read_fd, write_fd = os.pipe()

    def feed():
        try:
            with open(write_fd, "wb") as pipe, \
                    open(source, "rb") if isinstance(source, bytes) else nullcontext(source) as f:  # EOF whatever happens
                f.seek(0)
                shutil.copyfileobj(f, pipe, 1 << 16)
        except (BrokenPipeError, OSError, ValueError):  # the reader stopped early
            pass
    writer = threading.Thread(target=feed, name="asr-mp3-pipe", daemon=True)
    writer.start()
    try:
        yield read_fd
    finally:
        os.close(read_fd)  # the SoundFile leaves it open (closefd=False); a writer still writing stops
        writer.join()


def _unread(fd: int) -> int:
    """How many bytes are left in a pipe that its reader stopped reading (read and counted to its end)."""
    left = 0
    while data := os.read(fd, 1 << 16):
        left += len(data)
    return left


def info(source) -> sf._SoundFileInfo:
    """Header information of an audio file (a path or a seekable file object), raising
    AudioError for anything unusable (UnsupportedFormat for a format libsndfile does not know).
    frames is the header's count: an estimate for MP3, SF_COUNT_MAX where a stream did not say
    (length_is_exact tells); a WAV streamed into a pipe has its true length (_wav_sizes)."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        source = name
        _check_file(source)
    else:
        if source.seek(0, os.SEEK_END) == 0:
            raise AudioError(name, "empty input (0 bytes)")
        source.seek(0)
    try:
        with _for_libsndfile(source) as (src, mpeg), _quiet_mpg123(mpeg):
            meta = sf.info(src)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        reason = _describe_soundfile_error(err)
        if reason.startswith("not a supported"):
            raise UnsupportedFormat(name, reason) from None
        raise AudioError(name, f"corrupt or truncated header ({reason})") from None
    # libsndfile quietly shortens a WAV whose data chunk is cut off; its log says "should be".
    # (A placeholder size of a WAV written into a pipe is no promise: _wav_sizes fills in the truth.)
    for line in meta.extra_info.splitlines():
        found = re.match(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", line.strip())
        if found:
            raise AudioError(name, f"truncated: the header promises {found[1]} bytes of samples, "
                                   f"the file holds {found[2]}")
    return meta


def length_is_exact(meta: sf._SoundFileInfo) -> bool:
    """Whether info()'s frames is the file's true length: not an MP3's estimate, nor the
    SF_COUNT_MAX of a stream that did not say (a FLAC written into a pipe)."""
    return meta.format != "MP3" and meta.frames < (1 << 62)


def check_samples(samples: np.ndarray, source: str) -> None:
    """Raise AudioError if samples hold NaN or infinite values."""
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(source, f"contains {bad} NaN or infinite sample(s)")


PCM_SCALE = {np.dtype(np.int8): 1 << 7, np.dtype(np.int16): 1 << 15, np.dtype(np.int32): 1 << 31}  # as soundfile reads PCM
MAX_FLOAT_PEAK = 64.0  # float samples belong in [-1, 1]; beyond this they are integer PCM cast to float


def as_samples(x, source: str = "audio array") -> np.ndarray:
    """Samples handed over in memory (asr.transcribe, Stream.accept) as (n,) float32, converted as
    soundfile reads a file: float32/float64 as they are, in [-1, 1]; int16, int32 (and int8) PCM
    scaled by 1/32768, 1/2**31 (1/128). A 2-D array is (samples, channels), the layout soundfile
    returns, and its channels are averaged. Raises AudioError (a ValueError; one line) for any other
    dtype or shape, a 2-D array with more channels than samples (channels first: pass x.T), NaN or
    infinite samples, and floats far beyond [-1, 1] (integer PCM cast to float without scaling)."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] > x.shape[0]:
        raise AudioError(source, f"a 2-D array is (samples, channels), as soundfile returns it; this one is "
                                 f"{x.shape}, channels first: pass its transpose (x.T)")
    if x.ndim not in (1, 2):
        raise AudioError(source, f"expected samples (n,) or (samples, channels), got an array of shape {x.shape}")
    if x.dtype in PCM_SCALE:
        x = x.astype(np.float32) / PCM_SCALE[x.dtype]
    elif x.dtype.kind != "f":
        raise AudioError(source, f"{x.dtype} samples are not audio: give float32/float64 in [-1, 1], or int16/int32 PCM")
    x = to_mono(x)
    check_samples(x, source)
    if len(x) and (peak := float(np.max(np.abs(x)))) > MAX_FLOAT_PEAK:
        raise AudioError(source, f"float samples belong in [-1, 1], these reach {peak:g}: integer PCM cast to float? "
                                 f"divide it by 32768 (int16) or pass the integer array")
    return x


def to_mono(block: np.ndarray) -> np.ndarray:
    """(n, channels) or (n,) -> (n,) float32, averaging channels."""
    if block.ndim == 2:
        block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
    return np.ascontiguousarray(block, dtype=np.float32)


class Resampler:
    """Streaming resampler to SAMPLE_RATE (soxr); identical output whatever the block sizes."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE):
        if problem := sample_rate_problem(in_rate):  # callers check first; this keeps soxr from absurd work
            raise ValueError(problem)
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._rs = None if self.in_rate == self.out_rate else soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._rs is None:
            return samples
        return self._rs.resample_chunk(samples, last=last)


def iter_blocks(source, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield a file's audio as 16 kHz mono float32 blocks of about block_seconds each (fewer
    at very high rates and channel counts: at most BLOCK_VALUES samples are read at a time).

    source: a path or a seekable binary file object. Read to the end of its audio (see the module's
    notes). A format libsndfile does not read is decoded through ffmpeg where ffmpeg is on the PATH.
    Raises AudioError (one line: the file and the reason) for a missing, unreadable, empty, corrupt
    or truncated file, a sample rate outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE (before any work), or
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
    problem = sample_rate_problem(meta.samplerate)
    if problem:
        raise AudioError(name, problem)
    exact = length_is_exact(meta)
    if exact and meta.frames == 0:
        raise AudioError(name, "contains no audio (zero samples)")
    resample = Resampler(meta.samplerate)
    block_frames = max(1, min(int(block_seconds * meta.samplerate), BLOCK_VALUES // max(1, meta.channels)))
    total = 0
    mpeg = meta.format == "MP3"
    try:
        with ExitStack() as opened:
            src, _ = opened.enter_context(_for_libsndfile(source))
            if mpeg:
                src = opened.enter_context(_through_pipe(src))
            with _quiet_mpg123(mpeg):
                f = opened.enter_context(_ToTheEnd(src, closefd=False))
            while True:
                with _quiet_mpg123(mpeg):
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
            if mpeg and (left := _unread(src)) > MP3_TAIL:  # libmpg123 gives up on a damaged frame
                raise AudioError(name, f"corrupt audio: the MP3 decoder stopped at {total / meta.samplerate:.1f} s, "
                                       f"{left} bytes before the end (ffmpeg reads past damaged frames: "
                                       f"ffmpeg -i IN -ar 16000 -ac 1 OUT.wav)")
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(name, f"corrupt or truncated audio ({_describe_soundfile_error(err)})") from None
    if total == 0:
        raise AudioError(name, "contains no audio (zero samples)")
    if exact and total < meta.frames:
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
            lines = [line.strip() for line in log.read().decode("utf-8", "surrogateescape").splitlines() if line.strip()]
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


def duration(source) -> float | None:
    """Duration in seconds from the header: an estimate for MP3, None where a stream did not say
    (AudioError for a file only ffmpeg reads)."""
    meta = info(source)
    if meta.frames >= 1 << 62 or sample_rate_problem(meta.samplerate):
        return None
    return meta.frames / meta.samplerate


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes -> float32 in [-1, 1)."""
    if len(data) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
