"""Reading audio: any rate and channel count to 16 kHz mono, and every kind of bad input."""
import io
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
import soxr

from asr.audio import SAMPLE_RATE, AudioError, Resampler, iter_blocks, load_audio

from conftest import REPO


def tone(seconds, rate, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, 1) if channels > 1 else x


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_any_rate_and_encoding_becomes_16k(tmp_path, rate, subtype):
    path = tmp_path / "x.wav"
    sf.write(path, tone(1.0, rate), rate, subtype=subtype)
    x = load_audio(path)
    assert x.dtype == np.float32
    assert abs(len(x) - SAMPLE_RATE) <= 1
    # the 440 Hz tone survives: its spectrum peaks at 440 Hz
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert abs(np.argmax(spec) * SAMPLE_RATE / len(x) - 440) < 3


def test_channels_are_averaged(tmp_path):
    left = tone(0.5, SAMPLE_RATE, 300)
    right = tone(0.5, SAMPLE_RATE, 700) * 0.5
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], 1), SAMPLE_RATE)
    x = load_audio(path)
    np.testing.assert_allclose(x, (left + right) / 2, atol=1e-4)


def test_flac_ogg_and_six_channels(tmp_path):
    for name, fmt in [("a.flac", "FLAC"), ("a.ogg", "OGG")]:
        sf.write(tmp_path / name, tone(1.0, 24000, channels=6), 24000, format=fmt)
        assert abs(len(load_audio(tmp_path / name)) - SAMPLE_RATE) < 200


def test_blocks_equal_whole_and_resampler_is_chunking_exact(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(44100 * 3).astype(np.float32) * 0.1
    path = tmp_path / "n.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    blocks = list(iter_blocks(path, block_seconds=0.37))
    assert len(blocks) > 5
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path))
    whole = soxr.resample(x, 44100, SAMPLE_RATE, quality="HQ")
    rs = Resampler(44100)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 3000))
        parts.append(rs(x[i:i + n], last=i + n >= len(x)))
        i += n
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def bad_files(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    data = good.read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 20)
    (tmp_path / "header.wav").write_bytes(data[:30])
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    sf.write(tmp_path / "zero.wav", np.zeros(0), SAMPLE_RATE)
    nan = tone(1.0, SAMPLE_RATE).astype(np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    inf = tone(1.0, SAMPLE_RATE).astype(np.float32)
    inf[5] = np.inf
    sf.write(tmp_path / "inf.wav", inf, SAMPLE_RATE, subtype="FLOAT")
    flac = tmp_path / "good.flac"
    sf.write(flac, tone(3.0, SAMPLE_RATE), SAMPLE_RATE)
    (tmp_path / "cut.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    (tmp_path / "folder.wav").mkdir()
    return {
        "missing.wav": "no such file", "empty.wav": "empty file", "text.wav": "not a supported audio file",
        "header.wav": "", "cut.wav": "truncated", "zero.wav": "no audio", "nan.wav": "NaN",
        "inf.wav": "NaN or infinite", "cut.flac": "", "folder.wav": "directory",
    }


def test_every_bad_input_is_one_clear_error(tmp_path):
    for name, reason in bad_files(tmp_path).items():
        with pytest.raises(AudioError) as err:
            load_audio(tmp_path / name)
        message = str(err.value)
        assert message.startswith(str(tmp_path / name) + ": "), message
        assert reason in message, message
        assert "\n" not in message


def streamed_wav(data: bytes, size: int) -> bytes:
    """A WAV as a tool streaming it into a pipe writes it: the RIFF and data sizes set to `size`
    (ffmpeg -f wav pipe:1 writes 0xFFFFFFFF, sox and arecord 0x7FFFFFFF), as it cannot seek back."""
    data = bytearray(data)
    at = data.index(b"data")
    data[4:8] = data[at + 4:at + 8] = size.to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0x7FFFFFFF])
def test_a_wav_of_unknown_length_is_read_to_its_end(tmp_path, size):
    x = tone(1.3, 22050).astype(np.float32)
    sf.write(tmp_path / "whole.wav", x, 22050, subtype="PCM_16")
    piped = tmp_path / "piped.wav"
    piped.write_bytes(streamed_wav((tmp_path / "whole.wav").read_bytes(), size))
    np.testing.assert_array_equal(load_audio(piped), load_audio(tmp_path / "whole.wav"))
    # a size that is a real promise the file does not keep is still refused
    cut = tmp_path / "cut.wav"
    cut.write_bytes(streamed_wav((tmp_path / "whole.wav").read_bytes(), 10 ** 6))
    with pytest.raises(AudioError, match="truncated: the header promises 1000000 bytes"):
        load_audio(cut)


def test_a_file_object_or_a_stream_reads_as_its_file(tmp_path):
    from asr.audio import open_input, read_stream
    sf.write(tmp_path / "a.flac", tone(0.8, 44100, channels=2), 44100)
    whole = load_audio(tmp_path / "a.flac")
    with open(tmp_path / "a.flac", "rb") as f:
        np.testing.assert_array_equal(load_audio(f), whole)
        f.seek(0)
        buf = read_stream(f, "<stdin>")
    np.testing.assert_array_equal(load_audio(buf), whole)
    np.testing.assert_array_equal(load_audio(buf), whole)  # read again: a stream is buffered once, read many times
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "a.flac").read_bytes()))
    writer.start()
    source = open_input(str(fifo))  # bash's <(...) is a pipe: read once, whole
    writer.join()
    np.testing.assert_array_equal(load_audio(source), whole)
    with pytest.raises(AudioError, match=r"^<stdin>: empty input"):
        load_audio(read_stream(io.BytesIO(b"")))
    with pytest.raises(AudioError, match=r"^<stdin>: not a supported audio file"):
        load_audio(read_stream(io.BytesIO(b"hello" * 100)))


def without_root_privilege():
    """preexec_fn for a child that, even as root, is held to file modes: root reads any file only
    by its capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, dropped here from the bounding
    set (so the exec'd program never has them). Nothing to do for another user."""
    if os.geteuid() != 0:
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_file_says_permission_denied(cli, tiny_model_path, cathy_clips, tmp_path):
    path, text = cathy_clips[0]
    secret = tmp_path / "secret.flac"
    secret.write_bytes(path.read_bytes())
    secret.chmod(0)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        out = subprocess.run([sys.executable, "-m", "asr", "transcribe", str(secret), str(path), "--model",
                              str(tiny_model_path), "--no-punctuation"], capture_output=True, text=True, timeout=300,
                             env=env, preexec_fn=without_root_privilege)
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot give up root's privilege to read any file here: {err}")
    assert out.returncode == 1
    assert out.stderr == f"asr: error: {secret}: permission denied\n"
    assert out.stdout == f"==> {path} <==\n{text}\n"  # the other file is transcribed


def test_a_format_libsndfile_lacks_without_ffmpeg_gets_a_hint(tmp_path, monkeypatch):
    clip = tmp_path / "talk.m4a"
    clip.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + os.urandom(2000))  # an MP4 container's head
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg
    with pytest.raises(AudioError) as err:
        load_audio(clip)
    message = str(err.value)
    assert message.startswith(f"{clip}: not a supported audio file (format not recognised); ") and "\n" not in message
    assert "install ffmpeg" in message and "ffmpeg -i" in message


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (scripts/setup.sh --dev installs it)")
@pytest.mark.parametrize("ext, codec", [(".m4a", "aac"), (".webm", "libopus")])
def test_a_format_libsndfile_lacks_is_read_through_ffmpeg(tmp_path, ext, codec):
    x = tone(2.0, 48000, freq=440.0).astype(np.float32)
    sf.write(tmp_path / "src.wav", x, 48000)
    clip = tmp_path / f"talk{ext}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(tmp_path / "src.wav"), "-c:a", codec,
                    "-b:a", "96k", str(clip)], check=True, timeout=120)
    y = load_audio(clip)
    assert abs(len(y) - 2 * SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # encoders pad a little
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spec) * SAMPLE_RATE / len(y) - 440) < 3
    with open(clip, "rb") as f:  # from standard input too
        np.testing.assert_allclose(load_audio(read_stream_of(f)), y, atol=1e-6)
    broken = tmp_path / f"broken{ext}"
    broken.write_bytes(clip.read_bytes()[:200])
    with pytest.raises(AudioError, match=rf"^{re.escape(str(broken))}: (not a supported audio file|corrupt)"):
        load_audio(broken)


def read_stream_of(f):
    from asr.audio import read_stream
    return read_stream(f, "<stdin>")


# --------------------------------------------------------------------------- read to the end (issue 23)
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg is not installed (scripts/setup.sh --dev installs it)")
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed (scripts/setup.sh --dev installs it)")


@pytest.fixture(scope="module")
def speech(cathy_clips, tmp_path_factory):
    """The eight test clips one after another (18 s of real speech at 16 kHz) as a 16-bit WAV."""
    path = tmp_path_factory.mktemp("speech") / "talk.wav"
    sf.write(path, np.concatenate([load_audio(p) for p, _ in cathy_clips]), SAMPLE_RATE, subtype="PCM_16")
    return path


def run_tool(*argv, stdin: bytes | None = None) -> bytes:
    """A tool's standard output, read through a pipe (so it cannot seek back into what it wrote)."""
    return subprocess.run([str(a) for a in argv], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          check=True, timeout=120).stdout


def ffmpeg_decoded_samples(path) -> int:
    """How many samples ffmpeg's own decoder gets from a file at its own rate."""
    return len(run_tool("ffmpeg", "-nostdin", "-i", path, "-f", "s16le", "-")) // 2


@needs_ffmpeg
@pytest.mark.parametrize("kind, options", [
    ("VBR without a Xing header", ["-c:a", "libmp3lame", "-q:a", "4", "-write_xing", "0"]),
    ("CBR without a Xing header", ["-c:a", "libmp3lame", "-b:a", "64k", "-write_xing", "0"]),
    ("written into a pipe", ["-f", "mp3"]),
])
def test_an_mp3_is_read_to_its_end_whatever_its_header_estimates(speech, tmp_path, capfd, kind, options):
    mp3 = tmp_path / "talk.mp3"
    if kind == "written into a pipe":
        mp3.write_bytes(run_tool("ffmpeg", "-nostdin", "-i", speech, *options, "-"))
    else:
        run_tool("ffmpeg", "-nostdin", "-i", speech, *options, mp3)
    truth = ffmpeg_decoded_samples(mp3)  # the source plus the encoder's delay and padding (no gapless info)
    assert abs(truth - sf.info(speech).frames) < 0.1 * SAMPLE_RATE
    assert sf.info(mp3).frames != truth  # the header's count is only an estimate: what used to cut or refuse it
    x = load_audio(mp3)
    assert abs(len(x) - truth) <= 576  # one MPEG-2 layer III frame
    with open(mp3, "rb") as f:  # from standard input too
        np.testing.assert_array_equal(load_audio(read_stream_of(f)), x)
    assert capfd.readouterr().err == ""  # libmpg123 says nothing


@needs_ffmpeg
def test_an_mp3_the_decoder_gives_up_on_is_an_error_not_a_short_transcript(tmp_path, capfd):
    """libmpg123 stops at frames of another rate spliced into the middle (two MP3s glued together):
    the rest is not silently lost, and its notes stay off standard error."""
    src = tmp_path / "tone.wav"
    sf.write(src, tone(3.0, 16000), 16000)
    run_tool("ffmpeg", "-nostdin", "-i", src, "-c:a", "libmp3lame", "-write_xing", "0", tmp_path / "a.mp3")
    run_tool("ffmpeg", "-nostdin", "-i", src, "-ar", "44100", "-c:a", "libmp3lame", "-write_xing", "0", tmp_path / "b.mp3")
    glued = tmp_path / "glued.mp3"
    glued.write_bytes((tmp_path / "a.mp3").read_bytes() + (tmp_path / "b.mp3").read_bytes())
    with pytest.raises(AudioError, match=rf"^{re.escape(str(glued))}: corrupt audio: the MP3 decoder stopped at 3\.\d s, "
                                         rf"\d+ bytes before the end \(ffmpeg reads past damaged frames"):
        load_audio(glued)
    assert capfd.readouterr().err == ""


def test_decoder_notes_are_kept_off_standard_error_and_other_lines_are_not(capfd):
    from asr.audio import _quiet_mpg123
    with _quiet_mpg123():
        os.write(2, b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (1152) too large\n"
                    b"Note: Illegal Audio-MPEG-Header 0x072388fc at offset 7165.\nanother thread's line\n")
    assert capfd.readouterr().err == "another thread's line\n"


def python_wave_into_a_pipe(samples: np.ndarray, rate: int, first: int) -> bytes:  # samples: int16
    """What Python's wave module writes into a pipe, frames handed over in blocks (the first of
    `first` frames): it cannot seek back, so its header keeps the size of that first block."""
    code = ("import sys, wave\n"
            "data = sys.stdin.buffer.read()\n"
            f"w = wave.open(sys.stdout.buffer, 'wb'); w.setnchannels(1); w.setsampwidth(2); w.setframerate({rate})\n"
            f"w.writeframesraw(data[:{2 * first}])\n"
            f"for i in range({2 * first}, len(data), 8000):\n"
            "    w.writeframesraw(data[i:i + 8000])\n"
            "sys.stdout.flush()\n"
            "try:\n"
            "    w.close()  # patching the header fails on a pipe: Illegal seek\n"
            "except OSError:\n"
            "    pass\n")
    return run_tool(sys.executable, "-c", code, stdin=samples.astype("<i2").tobytes())


def wav_sizes(data: bytes) -> tuple[int, int]:
    at = data.index(b"data")
    return int.from_bytes(data[4:8], "little"), int.from_bytes(data[at + 4:at + 8], "little")


WRITERS = {  # how each writer streams a WAV into a pipe: (command, the data size it leaves)
    "ffmpeg": (lambda src: run_tool("ffmpeg", "-nostdin", "-i", src, "-f", "wav", "pipe:1"), 0xFFFFFFFF),
    # sox with a stream of unknown length on its input (`sox in.flac -t wav -` knows the length)
    "sox": (lambda src: run_tool("sox", "-t", "raw", "-r", "22050", "-e", "signed", "-b", "16", "-c", "1", "-",
                                 "-t", "wav", "-", stdin=sf.read(src, dtype="int16")[0].tobytes()), 0x7FFFF000),
    "python wave": (lambda src: python_wave_into_a_pipe(sf.read(src, dtype="int16")[0], 22050, first=2205), 4410),
    "python wave, empty first write": (lambda src: python_wave_into_a_pipe(sf.read(src, dtype="int16")[0], 22050, first=0), 0),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_wav_streamed_into_a_pipe_by_any_common_writer_is_read_to_its_end(tmp_path, writer):
    make, size = WRITERS[writer]
    tool = writer.split()[0]
    if tool in ("ffmpeg", "sox") and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh --dev installs it)")
    x = tone(2.3, 22050, freq=330.0)
    sf.write(tmp_path / "whole.wav", x, 22050, subtype="PCM_16")
    piped = make(tmp_path / "whole.wav")
    assert wav_sizes(piped)[1] == size  # the writer left this size in the header
    whole = load_audio(tmp_path / "whole.wav")
    np.testing.assert_array_equal(load_audio(read_stream_of(io.BytesIO(piped))), whole)
    (tmp_path / "piped.wav").write_bytes(piped)
    np.testing.assert_array_equal(load_audio(tmp_path / "piped.wav"), whole)


@pytest.mark.parametrize("size", [0, 0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF])
def test_arecord_and_other_placeholder_sizes_read_to_the_end(tmp_path, size):
    sf.write(tmp_path / "whole.wav", tone(1.1, 8000), 8000, subtype="PCM_16")
    piped = tmp_path / "piped.wav"
    piped.write_bytes(streamed_wav((tmp_path / "whole.wav").read_bytes(), size))
    np.testing.assert_array_equal(load_audio(piped), load_audio(tmp_path / "whole.wav"))


def test_a_finished_wav_with_chunks_after_its_samples_keeps_its_length(tmp_path):
    """A LIST chunk (or an appended ID3 tag) after the samples is no audio."""
    sf.write(tmp_path / "tagged.wav", tone(1.0, 16000), 16000, subtype="PCM_16")
    body = b"INFOINAM" + (12).to_bytes(4, "little") + b"a title\0\0\0\0\0"
    data = bytearray((tmp_path / "tagged.wav").read_bytes() + b"LIST" + len(body).to_bytes(4, "little") + body)
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    (tmp_path / "tagged.wav").write_bytes(data)
    assert len(load_audio(tmp_path / "tagged.wav")) == 16000
    sf.write(tmp_path / "id3.wav", tone(1.0, 16000), 16000, subtype="PCM_16")
    (tmp_path / "id3.wav").write_bytes((tmp_path / "id3.wav").read_bytes() + b"ID3\x04\x00" + bytes(200))
    assert len(load_audio(tmp_path / "id3.wav")) == 16000


@needs_ffmpeg
def test_a_flac_streamed_without_its_length_is_read_to_its_end(tmp_path):
    from asr.audio import duration
    sf.write(tmp_path / "whole.wav", tone(1.7, 22050), 22050, subtype="PCM_16")
    piped = tmp_path / "piped.flac"
    piped.write_bytes(run_tool("ffmpeg", "-nostdin", "-i", tmp_path / "whole.wav", "-f", "flac", "pipe:1"))
    assert sf.info(piped).frames > 10 ** 15  # the header does not say
    np.testing.assert_array_equal(load_audio(piped), load_audio(tmp_path / "whole.wav"))
    assert duration(piped) is None


# --------------------------------------------------------------------------- sample rates (issue 23)
def with_rate(data: bytes, rate: int) -> bytes:
    """A WAV's bytes with its header's sample rate (and byte rate) set to `rate`."""
    data = bytearray(data)
    at = data.index(b"fmt ") + 8
    block_align = int.from_bytes(data[at + 12:at + 14], "little")
    data[at + 4:at + 8] = rate.to_bytes(4, "little")
    data[at + 8:at + 12] = (rate * block_align).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize("rate", [1, 999, 768_001, 4_000_000])
def test_an_absurd_sample_rate_is_refused_before_any_work(tmp_path, rate):
    """A 105 KB WAV whose header says 1 Hz would be 14.6 h of audio after resampling."""
    sf.write(tmp_path / "ok.wav", tone(3.3, 16000), 16000, subtype="PCM_16")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(with_rate((tmp_path / "ok.wav").read_bytes(), rate))
    with pytest.raises(AudioError) as err:
        next(iter_blocks(bad))
    assert str(err.value) == (f"{bad}: unsupported sample rate {rate} Hz (must be a whole number of Hz from 1000 "
                              f"to 768000)")
    with pytest.raises(AudioError, match=r"^<stdin>: unsupported sample rate"):
        load_audio(read_stream_of(io.BytesIO(bad.read_bytes())))


@pytest.mark.parametrize("rate", [1000, 768_000])
def test_the_edges_of_the_sample_rate_rule_are_read(tmp_path, rate):
    sf.write(tmp_path / "ok.wav", tone(0.5, 8000), 8000, subtype="PCM_16")
    edge = tmp_path / "edge.wav"
    edge.write_bytes(with_rate((tmp_path / "ok.wav").read_bytes(), rate))
    assert abs(len(load_audio(edge)) - round(4000 * SAMPLE_RATE / rate)) <= 1


def test_the_websocket_follows_the_same_sample_rate_rule():
    from types import SimpleNamespace

    from asr.audio import sample_rate_problem
    from asr.server import Connection, ProtocolError, ServerConfig
    conn = Connection(SimpleNamespace(config=ServerConfig()), "peer")
    for rate in (999, 768_001, 8000.5, float("nan"), float("inf"), True, "16000", 10 ** 400):
        with pytest.raises(ProtocolError) as err:
            conn.configure({"sample_rate": rate})
        assert str(err.value) == f'"sample_rate": {sample_rate_problem(rate)}'
        assert len(str(err.value)) < 123  # fits a WebSocket close reason
    for rate in (1000, 8000.0, 768_000):
        conn.configure({"sample_rate": rate})
        assert conn.sample_rate == rate


# --------------------------------------------------------------------------- arrays in memory (issue 23)
def test_arrays_are_converted_as_soundfile_reads_a_file(tmp_path):
    from asr.audio import as_samples
    x = tone(0.5, 16000) * 0.9
    for subtype, dtype in (("PCM_16", "int16"), ("PCM_32", "int32")):
        sf.write(tmp_path / "x.wav", x, 16000, subtype=subtype)
        pcm, _ = sf.read(tmp_path / "x.wav", dtype=dtype)
        np.testing.assert_array_equal(as_samples(pcm), sf.read(tmp_path / "x.wav", dtype="float32")[0])
    np.testing.assert_array_equal(as_samples(np.array([-128, 0, 64], np.int8)), [-1.0, 0.0, 0.5])
    assert as_samples(x).dtype == np.float32  # float64 is accepted
    left, right = tone(0.5, 16000, 300), tone(0.5, 16000, 700)
    np.testing.assert_allclose(as_samples(np.stack([left, right], 1)), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("array, reason", [
    (np.zeros((2, 16000)), r"a 2-D array is \(samples, channels\), as soundfile returns it; this one is \(2, 16000\), "
                           r"channels first: pass its transpose \(x\.T\)"),
    (np.zeros((10, 2, 2)), r"expected samples \(n,\) or \(samples, channels\), got an array of shape \(10, 2, 2\)"),
    (np.array(0.5), r"expected samples \(n,\) or \(samples, channels\), got an array of shape \(\)"),
    (np.zeros(10, np.int64), r"int64 samples are not audio: give float32/float64 in \[-1, 1\], or int16/int32 PCM"),
    (np.array(["a", "b"]), r"<U1 samples are not audio"),
    (np.array([0.0, np.nan, np.inf]), r"contains 2 NaN or infinite sample\(s\)"),
    (np.array([0.0, 1200.0, -32768.0], np.float32), r"float samples belong in \[-1, 1\], these reach 32768: integer "
                                                    r"PCM cast to float\? divide it by 32768"),
])
def test_arrays_that_are_not_audio_are_one_clear_value_error(tiny_model, array, reason):
    import asr
    with pytest.raises(ValueError, match=rf"^audio array: {reason}"):
        asr.transcribe(tiny_model, array)
    stream = asr.Recognizer(tiny_model).stream()
    with pytest.raises(asr.AudioError, match=rf"^stream: {reason}"):
        stream.accept(array)


def test_int16_stereo_and_float64_arrays_transcribe_as_the_file_does(tiny_model, cathy_clips):
    import asr
    path, text = cathy_clips[3]
    x = load_audio(path)
    assert asr.transcribe(tiny_model, x, punctuation=False).text == text
    pcm = np.round(x * 32767).astype(np.int16)
    for array in (pcm, np.stack([pcm, pcm], 1), x.astype(np.float64), np.stack([x, x], 1), pcm.astype(np.int32) << 16):
        assert asr.transcribe(tiny_model, array, punctuation=False).text == text, (array.dtype, array.shape)
    stream = asr.Recognizer(tiny_model).stream()
    for i in range(0, len(pcm), 1600):  # int16 chunks, as a sound card gives them
        stream.accept(pcm[i:i + 1600])
    assert stream.finish().text == text
