"""Endpoint detection: when has an utterance ended?

Rules in the manner of sherpa-onnx (and Kaldi's online endpointing). Each rule fires when

    (the segment contains speech, or the rule does not ask for it)
    and trailing silence >= min_trailing_silence
    and segment length  >= min_utterance_length

and the defaults are:

    rule 1: 2.4 s of silence with no speech at all     -> end (a reset: the segment is empty)
    rule 2: 1.2 s of silence after speech               -> end of an utterance
    rule 3: the segment has reached 20 s                -> forced cut

Silence is judged per frame, by the model (`silence="blank"`: the CTC blank is the most
likely output, or its posterior reaches `blank_threshold`), by the signal level
(`"energy"`: the 10 ms RMS is below `energy_threshold` dBFS), or by both at once (`"both"`:
a frame is silent only when both say so). A segment contains speech once any of its frames
is not silent. An endpoint never falls on a speaking frame: every rule, rule 3 included,
waits for at least one silent frame, so a forced cut does not split a character.

All lengths are in seconds. The model's frames are `frame_seconds` long (20 ms for the
default x2 subsampling); energy is judged on 10 ms hops of the 16 kHz input.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import HOP_LENGTH, SAMPLE_RATE
from .text import BLANK_ID

SILENCE_MODES = ("blank", "energy", "both")


@dataclass(frozen=True)
class EndpointRule:
    must_contain_speech: bool
    min_trailing_silence: float  # seconds
    min_utterance_length: float  # seconds


@dataclass(frozen=True)
class EndpointConfig:
    rule1: EndpointRule = field(default_factory=lambda: EndpointRule(False, 2.4, 0.0))
    rule2: EndpointRule = field(default_factory=lambda: EndpointRule(True, 1.2, 0.0))
    rule3: EndpointRule = field(default_factory=lambda: EndpointRule(False, 0.0, 20.0))
    silence: str = "blank"  # "blank", "energy" or "both"
    blank_threshold: float | None = None  # None: blank is the argmax; else P(blank) >= this
    energy_threshold: float = -45.0  # dBFS of a 10 ms hop below which it is silent

    def __post_init__(self):
        if self.silence not in SILENCE_MODES:
            raise ValueError(f"silence must be one of {', '.join(SILENCE_MODES)}, not {self.silence!r}")
        if self.blank_threshold is not None and not 0.0 < self.blank_threshold <= 1.0:
            raise ValueError("blank_threshold must be in (0, 1]")

    @classmethod
    def from_seconds(cls, silence_after_speech: float = 1.2, silence_without_speech: float = 2.4,
                     max_utterance: float = 20.0, **kwargs) -> "EndpointConfig":
        """The three default rules with their times changed (0 or less disables a rule)."""
        never = EndpointRule(False, float("inf"), float("inf"))
        return cls(rule1=EndpointRule(False, silence_without_speech, 0.0) if silence_without_speech > 0 else never,
                   rule2=EndpointRule(True, silence_after_speech, 0.0) if silence_after_speech > 0 else never,
                   rule3=EndpointRule(False, 0.0, max_utterance) if max_utterance > 0 else never, **kwargs)

    @property
    def rules(self) -> tuple[EndpointRule, EndpointRule, EndpointRule]:
        return self.rule1, self.rule2, self.rule3


class Endpointer:
    """Per-stream endpoint state. Feed it the model's output frames (`accept_log_probs`) and,
    for the energy criterion, the input samples (`accept_samples`); ask `rule()`; `reset()`
    at each endpoint."""

    def __init__(self, config: EndpointConfig, frame_seconds: float):
        self.config = config
        self.frame_seconds = frame_seconds
        self.use_blank = config.silence in ("blank", "both")
        self.use_energy = config.silence in ("energy", "both")
        self._tail = np.zeros(0, np.float32)  # samples short of a whole 10 ms hop
        self._log_threshold = None if config.blank_threshold is None else float(np.log(config.blank_threshold))
        self.by_argmax = self.use_blank and self._log_threshold is None  # silent = blank is the argmax
        self.frames_total = 0  # model frames seen, ever (the stream's clock)
        self.reset()

    def reset(self) -> None:
        """Start a new segment."""
        self.frames = 0  # model frames in this segment
        self.blank_run = 0  # trailing silent model frames
        self.hops = 0  # 10 ms hops in this segment
        self.quiet_run = 0  # trailing quiet hops
        self.start = self.frames_total * self.frame_seconds  # segment start, seconds

    # ------------------------------------------------------------------ input
    def accept_log_probs(self, log_probs: np.ndarray) -> None:
        """log_probs (U, V) of the next U model frames."""
        if log_probs.shape[0] == 0 or not self.use_blank:
            self.frames += log_probs.shape[0]
            self.frames_total += log_probs.shape[0]
            return
        self.accept_silent_frames(self.silent_frames(log_probs))

    def accept_silent_frames(self, silent: list[bool]) -> None:
        """Per model frame: is it silent (blank)? (Frames are counted whatever the criterion.)"""
        self.frames += len(silent)
        self.frames_total += len(silent)
        run = 0
        for s in reversed(silent):
            if not s:
                break
            run += 1
        self.blank_run = self.blank_run + run if run == len(silent) else run

    def accept_samples(self, samples: np.ndarray) -> None:
        """16 kHz mono float samples (n,); judged in 10 ms hops."""
        if not self.use_energy:
            return
        x = np.concatenate([self._tail, np.asarray(samples, np.float32).reshape(-1)])
        n = len(x) // HOP_LENGTH
        self._tail = x[n * HOP_LENGTH:]
        if n == 0:
            return
        power = np.square(x[: n * HOP_LENGTH].reshape(n, HOP_LENGTH), dtype=np.float64).mean(1)
        quiet = 10.0 * np.log10(power + 1e-20) < self.config.energy_threshold
        self.hops += n
        loud = np.flatnonzero(~quiet)
        self.quiet_run = self.quiet_run + n if len(loud) == 0 else n - 1 - int(loud[-1])

    # ------------------------------------------------------------------ state
    @property
    def trailing_silence(self) -> float:
        """Seconds of silence at the end of the segment."""
        blank = self.blank_run * self.frame_seconds
        quiet = self.quiet_run * HOP_LENGTH / SAMPLE_RATE
        if self.use_blank and self.use_energy:
            return min(blank, quiet)
        return blank if self.use_blank else quiet

    @property
    def segment_length(self) -> float:
        """Seconds of audio in the segment."""
        if self.use_blank:
            return self.frames * self.frame_seconds
        return self.hops * HOP_LENGTH / SAMPLE_RATE

    @property
    def contains_speech(self) -> bool:
        # Rounding guard: lengths are sums of whole frames.
        return self.segment_length > self.trailing_silence + 1e-6

    def rule(self) -> int | None:
        """The number (1, 2, 3) of the first rule that fires now, or None."""
        return self._rule(self.segment_length, self.trailing_silence)

    def _rule(self, length: float, trailing: float) -> int | None:
        if trailing <= 0:  # never cut while a frame of speech is last
            return None
        speech = length > trailing + 1e-6  # see contains_speech
        for i, r in enumerate(self.config.rules, 1):
            if ((speech or not r.must_contain_speech) and trailing >= r.min_trailing_silence - 1e-9
                    and length >= r.min_utterance_length - 1e-9):
                return i
        return None

    # ------------------------------------------------------------------ frame-exact endpoints
    @property
    def frame_exact(self) -> bool:
        """Silence is judged on the model's frames alone (not on the signal level), so the rules
        can be checked at every frame: an endpoint then falls on the same frame however the
        audio was chunked (`frames_to_endpoint`)."""
        return not self.use_energy

    def silent_frames(self, log_probs: np.ndarray) -> list[bool]:
        """Per frame of log_probs (U, V): is it silent by this endpointer's blank criterion?"""
        if self._log_threshold is None:
            return (np.asarray(log_probs).argmax(-1) == BLANK_ID).tolist()
        return (np.asarray(log_probs)[:, BLANK_ID] >= self._log_threshold).tolist()

    def frames_to_endpoint(self, silent: list[bool]) -> int | None:
        """Were these frames fed one at a time, after how many would a rule first fire (None:
        none would)? Nothing is fed. For frame_exact endpointers only."""
        frames, run, fs = self.frames, self.blank_run, self.frame_seconds
        for k, s in enumerate(silent, 1):
            frames += 1
            if not s:
                run = 0
                continue
            run += 1
            if self._rule(frames * fs, run * fs) is not None:
                return k
        return None
