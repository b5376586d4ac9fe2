"""Waveform augmentation: what each transform does to real speech."""
import numpy as np

from asr.audio import load_audio
from asr.data import AugmentConfig, augment_waveform

from conftest import REPO


def band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_telephone_band_removes_what_a_telephone_cannot_carry():
    x = load_audio(str(REPO / "asr" / "samples" / "cathy_a0046.flac"))
    plain = AugmentConfig.off()
    phone = AugmentConfig(speeds=(1.0,), noise_prob=0.0, reverb_prob=0.0, gain_db=(0.0, 0.0), telephone_prob=1.0)
    y0 = augment_waveform(x, plain, np.random.default_rng(0))
    y1 = augment_waveform(x, phone, np.random.default_rng(0))
    assert len(y1) == len(x)
    high = band_energy(y0, 4200, 8000)
    assert high > 0 and band_energy(y1, 4200, 8000) < 1e-3 * high
    # the speech band is kept
    assert abs(band_energy(y1, 300, 3400) / band_energy(y0, 300, 3400) - 1) < 0.05


def test_telephone_band_is_drawn_with_its_probability():
    x = load_audio(str(REPO / "asr" / "samples" / "cathy_a0046.flac"))
    cfg = AugmentConfig(speeds=(1.0,), noise_prob=0.0, reverb_prob=0.0, gain_db=(0.0, 0.0), telephone_prob=0.3)
    high = band_energy(x, 4200, 8000)
    limited = sum(band_energy(augment_waveform(x, cfg, np.random.default_rng(s)), 4200, 8000) < 1e-3 * high
                  for s in range(40))
    assert 4 <= limited <= 20
