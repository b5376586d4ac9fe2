"""Reading audio: any rate and channel count to 16 kHz mono, and every kind of bad input."""
import numpy as np
import pytest
import soundfile as sf
import soxr

from asr.audio import SAMPLE_RATE, AudioError, Resampler, iter_blocks, load_audio


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
