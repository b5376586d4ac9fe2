"""CTC decoders behind one small interface, and the result types they produce.

A decoder is fed log-probs chunk by chunk (`update`), can say its current best text at any
time (`partial`), and gives words with times when the segment ends (`finalize`). Greedy and
beam/LM decoders are interchangeable offline and streaming. Log-probs are numpy arrays (U, V)
(anything np.asarray takes, a CPU torch tensor too).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from .text import BLANK_ID, SPACE_ID, VOCAB


@dataclass
class Word:
    word: str
    start: float  # seconds from the start of the audio
    end: float
    conf: float = 1.0  # 0..1

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text,
                "words": [w.to_dict() for w in self.words]}


@dataclass
class Result:
    """A transcript: text, duration in seconds, and timed segments of timed words."""
    text: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def from_words(cls, words: list[Word], duration: float) -> "Result":
        """The transcript of these words (times in seconds), in subtitle-sized segments
        (`segments_from_words`); duration: seconds of audio."""
        return cls(" ".join(w.word for w in words), duration, segments_from_words(words))

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict:
        return {"text": self.text, "duration": round(self.duration, 3),
                "segments": [s.to_dict() for s in self.segments]}


class Decoder(Protocol):
    """reset / update / partial / finalize, in that order, for each segment of a stream."""

    def reset(self, frame_offset: int = 0) -> None: ...

    def update(self, log_probs: np.ndarray) -> None:
        """log_probs (U, V) for the next U output frames."""

    def partial(self) -> str: ...

    def finalize(self) -> list[Word]:
        """Words of everything fed since reset, with absolute times; the decoder is then reset
        to continue after the last frame fed."""


def words_from_tokens(tokens: list[tuple[int, int, float]], frame_seconds: float,
                      time_offset: float = 0.0) -> list[Word]:
    """Emitted CTC tokens [(token id, output frame, prob)] -> words with times and confidences.

    A word starts at its first character's frame and ends one frame after its last, plus
    time_offset seconds (never before 0); its confidence is the geometric mean of its
    characters' posteriors.
    """
    words, chars = [], []

    def flush():
        if chars:
            text = "".join(VOCAB[t] for t, _, _ in chars)
            conf = math.exp(sum(math.log(max(p, 1e-10)) for _, _, p in chars) / len(chars))
            start = max(0.0, chars[0][1] * frame_seconds + time_offset)
            end = max(start, (chars[-1][1] + 1) * frame_seconds + time_offset)
            words.append(Word(text, start, end, conf))
            chars.clear()

    for tok in tokens:
        if tok[0] == SPACE_ID:
            flush()
        else:
            chars.append(tok)
    flush()
    return words


def time_offset(model) -> float:
    """Seconds to add to a model's word times: its card's `word_time_offset`, for a model
    that habitually emits characters early or late (measured against an independent aligner
    with benchmarks/word_times.py), else 0."""
    return float((getattr(model, "card", None) or {}).get("word_time_offset", 0.0))


class GreedyDecoder:
    """Best path: argmax per frame, merge repeats, drop blanks. Incremental and exact.

    A character is timed at the first frame of its run; its posterior is the run's peak."""

    def __init__(self, frame_seconds: float, time_offset: float = 0.0):
        self.frame_seconds = frame_seconds
        self.time_offset = time_offset
        self.reset()

    def reset(self, frame_offset: int = 0) -> None:
        self.frame = frame_offset  # absolute index of the next output frame
        self.prev = BLANK_ID
        self.run = False  # the current run of self.prev is the last token kept
        self.tokens: list[tuple[int, int, float]] = []  # (token, frame, posterior)

    def update(self, log_probs: np.ndarray) -> None:
        if log_probs.shape[0] == 0:
            return
        lp = np.asarray(log_probs)
        best = lp.argmax(-1)
        best, probs = best.tolist(), np.exp(lp[np.arange(len(best)), best]).tolist()
        for i, (tok, p) in enumerate(zip(best, probs)):
            if tok != self.prev and tok != BLANK_ID:
                if not (tok == SPACE_ID and (not self.tokens or self.tokens[-1][0] == SPACE_ID)):
                    self.tokens.append((tok, self.frame + i, p))
                    self.run = True
                else:
                    self.run = False
            elif tok == self.prev and tok != BLANK_ID and self.run and p > self.tokens[-1][2]:
                self.tokens[-1] = (tok, self.tokens[-1][1], p)  # the run's peak posterior
            self.prev = tok
        self.frame += len(best)

    def partial(self) -> str:
        return "".join(VOCAB[t] for t, _, _ in self.tokens).strip()

    def finalize(self) -> list[Word]:
        words = words_from_tokens(self.tokens, self.frame_seconds, self.time_offset)
        self.tokens = []
        self.prev = BLANK_ID
        self.run = False
        return words


def greedy_text(log_probs: np.ndarray) -> str:
    """log_probs (U, V) -> text, for tests and evaluation."""
    dec = GreedyDecoder(1.0)
    dec.update(log_probs)
    return " ".join(w.word for w in dec.finalize())


SENTENCE_END = (".", "?", "!")


def segments_from_words(words: list[Word], max_gap: float = 0.8, max_chars: int = 84,
                        max_seconds: float = 8.0) -> list[Segment]:
    """Group words into subtitle-sized segments, cut where speech pauses: after a pause longer
    than max_gap seconds and after a sentence's last word (punctuated words: "fear."); a stretch
    longer than max_chars characters or max_seconds is split in two at its best place, the
    longest pause (a comma counts as 0.3 s more) near its middle, and so on until every part fits."""
    def fits(part: list[Word]) -> bool:
        return len(part) == 1 or (sum(len(x.word) + 1 for x in part) - 1 <= max_chars
                                  and part[-1].end - part[0].start <= max_seconds)

    def split(part: list[Word]) -> list[list[Word]]:
        if fits(part):
            return [part]
        total, before, best, best_score = sum(len(x.word) + 1 for x in part), 0, 1, -math.inf
        for k in range(1, len(part)):
            before += len(part[k - 1].word) + 1
            score = (part[k].start - part[k - 1].end + (0.3 if part[k - 1].word.endswith(",") else 0.0)
                     - 0.6 * abs(before / total - 0.5))  # a pause near the middle: no one-word scraps
            if score > best_score:
                best, best_score = k, score
        return split(part[:best]) + split(part[best:])

    stretches: list[list[Word]] = []
    for w in words:
        if stretches and not (w.start - stretches[-1][-1].end > max_gap or stretches[-1][-1].word.endswith(SENTENCE_END)):
            stretches[-1].append(w)
        else:
            stretches.append([w])
    return [Segment(p[0].start, p[-1].end, " ".join(x.word for x in p), p) for s in stretches for p in split(s)]
