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
                              str(tiny_model_path)], capture_output=True, text=True, timeout=300, env=env,
                             preexec_fn=without_root_privilege)
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
