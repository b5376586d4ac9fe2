"""80-dim log-mel features, whole-signal and streaming, and global normalisation statistics.

Frames are taken without centring (frame i covers samples [i*HOP, i*HOP + N_FFT)), so a
signal of n samples has 1 + (n - N_FFT) // HOP frames (none if n < N_FFT) and every frame
depends on its own samples only. That is what lets a streaming extractor that keeps the
unconsumed sample tail produce exactly the whole-signal features for any chunking, and
lets the windows of many streams be computed together. The spectrum is computed in
float64 so that the log of quiet bins does not magnify rounding.
"""
from __future__ import annotations

import numpy as np
import torch
import torchaudio

from .audio import F_MIN, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH
from .logmel import LOG_FLOOR, frames_of, num_frames  # the framing the torch-free runtime shares


_FBANK = torchaudio.functional.melscale_fbanks(
    n_freqs=N_FFT // 2 + 1, f_min=F_MIN, f_max=SAMPLE_RATE / 2, n_mels=N_MELS,
    sample_rate=SAMPLE_RATE, norm=None, mel_scale="htk").to(torch.float64)  # (201, 80)
_WINDOW = torch.hann_window(WIN_LENGTH, periodic=True, dtype=torch.float64)


def log_mel_frames(frames: np.ndarray) -> torch.Tensor:
    """Analysis windows (k, N_FFT) -> log-mel features (k, 80) float32, each row on its own:
    windows of many streams can go through in one call and come out as they would alone."""
    if len(frames) == 0:
        return torch.zeros(0, N_MELS, dtype=torch.float32)
    x = torch.from_numpy(np.require(frames, np.float64, ["C", "W"])) * _WINDOW  # (k, 400)
    spec = torch.fft.rfft(x)  # (k, 201)
    power = spec.real.square() + spec.imag.square()
    return (power @ _FBANK).clamp_min(LOG_FLOOR).log().to(torch.float32)  # (k, 80)


def log_mel(samples: np.ndarray | torch.Tensor) -> torch.Tensor:
    """16 kHz mono samples (n,) -> log-mel features (num_frames(n), 80) float32."""
    if torch.is_tensor(samples):
        samples = samples.detach().cpu().numpy()
    return log_mel_frames(frames_of(np.asarray(samples, dtype=np.float64).reshape(-1)))


_INDEX_ROWS = 256  # 2.56 s of windows: more than a live chunk holds
_INDEX = np.arange(_INDEX_ROWS)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None]  # sample indices of windows


class StreamingLogMel:
    """Chunked twin of log_mel: feed samples in any pieces, get the same frames.

    It keeps the samples not yet covered by a complete frame (at most N_FFT - 1 plus the
    hop remainder), so accept() of 1-sample chunks works as well as of whole files.
    `take()` gives the complete windows without computing features, so that a recogniser
    can compute those of many streams in one `log_mel_frames` call.
    """

    def __init__(self):
        self.tail = np.zeros(0, dtype=np.float64)
        self.frames_out = 0  # frames emitted so far

    def take(self, samples: np.ndarray) -> np.ndarray:
        """New samples (n,) -> the newly complete analysis windows (k, N_FFT) float64."""
        buf = np.concatenate([self.tail, np.asarray(samples, dtype=np.float64).reshape(-1)])
        n = num_frames(len(buf))
        # One gather through a cached index grid (a copy, so buf is not kept alive): per call
        # this is several times cheaper than a strided view, which matters with many streams.
        if n <= _INDEX_ROWS:
            frames = buf[_INDEX[:n]]
        else:  # a long block: the strided view, copied
            frames = np.array(frames_of(buf))
        self.tail = buf[n * HOP_LENGTH:]
        self.frames_out += n
        return frames

    def accept(self, samples: np.ndarray) -> torch.Tensor:
        """New samples (n,) -> the newly complete frames (k, 80)."""
        return log_mel_frames(self.take(samples))


def compute_stats(feature_iter) -> tuple[torch.Tensor, torch.Tensor]:
    """Global per-bin mean and standard deviation over an iterable of (T, 80) feature tensors."""
    total = torch.zeros(N_MELS, dtype=torch.float64)
    total_sq = torch.zeros(N_MELS, dtype=torch.float64)
    count = 0
    for feats in feature_iter:
        f = feats.to(torch.float64)
        total += f.sum(0)
        total_sq += f.square().sum(0)
        count += f.shape[0]
    if count == 0:
        raise ValueError("no feature frames to compute statistics from")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(1e-8).sqrt()
    return mean.to(torch.float32), std.to(torch.float32)
