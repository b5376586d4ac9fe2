"""80-dim log-mel features in numpy alone: the runtime's front end (features.py is the torch
reference it equals, within 1e-5).

The same framing as features.py: frames are taken without centring (frame i covers samples
[i*HOP, i*HOP + N_FFT)), so a signal of n samples has 1 + (n - N_FFT) // HOP frames and every
frame depends on its own samples only; a streaming extractor that keeps the unconsumed sample
tail gives exactly the whole-signal features for any chunking. The spectrum is computed in
float64 so that the log of quiet bins does not magnify rounding.

The mel filterbank is data, not code: a model file carries the one it was trained with
(torchaudio's, in float32), because recomputing it in float64 moves the smallest triangle
weights by up to 0.4 % and a pure tone on such a weight would move its log-mel by 4e-3.
"""
from __future__ import annotations

import numpy as np

from .audio import F_MIN, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH

LOG_FLOOR = 1e-10  # power floor before log: digital silence -> log(1e-10) = -23.0 (as features.py)
# The feature settings every model file records (both forms); a file that says otherwise is refused.
FEATURES = {"type": "log-mel", "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH,
            "n_mels": N_MELS, "f_min": F_MIN, "log_floor": LOG_FLOOR}
N_FREQS = N_FFT // 2 + 1  # 201 rfft bins
# torch.hann_window(WIN_LENGTH, periodic=True) in float64
WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)


def num_frames(n_samples: int) -> int:
    """Feature frames in a signal of n_samples samples."""
    return 0 if n_samples < N_FFT else 1 + (n_samples - N_FFT) // HOP_LENGTH


def frames_of(x: np.ndarray) -> np.ndarray:
    """float64 samples (n,) -> the complete analysis windows (num_frames(n), N_FFT), a strided view."""
    n = num_frames(len(x))
    if n == 0:
        return np.zeros((0, N_FFT), np.float64)
    return np.lib.stride_tricks.sliding_window_view(x[: (n - 1) * HOP_LENGTH + N_FFT], N_FFT)[::HOP_LENGTH]


def log_mel_frames(frames: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """Analysis windows (k, N_FFT) and a mel filterbank (201, 80) -> log-mel features (k, 80)
    float32, each row on its own: windows of many streams can go through in one call."""
    if len(frames) == 0:
        return np.zeros((0, N_MELS), np.float32)
    spec = np.fft.rfft(np.asarray(frames, np.float64) * WINDOW)  # (k, 201) complex128
    power = spec.real ** 2 + spec.imag ** 2
    mel = power @ np.asarray(fbank, np.float64)  # (k, 80)
    return np.log(np.maximum(mel, LOG_FLOOR, out=mel), out=mel).astype(np.float32)


def log_mel(samples: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """16 kHz mono samples (n,) -> log-mel features (num_frames(n), 80) float32."""
    return log_mel_frames(frames_of(np.asarray(samples, dtype=np.float64).reshape(-1)), fbank)


_INDEX_ROWS = 256  # 2.56 s of windows: more than a live chunk holds
_INDEX = np.arange(_INDEX_ROWS)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None]  # sample indices of windows


class StreamingLogMel:
    """Chunked twin of log_mel: feed samples in any pieces, get the same frames.

    It keeps the samples not yet covered by a complete frame (at most N_FFT - 1 plus the
    hop remainder). `take()` gives the complete windows without computing features, so that
    a recogniser can compute those of many streams in one `log_mel_frames` call.
    """

    def __init__(self, fbank: np.ndarray):
        self.fbank = fbank
        self.tail = np.zeros(0, dtype=np.float64)
        self.frames_out = 0  # frames emitted so far

    def take(self, samples: np.ndarray) -> np.ndarray:
        """New samples (n,) -> the newly complete analysis windows (k, N_FFT) float64."""
        buf = np.concatenate([self.tail, np.asarray(samples, dtype=np.float64).reshape(-1)])
        n = num_frames(len(buf))
        # One gather through a cached index grid (a copy, so buf is not kept alive): per call
        # several times cheaper than a strided view, which matters with many streams.
        frames = buf[_INDEX[:n]] if n <= _INDEX_ROWS else np.array(frames_of(buf))
        self.tail = buf[n * HOP_LENGTH:]
        self.frames_out += n
        return frames

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """New samples (n,) -> the newly complete frames (k, 80) float32."""
        return log_mel_frames(self.take(samples), self.fbank)
