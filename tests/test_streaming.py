"""Streaming equals offline on the runtime (what the commands run): log-probs (<= 1e-5) and
greedy text, for any chunking; batched stepping of many streams equals stepping each alone;
bidirectional models refuse to stream."""
import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.decoding import greedy_text
from asr.logmel import log_mel
from asr.model import AcousticModel, ModelConfig
from asr.export import as_runtime
from asr.runtime import StreamState
from asr.streaming import Recognizer
from asr.text import normalize
from asr.transcribe import transcribe_array


@functools.lru_cache(maxsize=None)
def small_model(layers=2, lookahead=2, seed=0, strides=(2, 2), kernel=3):
    """A small randomly initialised model in runtime form."""
    torch.manual_seed(seed)
    cfg = ModelConfig(conv_channels=24, hidden_size=32, num_layers=layers, lookahead=lookahead,
                      conv_strides=strides, conv_kernel=kernel)
    model = AcousticModel(cfg).eval()
    with torch.no_grad():  # a non-trivial lookahead and normalisation, as after training
        if lookahead:
            model.row_conv.normal_(0, 0.5)
        model.feat_mean.normal_(-8, 1)
        model.feat_std.uniform_(1, 3)
    return as_runtime(model)


def offline_log_probs(model, x):
    feats = log_mel(x, model.fbank)
    lp, n = model(feats[None], np.array([len(feats)]))
    return lp[0, : int(n[0])]


def streamed(model, x, sizes):
    rec = Recognizer(model)
    stream = rec.stream()
    outs = []
    update = stream.decoder.update

    def capture(lp):
        outs.append(np.array(lp))
        update(lp)
    stream.decoder.update = capture
    i, k = 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        stream.accept(x[i:i + n])
        i, k = i + n, k + 1
    result = stream.finish()  # no endpoint rules: one segment, the whole stream
    lp = np.concatenate(outs) if outs else np.zeros((0, model.cfg.vocab_size), np.float32)
    return lp, result


model_configs = st.sampled_from([(1, 0), (1, 3), (3, 0), (3, 2), (2, 1)])


@settings(max_examples=40, deadline=None)
@given(model_configs, st.integers(0, 24000), st.integers(0, 10 ** 6),
       st.lists(st.integers(1, 4000), min_size=1, max_size=6))
def test_streaming_log_probs_and_text_equal_offline(cfg, n, seed, sizes):
    layers, lookahead = cfg
    model = small_model(layers, lookahead, seed=seed % 7)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * rng.uniform(0.01, 0.5)).astype(np.float32)
    ref = offline_log_probs(model, x)
    got, result = streamed(model, x, sizes)
    assert got.shape == ref.shape
    if len(ref):
        assert np.max(np.abs(got - ref)) <= 1e-5
    assert result.text == greedy_text(ref)


@pytest.mark.parametrize("strides,kernel", [((2, 2), 3), ((3,), 5), ((2, 2, 1), 4), ((4,), 4)])
def test_other_front_ends_stream_exactly(strides, kernel):
    model = small_model(2, 2, strides=strides, kernel=kernel)
    x = (np.random.default_rng(1).standard_normal(9000) * 0.1).astype(np.float32)
    ref = offline_log_probs(model, x)
    for sizes in ([1, 37, 160, 999], [4000], [7]):
        got, _ = streamed(model, x, sizes)
        assert np.max(np.abs(got - ref)) <= 1e-5


def test_real_speech_streams_to_the_offline_text(tiny_model, cathy_clips):
    from asr.audio import load_audio
    rec = Recognizer(tiny_model)
    for path, text in cathy_clips[:4]:
        x = load_audio(path)
        offline = transcribe_array(tiny_model, x).text
        assert offline == text  # the tiny model knows these clips
        for chunk in (1600, 480, 37):
            stream = rec.stream()
            for i in range(0, len(x), chunk):
                stream.accept(x[i:i + chunk])
            assert stream.finish().text == offline


def test_transcribe_takes_a_file_or_its_samples(tiny_model, cathy_clips):
    from asr.audio import load_audio
    from asr.transcribe import transcribe
    path, text = cathy_clips[1]
    from_file, from_array = transcribe(tiny_model, path), transcribe(tiny_model, load_audio(path))
    assert from_file.to_dict() == from_array.to_dict() == transcribe_array(tiny_model, load_audio(path), punctuation=True).to_dict()
    assert normalize(from_file.text) == text and from_file.text != text  # punctuated, as `asr transcribe`


def test_partials_grow_towards_the_final_text(tiny_model, cathy_clips):
    from asr.audio import load_audio
    path, text = cathy_clips[0]
    x = load_audio(path)
    stream = Recognizer(tiny_model).stream()
    partials = [stream.accept(x[i:i + 1600]) for i in range(0, len(x), 1600)]
    assert partials[0] == "" or text.startswith(partials[0])
    for p in partials:
        assert text.startswith(p.strip())
    assert len(partials[-1]) > len(text) // 2
    assert stream.finish().text == text


def test_batched_steps_equal_single_streams():
    model = small_model(2, 3, seed=3)
    rng = np.random.default_rng(5)
    signals = [(rng.standard_normal(n) * 0.2).astype(np.float32) for n in (3000, 16000, 9100, 400, 12000)]
    rec = Recognizer(model)
    alone = []
    for x in signals:
        lp, _ = streamed(model, x, [1234])
        alone.append(lp)
    streams = [rec.stream() for _ in signals]
    logs = [[] for _ in signals]
    for s, log in zip(streams, logs):
        s.decoder.update = log.append
    pos = [0] * len(signals)
    while any(p < len(x) for p, x in zip(pos, signals)):
        for i, x in enumerate(signals):  # ragged arrivals: each stream gets a different amount
            n = int(rng.integers(0, 3000))
            streams[i].feed(x[pos[i]:pos[i] + n])
            pos[i] += n
        rec.step(streams)
    rec.step(streams, final=True)
    for log, ref in zip(logs, alone):
        got = np.concatenate(log)
        assert got.shape == ref.shape
        assert np.allclose(got, ref, rtol=0, atol=1e-5)


def test_state_stack_and_unbind_round_trip():
    model = small_model(2, 2)
    states = [model.init_state(1) for _ in range(3)]
    for i, s in enumerate(states):
        s.gru += i
        s.ahead_fill += i
    joined = StreamState.stack(states)
    assert joined.batch_size == 3
    for a, b in zip(joined.unbind(), states):
        assert np.array_equal(a.gru, b.gru) and np.array_equal(a.ahead_fill, b.ahead_fill)


def test_bidirectional_model_cannot_stream():
    model = AcousticModel(ModelConfig(conv_channels=16, hidden_size=16, num_layers=1, bidirectional=True, lookahead=0))
    with pytest.raises(ValueError, match="bidirectional"):
        Recognizer(model)
    with pytest.raises(ValueError, match="bidirectional"):
        model.infer(torch.zeros(1, 8, 80), torch.tensor([8]), model.init_state(1))
    rt = as_runtime(model)
    with pytest.raises(ValueError, match="bidirectional"):
        Recognizer(rt)
    with pytest.raises(ValueError, match="bidirectional"):
        rt.infer(np.zeros((1, 8, 80), np.float32), np.array([8]), rt.init_state(1))
    with pytest.raises(ValueError, match="lookahead"):
        ModelConfig(bidirectional=True, lookahead=2)


def test_nan_samples_are_refused_by_a_stream():
    from asr.audio import AudioError
    stream = Recognizer(small_model()).stream()
    with pytest.raises(AudioError, match="NaN"):
        stream.accept(np.array([0.0, np.nan], np.float32))
