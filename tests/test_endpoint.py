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


def two_sentences(cathy_clips):
    """Two sentences with a 2 s pause of digital silence: (samples, first text, second text, a
    sample index in the pause)."""
    a, b = load_audio(cathy_clips[0][0]), load_audio(cathy_clips[6][0])
    x = np.concatenate([np.zeros(8000, np.float32), a, np.zeros(32000, np.float32), b, np.zeros(4000, np.float32)])
    return x, cathy_clips[0][1], cathy_clips[6][1], 8000 + len(a) + 16000


def words_of(segments):
    return [(w.word, w.start, w.end) for s in segments for w in s.words]


def test_endpoints_in_a_real_stream_leave_the_words_unchanged(tiny_live_model, cathy_clips):
    """Two sentences with a 2 s pause, fed in 100 ms chunks: an endpoint in the pause gives the
    first sentence, the end of the stream the second, and the words are exactly those of the
    same audio without endpointing."""
    x, text_a, text_b, _ = two_sentences(cathy_clips)
    rec = Recognizer(tiny_live_model, endpoint=EndpointConfig())
    stream, plain = rec.stream(), rec.stream(endpoint=None)
    segments, partials = [], []
    for i in range(0, len(x), 1600):
        partials.append(stream.accept(x[i:i + 1600]))
        plain.accept(x[i:i + 1600])
        seg = stream.endpoint()
        if seg is not None:
            segments.append(seg)
    segments.append(stream.finish())
    texts = [s.text for s in segments if s.text]
    assert texts == [text_a, text_b]
    first = segments[0]
    assert first.words[0].start >= 0.4 and first.end <= 0.5 + len(load_audio(cathy_clips[0][0])) / 16000 + 0.1
    assert words_of(segments) == words_of([plain.finish()])
    assert plain.endpoint() is None  # no rules, no endpoints


@pytest.mark.parametrize("silence", ["energy", "both"])
def test_endpoints_by_signal_level_end_segments_during_the_step(tiny_live_model, cathy_clips, silence):
    """With silence judged by the signal level, the rules are checked once a step, after it: the
    segment is there for endpoint() after the step that met the rule, however the audio is
    chunked, and the words are those of the stream without endpointing."""
    x, text_a, text_b, _ = two_sentences(cathy_clips)
    rec = Recognizer(tiny_live_model, endpoint=EndpointConfig(silence=silence))
    plain = rec.stream(endpoint=None)
    plain.accept(x)
    expected = words_of([plain.finish()])
    for chunk in (1600, 4410):
        stream, segments = rec.stream(), []
        for i in range(0, len(x), chunk):
            stream.accept(x[i:i + chunk])
            while (seg := stream.endpoint()) is not None:
                segments.append(seg)
        assert [s.text for s in segments if s.text] == [text_a]
        assert stream.endpoint() is None  # each segment is handed out once
        segments.append(stream.finish())
        assert [s.text for s in segments if s.text] == [text_a, text_b]
        assert words_of(segments) == expected


def test_one_verb_ends_a_segment_and_one_finishes_the_stream(tiny_live_model, cathy_clips):
    """end_segment() cuts where the caller says (no endpoint rules here) and returns that
    segment; the model state carries on, so the segments hold exactly the uncut stream's words.
    finish() flushes the model and gives only what followed the last cut; after it, another
    finish() is an empty segment at the stream's end, and the stream takes no audio."""
    x, text_a, text_b, pause = two_sentences(cathy_clips)
    rec = Recognizer(tiny_live_model)
    plain = rec.stream()
    plain.accept(x)
    whole = plain.finish()
    assert whole.text == f"{text_a} {text_b}"  # without rules, finish() is the whole stream

    stream = rec.stream()
    stream.accept(x[:pause])
    first = stream.end_segment()
    assert first.text == text_a and first.words[-1].end <= pause / 16000
    empty = stream.end_segment()  # nothing decoded since: an empty segment where the last ended
    assert (empty.text, empty.words) == ("", [])
    assert empty.start == empty.end == stream.frames * rec.frame_seconds
    stream.accept(x[pause:])
    last = stream.finish()
    assert last.text == text_b
    assert words_of([first, last]) == words_of([whole])
    again = stream.finish()
    assert (again.text, again.start, again.end) == ("", stream.seconds, stream.seconds)
    assert stream.endpoint() is None
    with pytest.raises(RuntimeError, match="finished"):
        stream.feed(x[:160])

