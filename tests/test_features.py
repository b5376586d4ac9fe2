"""Log-mel features: the streaming extractor equals the whole-signal one for ANY chunking."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.audio import HOP_LENGTH, N_FFT, N_MELS
from asr.features import StreamingLogMel, compute_stats, log_mel, num_frames


def chunked(x, sizes):
    ext = StreamingLogMel()
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(ext.accept(x[i:i + n]))
        i, k = i + n, k + 1
    return torch.cat(out) if out else torch.zeros(0, N_MELS), ext


signals = st.tuples(st.integers(0, 6000), st.sampled_from(["noise", "tone", "silence", "impulses", "loud"]),
                    st.integers(0, 2 ** 31 - 1))


def make_signal(n, kind, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    if kind == "noise":
        return (rng.standard_normal(n) * 0.1).astype(np.float32)
    if kind == "tone":  # a pure tone leaves most mel bins nearly empty: the log magnifies rounding there
        return (0.3 * np.sin(2 * np.pi * rng.uniform(50, 7000) * t)).astype(np.float32)
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind == "impulses":
        x = np.zeros(n, np.float32)
        x[rng.integers(0, max(n, 1), size=min(n, 5))] = 1.0
        return x
    return np.clip(rng.standard_normal(n) * 3, -1, 1).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(signals, st.lists(st.integers(1, 1200), min_size=1, max_size=8))
def test_streaming_features_equal_offline(signal, sizes):
    x = make_signal(*signal)
    whole = log_mel(x)
    parts, ext = chunked(x, sizes)
    assert whole.shape == (num_frames(len(x)), N_MELS)
    assert parts.shape == whole.shape
    if len(whole):
        assert torch.max(torch.abs(parts - whole)) <= 1e-5
    # the tail kept is everything after the last complete frame's hop
    assert len(ext.tail) == len(x) - ext.frames_out * HOP_LENGTH


def test_one_sample_chunks_and_chunks_shorter_than_a_window():
    x = make_signal(2000, "noise", 3)
    whole = log_mel(x)
    for size in (1, 7, HOP_LENGTH - 1, N_FFT - 1):
        parts, _ = chunked(x, [size])
        assert torch.max(torch.abs(parts - whole)) <= 1e-5


def test_frame_count_and_shape():
    assert num_frames(N_FFT - 1) == 0
    assert num_frames(N_FFT) == 1
    assert num_frames(N_FFT + HOP_LENGTH - 1) == 1
    assert num_frames(16000) == 98
    assert log_mel(np.zeros(16000, np.float32)).shape == (98, 80)


def test_features_follow_energy_and_frequency():
    t = np.arange(16000) / 16000
    low = log_mel(0.5 * np.sin(2 * np.pi * 200 * t))
    high = log_mel(0.5 * np.sin(2 * np.pi * 5000 * t))
    assert low.mean(0).argmax() < 20 < high.mean(0).argmax()
    assert log_mel(0.5 * np.sin(2 * np.pi * 200 * t)).mean() > log_mel(0.05 * np.sin(2 * np.pi * 200 * t)).mean()


def test_global_stats():
    rng = np.random.default_rng(0)
    feats = [torch.from_numpy(rng.normal(3.0, 2.0, (500, 80)).astype(np.float32)) for _ in range(4)]
    mean, std = compute_stats(iter(feats))
    together = torch.cat(feats).double()
    assert torch.allclose(mean.double(), together.mean(0), atol=1e-4)
    assert torch.allclose(std.double(), together.std(0, unbiased=False), atol=1e-4)
    assert abs(float(mean.mean()) - 3.0) < 0.05 and abs(float(std.mean()) - 2.0) < 0.05
