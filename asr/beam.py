"""Beam search over CTC log-probs with an n-gram language model, hotwords, and word times
and confidences from the best hypothesis' frame alignment.

The search is pyctcdecode's CTC prefix beam search with shallow fusion of a KenLM model
(ARPA or KenLM binary): score = log P_ctc + alpha * ln P_lm + beta * words (+ hotword
bonuses). `BeamSearch` holds the loaded language model and the options and is shared by any
number of `BeamDecoder`s, one per stream, which implement the `Decoder` interface: partial
results stay greedy (cheap, every chunk), and each segment's final result is beam searched
when the segment ends, with the language model's context carried over from the stream's
previous segments.

`decoder_for(model, ...)` is where a model gets its decoders, greedy or beam search, with the
language model and tuned weights its card names unless the caller chooses others: every
command and the Python API ask it.
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from .decoding import Decoder, GreedyDecoder, Word, time_offset, words_from_tokens
from .lm import LMError, load_language_model  # noqa: F401 (both stay importable from here, as before)
from .text import BLANK_ID, SPACE_ID, VOCAB, encode, normalize

# pyctcdecode warns about small unigram lists and ARPA loading through `logging`; our own
# errors say what matters.
logging.getLogger("pyctcdecode").setLevel(logging.ERROR)

DEFAULT_BEAM_SIZE = 32
DEFAULT_ALPHA = 0.5  # language model weight (tune with `asr tune-lm`)
DEFAULT_BETA = 1.0  # word insertion bonus
DEFAULT_HOTWORD_WEIGHT = 10.0  # natural-log bonus per hotword (pyctcdecode's default)
MIN_LOGP = math.log(1e-15)  # log-probs are clipped here, as pyctcdecode does


@dataclass(frozen=True)
class BeamOptions:
    beam_size: int = DEFAULT_BEAM_SIZE
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    hotwords: tuple[tuple[str, float], ...] = ()  # (normalised word or phrase, weight)
    beam_prune_logp: float = -10.0  # drop beams this far below the best
    token_min_logp: float = -5.0  # characters below this log-prob are not expanded (unless argmax)

    def __post_init__(self):
        if self.beam_size < 1:
            raise ValueError(f"the beam size must be at least 1 (got {self.beam_size})")
        for name in ("alpha", "beta"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number (got {getattr(self, name)!r})")


def parse_hotword(spec: str) -> tuple[str, float]:
    """'WORD[:WEIGHT]' -> (normalised word, weight). Raises ValueError with a one-line reason."""
    word, sep, weight = spec.rpartition(":")  # what follows the last colon is the weight
    text = normalize(word if sep else spec)
    if not text:
        raise ValueError(f"hotword {spec!r} has no letters")
    try:
        value = float(weight) if sep else DEFAULT_HOTWORD_WEIGHT
    except ValueError:
        raise ValueError(f"hotword {spec!r}: the weight after the colon must be a number (WORD[:WEIGHT])") from None
    if not math.isfinite(value):
        raise ValueError(f"hotword {spec!r}: weight must be finite")
    return text, value


# --------------------------------------------------------------------------- hotwords
def _hotword_scorer(hotwords: Iterable[tuple[str, float]]):
    """pyctcdecode's HotwordScorer with a weight per hotword."""
    from pyctcdecode.language_model import HotwordScorer
    from pygtrie import CharTrie

    weights: dict[str, float] = {}
    for phrase, weight in hotwords:
        for word in phrase.split():
            weights[word] = max(weights.get(word, weight), weight)
    if not weights:
        class NoHotwords(HotwordScorer):  # pyctcdecode's empty scorer still searches a trie per beam and frame
            def __contains__(self, item: str) -> bool:
                return False

            def score(self, text: str) -> float:
                return 0.0

            def score_partial_token(self, token: str) -> float:
                return 0.0
        return NoHotwords(re.compile(r"^\b$"), CharTrie(), 0.0)

    class WeightedHotwords(HotwordScorer):
        def score(self, text: str) -> float:
            return sum(weights[m] for m in self._match_ptn.findall(text))

        def score_partial_token(self, token: str) -> float:
            if token not in self:
                return 0.0
            shortest = next(self._char_trie.iterkeys(token, shallow=True))
            return weights[shortest] * len(token) / len(shortest)

    ordered = sorted(weights, key=len, reverse=True)  # longest match first
    pattern = re.compile("|".join(r"(?<!\S)" + re.escape(w) + r"(?!\S)" for w in ordered))
    return WeightedHotwords(pattern, CharTrie.fromkeys(sorted(weights, key=len)), 0.0)


# --------------------------------------------------------------------------- search
class BeamSearch:
    """The loaded language model and options, shared by every stream's BeamDecoder.

    lm: path of an ARPA or KenLM binary file, or None for a beam search without LM.
    """

    def __init__(self, lm: str | os.PathLike | None = None, options: BeamOptions = BeamOptions()):
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC

        self.options = options
        self.language_model = None if lm is None else load_language_model(lm, options.alpha, options.beta)
        labels = [""] + list(VOCAB[1:])  # "" is pyctcdecode's blank
        self._decoder = BeamSearchDecoderCTC(Alphabet(labels, False), self.language_model)
        self._hotwords = _hotword_scorer(options.hotwords)

    def with_hotwords(self, hotwords: tuple[tuple[str, float], ...]) -> "BeamSearch":
        """This search with these (word, weight) hotwords added, sharing the loaded language model."""
        import copy
        new = copy.copy(self)
        new.options = replace(self.options, hotwords=self.options.hotwords + tuple(hotwords))
        new._hotwords = _hotword_scorer(new.options.hotwords)
        return new

    def set_weights(self, alpha: float, beta: float) -> None:
        """Change alpha and beta without reloading the language model (for tuning)."""
        if self.language_model is not None:
            self.language_model.reset_params(alpha=float(alpha), beta=float(beta))

    def context_state(self, context: list[str]):
        """LM state after the stream's earlier words (None: sentence start, or no LM)."""
        if self.language_model is None or not context:
            return None
        return self.language_model.state_after(context)

    def search(self, log_probs: np.ndarray, context: list[str] | None = None) -> list[str]:
        """The best hypothesis' words for log_probs (U, V). context: the stream's earlier
        words (the LM's history)."""
        lp = np.asarray(log_probs)
        if lp.shape[0] == 0:
            return []
        lp = np.clip(lp.astype(np.float32, copy=False), MIN_LOGP, 0.0)
        o = self.options
        lp = _drop_blank_runs(lp, o.token_min_logp)
        # pyctcdecode's own decode_beams() builds a single-weight hotword scorer and cannot be
        # given ours; _decode_logits (pyctcdecode 0.5, pinned) is the search it wraps.
        beams = self._decoder._decode_logits(
            lp, beam_width=o.beam_size, beam_prune_logp=o.beam_prune_logp, token_min_logp=o.token_min_logp,
            prune_history=True, hotword_scorer=self._hotwords, lm_start_state=self.context_state(context or []))
        return beams[0][0].split() if beams else []

    def words(self, log_probs: np.ndarray, frame_offset: int, frame_seconds: float,
              context: list[str] | None = None, time_offset: float = 0.0) -> list[Word]:
        """Beam search log_probs (U, V) and time the words: absolute times in seconds, and
        confidences in 0..1 (see `align_words`)."""
        lp = np.asarray(log_probs, dtype=np.float32)
        return align_words(lp, self.search(lp, context), frame_offset, frame_seconds, time_offset)


def forced_align(log_probs: np.ndarray, ids: list[int], blank: int = BLANK_ID) -> list[int]:
    """CTC Viterbi alignment: the token of each frame on the best single path through
    log_probs (U, V) that spells ids (no blanks in them), as torchaudio.functional.forced_align
    computes it (its recursion in float32, with its pruning and tie-breaking: the same path,
    tests/test_beam.py; where partial paths tie exactly, torchaudio 2.11 at times returns a
    worse one, this a best one).
    Raises ValueError when there are fewer frames than the ids need (repeats need a blank
    between them)."""
    lp = np.asarray(log_probs, dtype=np.float32)
    T, L = lp.shape[0], len(ids)
    S = 2 * L + 1
    repeats = sum(a == b for a, b in zip(ids, ids[1:]))
    if T < L + repeats or T == 0:  # (L >= 1: align_words aligns words)
        raise ValueError(f"{L} tokens with {repeats} repeats cannot be aligned to {T} frames")
    labels = np.full(S, blank, np.int64)
    labels[1::2] = ids
    # state i may be entered from i - 2 (skipping a blank): odd i >= 3 whose token differs from the previous one
    skip = np.zeros(S, bool)
    skip[3::2] = np.asarray(ids[1:]) != np.asarray(ids[:-1]) if L > 1 else False
    emit = lp[:, labels]  # (T, S)
    neg = np.float32(-np.inf)
    alpha = np.full(S, neg, np.float32)
    start = 0 if T - (L + repeats) > 0 else 1
    end = 1 if S == 1 else 2
    alpha[start:end] = emit[0, start:end]
    back = np.zeros((T, S), np.int8)
    for t in range(1, T):
        if T - t <= L + repeats:  # states before `start` can no longer reach the end in time
            if start % 2 == 1 and start // 2 + 1 < L and ids[start // 2] != ids[start // 2 + 1]:
                start += 1
            start += 1
        if t <= L + repeats:  # states from `end` on cannot be reached yet
            if end % 2 == 0 and end < 2 * L and ids[end // 2 - 1] != ids[end // 2]:
                end += 1
            end += 1
        x0 = alpha
        x1 = np.concatenate([[neg], alpha[:-1]])
        x2 = np.where(skip, np.concatenate([[neg, neg], alpha[:-2]]), neg)
        take2 = (x2 > x1) & (x2 > x0)
        take1 = ~take2 & (x1 > x0)
        best = np.where(take2, x2, np.where(take1, x1, x0))
        step = np.where(take2, 2, np.where(take1, 1, 0)).astype(np.int8)
        new = np.full(S, neg, np.float32)
        new[start:end] = best[start:end] + emit[t, start:end]
        back[t, start:end] = step[start:end]
        if start == 0:  # the leading blank only continues itself
            new[0] = alpha[0] + emit[t, 0]
            back[t, 0] = 0
        alpha = new
    i = S - 1 if S == 1 or alpha[S - 1] > alpha[S - 2] else S - 2
    path = [0] * T
    for t in range(T - 1, -1, -1):
        path[t] = int(labels[i])
        i -= int(back[t, i])
    return path


def align_words(log_probs: np.ndarray, words: list[str], frame_offset: int, frame_seconds: float,
                time_offset: float = 0.0) -> list[Word]:
    """Time a hypothesis on the log-probs it was decoded from: Words with times in seconds
    and confidences in 0..1.

    The words, joined by spaces, are force-aligned to log_probs (U, V) (CTC Viterbi,
    `forced_align`): the best single path that spells them. A character is emitted at the first
    frame of its run in that path, and its confidence is its highest posterior in the run
    (CTC posteriors are peaky); a word's confidence is the geometric mean of its characters',
    as the greedy decoder computes it. A word starts at its first character's frame and ends
    one frame after its last; time_offset (seconds, from the model card) corrects a model's
    habitual emission delay.
    """
    if not words:
        return []
    lp = np.asarray(log_probs, dtype=np.float32)
    ids = encode(" ".join(words))
    try:
        path = forced_align(lp, ids, BLANK_ID)
    except ValueError:  # more characters than frames: cannot come from a CTC path
        step = lp.shape[0] / len(ids)
        tokens = [(t, frame_offset + int(i * step), 0.0) for i, t in enumerate(ids)]
        return words_from_tokens(tokens, frame_seconds, time_offset)
    probs = np.exp(lp[np.arange(len(path)), path]).tolist()
    tokens: list[list] = []  # [token, absolute frame, peak posterior]
    prev = BLANK_ID
    for i, (t, p) in enumerate(zip(path, probs)):
        if t != BLANK_ID:
            if t != prev:
                tokens.append([t, frame_offset + i, p])
            else:
                tokens[-1][2] = max(tokens[-1][2], p)
        prev = t
    return words_from_tokens([tuple(t) for t in tokens], frame_seconds, time_offset)


def _drop_blank_runs(lp: np.ndarray, token_min_logp: float) -> np.ndarray:
    """Keep one frame of each run of frames where only the blank can be expanded.

    In such a frame every beam takes the blank and gains the same log-prob, so after the
    first frame of a run the search's ranking, merging and pruning cannot change: dropping
    the rest gives the same hypotheses (the frame indices change, which is why words are
    timed by `align_words` on the full log-probs) and saves most of the search's time, since
    CTC output is mostly confident blanks.
    """
    only_blank = (lp[:, 1:].max(axis=1) < token_min_logp) & (lp.argmax(axis=1) == BLANK_ID)
    repeat = only_blank.copy()
    repeat[1:] &= only_blank[:-1]
    repeat[0] = False
    return lp[~repeat] if repeat.any() else lp


class BeamDecoder:
    """The Decoder interface over a shared BeamSearch.

    Partial results are greedy; `finalize` beam-searches the segment with the stream's
    earlier words as the language model's context, so the LM sees across endpoints. A
    segment longer than PIECE_SECONDS (a long file with no endpoints) is searched piece by
    piece as it comes, each cut at a pause chosen from the frames alone, so the result does
    not depend on how the audio was chunked and the work per frame stays constant.
    """

    PIECE_SECONDS = 20.0

    def __init__(self, search: BeamSearch, frame_seconds: float, time_offset: float = 0.0):
        self.search = search
        self.frame_seconds = frame_seconds
        self.time_offset = time_offset  # seconds added to word times (the model card's word_time_offset)
        self.piece_frames = max(1, round(self.PIECE_SECONDS / frame_seconds))
        self.greedy = GreedyDecoder(frame_seconds, time_offset)
        self.context: list[str] = []
        self.reset()

    def reset(self, frame_offset: int = 0) -> None:
        """Start afresh at frame_offset (no LM context)."""
        self.frame = self.start = frame_offset  # next frame; first frame not yet beam-searched
        self.buffer = np.zeros((0, len(VOCAB)), np.float32)  # (frames since start, V)
        self.words: list[Word] = []  # searched pieces of the current segment
        self.context = []
        self.greedy.reset(frame_offset)

    def update(self, log_probs: np.ndarray) -> None:
        if log_probs.shape[0] == 0:
            return
        log_probs = np.asarray(log_probs, dtype=np.float32)
        self.buffer = np.concatenate([self.buffer, log_probs])
        self.greedy.update(log_probs)
        self.frame += log_probs.shape[0]
        while len(self.buffer) >= self.piece_frames:
            self._search(_pause_cut(self.buffer[: self.piece_frames]))

    def _search(self, n: int) -> None:
        """Beam-search the first n buffered frames and move on past them."""
        words = self.search.words(self.buffer[:n], self.start, self.frame_seconds, self.context, self.time_offset)
        self.words.extend(words)
        self.context = (self.context + [w.word for w in words])[-8:]
        self.buffer = self.buffer[n:]
        self.start += n

    def partial(self) -> str:
        return self.greedy.partial()

    def finalize(self) -> list[Word]:
        if len(self.buffer):
            self._search(len(self.buffer))
        words, self.words = self.words, []
        self.greedy.finalize()
        return words


def _pause_cut(lp: np.ndarray) -> int:
    """Where to cut frames (N, V) into a piece, in their second half, between two words:
    before the last frame whose best token is the space; with none (silence), in the middle
    of the longest run of blanks; else before the frame most likely to be a space."""
    half = len(lp) // 2
    best = lp[half:].argmax(-1).tolist()
    spaces = [i for i, t in enumerate(best) if t == SPACE_ID]
    if spaces:
        return half + spaces[-1]
    run, longest = 0, (0, 0)
    for i, t in enumerate(best + [SPACE_ID]):
        if t == BLANK_ID:
            run += 1
        else:
            longest = max(longest, (run, i - run // 2)) if run else longest
            run = 0
    if longest[0]:
        return half + longest[1]
    return half + int(lp[half:, SPACE_ID].argmax())


# --------------------------------------------------------------------------- which decoder
NO_LM = "none"  # decoder_for(lm=NO_LM): no language model, not even the one the model file comes with


def bundled_lm(model) -> dict | None:
    """The language model a model file's card names for decoding by default, as {"path",
    "alpha", "beta"} (alpha and beta None where the card gives none): card entry
    `lm: {file, alpha, beta}`, `file` relative to the model file's folder (the bundled default
    model and its LM lie side by side in the package). None when the card names none."""
    entry = (getattr(model, "card", None) or {}).get("lm")
    source = getattr(model, "source", None)
    if not isinstance(entry, dict) or not entry.get("file") or not source:
        return None
    alpha, beta = entry.get("alpha"), entry.get("beta")
    return {"path": os.path.join(os.path.dirname(os.path.abspath(source)), entry["file"]),
            "alpha": None if alpha is None else float(alpha), "beta": None if beta is None else float(beta)}


class Decoders:
    """A factory of fresh decoders for one model's streams, timed at its output stride: greedy
    when search is None, else BeamDecoders sharing the one BeamSearch (its LM loaded once)."""

    def __init__(self, model, search: BeamSearch | None = None):
        from .audio import FRAME_SECONDS
        self.search = search
        self.frame_seconds = FRAME_SECONDS * model.cfg.subsampling
        self.time_offset = time_offset(model)

    def with_hotwords(self, hotwords: Iterable[str]) -> "Decoders":
        """These decoders with 'WORD[:WEIGHT]' hotwords added (a greedy factory becomes a beam
        search without LM, as --hotword alone gives); the language model is not loaded again."""
        import copy
        hot = tuple(parse_hotword(h) for h in hotwords)
        if not hot:
            return self
        new = copy.copy(self)
        new.search = self.search.with_hotwords(hot) if self.search else BeamSearch(None, BeamOptions(hotwords=hot))
        return new

    def __call__(self) -> Decoder:
        if self.search is None:
            return GreedyDecoder(self.frame_seconds, self.time_offset)
        return BeamDecoder(self.search, self.frame_seconds, self.time_offset)


def decoder_for(model, beam_size: int | None = None, lm: str | os.PathLike | None = None,
                alpha: float | None = None, beta: float | None = None, hotwords: Iterable[str] = ()) -> Decoders:
    """The decoders `model` gets for these choices: the one place that decides, for every
    command and the Python API (`transcribe(model, audio, decoder_for(model))`,
    `Recognizer(model, decoder_for(model))`).

    lm: an ARPA or KenLM binary file; None: the language model the model file's card names
    (`bundled_lm`), if any; NO_LM ("none"): none. Greedy where no language model is used and
    neither beam_size nor hotwords is given; else beam search with beam_size beams (default 32).
    alpha, beta: as given; else, with the card's LM, the card's tuned values; else BeamOptions'
    defaults. hotwords: 'WORD[:WEIGHT]' specs (`parse_hotword`).
    Raises ValueError for a bad value (BeamOptions checks them) or alpha/beta without a
    language model, LMError for an unusable language model."""
    hot = tuple(parse_hotword(h) for h in hotwords)
    if lm is None:
        own = bundled_lm(model)
        if own is not None:
            lm = own["path"]
            alpha = own["alpha"] if alpha is None else alpha
            beta = own["beta"] if beta is None else beta
    elif os.fspath(lm) == NO_LM:
        lm = None
    if beam_size is None and lm is None and not hot:
        if alpha is not None or beta is not None:
            raise ValueError("--alpha and --beta weigh a language model: give --lm PATH")
        return Decoders(model)
    weights = {name: value for name, value in (("alpha", alpha), ("beta", beta)) if value is not None}
    options = BeamOptions(beam_size=DEFAULT_BEAM_SIZE if beam_size is None else beam_size, hotwords=hot, **weights)
    return Decoders(model, BeamSearch(lm, options))
