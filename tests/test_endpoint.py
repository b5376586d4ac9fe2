"""Endpointing: the three rules on synthetic silence/speech patterns, each silence criterion, and
endpoints in a real stream (which must not change what is recognised)."""
import math

import numpy as np
import pytest
import torch

from asr.audio import load_audio
from asr.endpoint import EndpointConfig, Endpointer, EndpointRule
from asr.streaming import Recognizer
from asr.text import BLANK_ID, VOCAB

F = 0.04  # seconds per model frame (x4 subsampling)
S, Q = False, True  # a speaking frame, a silent frame


def frames_until_rule(ep: Endpointer, pattern: list[bool], limit: int = 2000) -> tuple[int | None, int]:
    """Feed the pattern one frame at a time, then silence (or the pattern's last value) until a
    rule fires: (rule, frames fed)."""
    for i in range(limit):
        ep.accept_silent_frames([pattern[i] if i < len(pattern) else pattern[-1]])
        rule = ep.rule()
        if rule is not None:
            return rule, i + 1
    return None, limit


def test_silence_after_speech_ends_an_utterance_at_1_2_s():
    ep = Endpointer(EndpointConfig(), F)
    rule, n = frames_until_rule(ep, [Q] * 5 + [S] * 40 + [Q])
    assert rule == 2 and n == 45 + 30  # 30 silent frames = 1.2 s, not one sooner
    assert math.isclose(ep.trailing_silence, 1.2) and ep.contains_speech


def test_silence_alone_resets_after_2_4_s():
    ep = Endpointer(EndpointConfig(), F)
    rule, n = frames_until_rule(ep, [Q])
    assert rule == 1 and n == 60 and not ep.contains_speech
    ep.reset()
    assert ep.trailing_silence == 0 and ep.segment_length == 0 and ep.start == pytest.approx(2.4)


def test_pauses_shorter_than_the_rule_do_not_end_an_utterance():
    ep = Endpointer(EndpointConfig(), F)
    pattern = ([S] * 10 + [Q] * 29) * 8 + [S]  # 1.16 s pauses, again and again
    for f in pattern:
        ep.accept_silent_frames([f])
        assert ep.rule() is None


def test_a_long_utterance_is_cut_at_20_s_on_a_silent_frame_only():
    ep = Endpointer(EndpointConfig(), F)
    rule, n = frames_until_rule(ep, [S] * 600, limit=600)
    assert rule is None  # 24 s of unbroken speech: never cut inside a character
    ep.accept_silent_frames([Q])
    assert ep.rule() == 3
    ep = Endpointer(EndpointConfig(), F)
    rule, n = frames_until_rule(ep, [S, Q] * 300)
    assert rule == 3 and n == 500  # frame 500 (20.0 s) is silent: the cut falls there
    ep = Endpointer(EndpointConfig(), F)
    assert frames_until_rule(ep, [Q, S] * 300) == (3, 501)  # frame 500 speaks: one later


def test_rules_are_configurable_and_can_be_disabled():
    ep = Endpointer(EndpointConfig.from_seconds(0.4, 0, 0), F)
    assert frames_until_rule(ep, [S] * 3 + [Q]) == (2, 13)
    ep = Endpointer(EndpointConfig.from_seconds(0, 0, 0), F)
    assert frames_until_rule(ep, [S] * 3 + [Q], limit=1000) == (None, 1000)
    custom = EndpointConfig(rule2=EndpointRule(True, 0.2, 1.0))  # a pause of 0.2 s once 1 s long
    ep = Endpointer(custom, F)
    assert frames_until_rule(ep, [S] * 10 + [Q] * 5 + [S] * 10 + [Q]) == (2, 30)
    with pytest.raises(ValueError, match="silence"):
        EndpointConfig(silence="loud")
    with pytest.raises(ValueError, match="blank_threshold"):
        EndpointConfig(blank_threshold=1.5)


def log_probs(blank_probs: list[float]) -> torch.Tensor:
    """(U, V) log-probs with the given blank posterior; the rest on 'a'."""
    p = torch.zeros(len(blank_probs), len(VOCAB))
    p[:, BLANK_ID] = torch.tensor(blank_probs)
    p[:, VOCAB.index("a")] = 1 - p[:, BLANK_ID]
    return p.clamp_min(1e-9).log()


def test_blank_posterior_by_argmax_or_threshold():
    ep = Endpointer(EndpointConfig(), F)
    ep.accept_log_probs(log_probs([0.1, 0.6, 0.6]))
    assert ep.blank_run == 2 and ep.contains_speech
    strict = Endpointer(EndpointConfig(blank_threshold=0.7), F)
    strict.accept_log_probs(log_probs([0.1, 0.6, 0.8, 0.8]))
    assert strict.blank_run == 2
    strict.accept_log_probs(log_probs([0.65]))
    assert strict.blank_run == 0


def tone(seconds, dbfs):
    t = np.arange(int(16000 * seconds)) / 16000
    return (10 ** (dbfs / 20) * math.sqrt(2) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_energy_judges_silence_by_level():
    ep = Endpointer(EndpointConfig(silence="energy", energy_threshold=-45), F)
    ep.accept_samples(tone(1.0, -60))  # quiet hum: silence
    assert ep.contains_speech is False and ep.trailing_silence == pytest.approx(1.0)
    ep.accept_samples(tone(0.5, -20))  # speech-loud
    assert ep.trailing_silence == 0 and ep.contains_speech
    for chunk in np.array_split(np.zeros(int(16000 * 1.19), np.float32), 37):  # any chunking
        ep.accept_samples(chunk)
    assert ep.rule() is None and ep.trailing_silence == pytest.approx(1.19)
    ep.accept_samples(np.zeros(160, np.float32))
    assert ep.rule() == 2


def test_both_needs_blank_and_quiet_together():
    ep = Endpointer(EndpointConfig(silence="both"), F)
    ep.accept_samples(tone(1.5, -20))  # loud...
    ep.accept_silent_frames([S] * 5 + [Q] * 32)  # ...though the model hears a pause
    assert ep.rule() is None and ep.trailing_silence == 0
    ep.accept_samples(np.zeros(int(16000 * 1.2), np.float32))  # now both agree
    ep.accept_silent_frames([Q] * 30)
    assert ep.rule() == 2


def test_endpoints_in_a_real_stream_leave_the_words_unchanged(tiny_live_model, cathy_clips):
    """Two sentences with a 2 s pause, fed in 100 ms chunks: an endpoint in the pause gives the
    first sentence, the end of the stream the second, and the words are exactly those of the
    same audio without endpointing."""
    a, b = load_audio(cathy_clips[0][0]), load_audio(cathy_clips[6][0])
    x = np.concatenate([np.zeros(8000, np.float32), a, np.zeros(32000, np.float32), b, np.zeros(4000, np.float32)])
    rec = Recognizer(tiny_live_model, endpoint=EndpointConfig())
    stream, plain = rec.stream(), rec.stream(endpoint=None)
    segments, partials = [], []
    for i in range(0, len(x), 1600):
        partials.append(stream.accept(x[i:i + 1600]))
        plain.accept(x[i:i + 1600])
        seg = stream.endpoint()
        if seg is not None:
            segments.append(seg)
    segments.append(stream.final_segment())
    texts = [s.text for s in segments if s.text]
    assert texts == [cathy_clips[0][1], cathy_clips[6][1]]
    first = segments[0]
    assert first.words[0].start >= 0.4 and first.end <= len(a) / 16000 + 0.6
    assert [(w.word, w.start, w.end) for s in segments for w in s.words] == \
        [(w.word, w.start, w.end) for w in plain.finalize().words]
    assert stream.finalize().text == " ".join(texts)
    assert plain.endpoint() is None  # no rules, no endpoints


def test_a_stream_that_forgets_sent_words_still_gives_its_last_segment(tiny_live_model, cathy_clips):
    """What `asr serve` does after sending each ended segment: the words already sent are
    dropped, the last segment still comes whole, and finalize() covers only what followed."""
    a, b = load_audio(cathy_clips[0][0]), load_audio(cathy_clips[6][0])
    x = np.concatenate([np.zeros(8000, np.float32), a, np.zeros(32000, np.float32), b, np.zeros(4000, np.float32)])
    stream = Recognizer(tiny_live_model, endpoint=EndpointConfig()).stream()
    sent = []
    for i in range(0, len(x), 1600):
        stream.accept(x[i:i + 1600])
        while (seg := stream.endpoint()) is not None:
            sent.append(seg.text)
            stream.forget_words()
    assert [t for t in sent if t] == [cathy_clips[0][1]]
    assert stream.final_segment().text == cathy_clips[6][1]
    assert stream.finalize().text == cathy_clips[6][1]
