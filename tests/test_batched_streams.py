"""Many streams stepped together through one batched model call give exactly what each gives
stepped alone: the same partials after every chunk, the same endpoints, the same words."""
import numpy as np
import pytest

from asr.audio import load_audio
from asr.endpoint import EndpointConfig
from asr.features import StreamingLogMel, log_mel, log_mel_frames
from asr.streaming import Recognizer


def conversations(cathy_clips, n):
    """n signals of speech, a pause, other speech (different clips and pauses per stream)."""
    clips = [load_audio(p) for p, _ in cathy_clips]
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        a, b = clips[i % 8], clips[(i * 3 + 1) % 8]
        gap = np.zeros(int(16000 * rng.uniform(0.2, 2.2)), np.float32)
        out.append(np.concatenate([np.zeros(int(rng.integers(0, 8000)), np.float32), a, gap, b]))
    return out


def schedule(n_streams, lengths, seed):
    """Per tick, how many samples each stream receives (ragged: some get nothing some ticks)."""
    rng = np.random.default_rng(seed)
    pos, ticks = [0] * n_streams, []
    while any(p < n for p, n in zip(pos, lengths)):
        sizes = [int(rng.choice([0, 160, 1600, 1601, 3200, 4800])) for _ in range(n_streams)]
        ticks.append([(p, min(p + s, n)) for p, s, n in zip(pos, sizes, lengths)])
        pos = [min(p + s, n) for p, s, n in zip(pos, sizes, lengths)]
    return ticks


def run(model, signals, ticks, batched: bool, max_frames=None):
    rec = Recognizer(model, endpoint=EndpointConfig())
    streams = [rec.stream() for _ in signals]
    log = [[] for _ in signals]
    words = [[] for _ in signals]  # each stream's words, segment by segment
    for tick in ticks:
        for s, x, (a, b) in zip(streams, signals, tick):
            s.feed(x[a:b])
        if batched:
            rec.step(streams, max_frames=max_frames)
        else:
            for s in streams:
                rec.step([s], max_frames=max_frames)
        for s, entries, said in zip(streams, log, words):
            seg = s.endpoint()
            entries.append(("final", seg.text, seg.start, seg.end) if seg else ("partial", s.partial()))
            said += seg.words if seg else []
    if batched:
        rec.step(streams, final=True)
    finals = [s.finish() for s in streams]
    for said, last in zip(words, finals):
        said += last.words
    return log, finals, words


@pytest.mark.parametrize("max_frames", [None, 12])
def test_batched_streams_equal_streams_stepped_alone(tiny_live_model, cathy_clips, max_frames):
    signals = conversations(cathy_clips, 8)
    ticks = schedule(len(signals), [len(x) for x in signals], seed=3)
    log_b, finals_b, words_b = run(tiny_live_model, signals, ticks, True, max_frames)
    log_s, finals_s, words_s = run(tiny_live_model, signals, ticks, False, max_frames)
    assert log_b == log_s
    assert [f.text for f in finals_b] == [f.text for f in finals_s]
    for wb, ws in zip(words_b, words_s):
        assert [(w.word, w.start, w.end) for w in wb] == [(w.word, w.start, w.end) for w in ws]
        assert np.allclose([w.conf for w in wb], [w.conf for w in ws], atol=1e-5)
    # endpoints did happen mid-stream, and the recognised words are the clips' words
    assert sum(e[0] == "final" and e[1] != "" for entries in log_b for e in entries) >= 4
    for i, wb in enumerate(words_b):
        expected = cathy_clips[i % 8][1] + " " + cathy_clips[(i * 3 + 1) % 8][1]
        assert " ".join(w.word for w in wb) == expected


def test_features_of_many_streams_at_once_equal_each_alone():
    rng = np.random.default_rng(0)
    extractors = [StreamingLogMel() for _ in range(5)]
    signals = [(rng.standard_normal(int(n)) * 0.1).astype(np.float32) for n in rng.integers(300, 9000, 5)]
    windows = [e.take(x) for e, x in zip(extractors, signals)]
    together = log_mel_frames(np.concatenate(windows))
    i = 0
    for w, x in zip(windows, signals):
        alone = log_mel(x)
        assert together[i:i + len(w)].equal(alone) and len(w) == len(alone)
        i += len(w)
