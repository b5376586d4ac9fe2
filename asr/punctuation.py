"""Punctuation and capitals for transcripts: a small bundled model on ONNX Runtime (no torch).

The recogniser writes lower-case words without marks ("the girl faced him her eyes shining with
sudden fear"); this module gives each word the mark after it (none , . ?) and its case (lower,
Capitalised, UPPER): "The girl faced him, her eyes shining with sudden fear."

The model (asr/models/punctuation.onnx, trained by recipes/punctuation) is a token classifier
over words: a word embedding and a two-letter suffix embedding, two bidirectional GRU layers and
two linear heads. Its vocabulary and card travel in the ONNX file's metadata.

    inputs   words (B, T) int64 vocabulary ids (0 = unknown); suffixes (B, T) int64 suffix ids
    outputs  marks (B, T, 4) logits over MARKS; cases (B, T, 3) logits over CASES

The same word labelling (`label_words`) makes the training data, and scores a punctuated
transcript against a punctuated reference (`score`).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .text import normalize

MARKS = ("", ",", ".", "?")  # the mark after a word
CASES = ("lower", "cap", "upper")  # the, The, THE
DEFAULT_PATH = Path(__file__).parent / "models" / "punctuation.onnx"
WINDOW = 120  # words per model call; longer texts go in overlapping windows
OVERLAP = 20  # words of context on each side of a window's middle
PAUSE_SECONDS = 0.8  # a pause this long after a word (segments_from_words cuts there) gets a mark
# Words written with a final period that does not end a sentence.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "mt", "messrs", "no", "prof", "capt", "col",
                  "gen", "lt", "rev", "hon", "esq"}
_SUFFIX_LETTERS = "abcdefghijklmnopqrstuvwxyz'"


@dataclass
class Token:
    """One normalised word of a punctuated text, with the mark after it and its case."""
    word: str
    mark: str = ""
    case: str = "lower"


def _case_of(piece: str) -> str:
    letters = [c for c in piece if c.isalpha()]
    if not letters or not letters[0].isupper():
        return "lower"
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return "upper"
    return "cap"


def _mark_of(tail: str, core: str) -> str:
    if "?" in tail:
        return "?"
    if "!" in tail or ("." in tail and not (core.lower() in _ABBREVIATIONS and tail.startswith(".") and
                                            len(tail.rstrip("\"'”’)]")) == 1)):
        return "."
    if any(c in tail for c in ",;:—–"):
        return ","
    return ""


def label_words(text: str) -> list[Token]:
    """Punctuated text -> normalised words (asr.text.normalize) with the mark after each and its
    case. '!' counts as '.', ';' ':' and dashes as ','; 'Mr.' ends no sentence.

    >>> [(t.word, t.mark, t.case) for t in label_words("Hello, Mr. Smith. Is it NASA?")]
    [('hello', ',', 'cap'), ('mr', '', 'cap'), ('smith', '.', 'cap'), ('is', '', 'cap'), ('it', '', 'lower'), ('nasa', '?', 'upper')]
    """
    tokens: list[Token] = []
    for raw in re.split(r"(\s+|(?<=\w)(?:—|--|–)(?=\w))", text):
        if not raw or raw.isspace():
            continue
        if raw in ("—", "--", "–"):  # a dash between two words
            if tokens and not tokens[-1].mark:
                tokens[-1].mark = ","
            continue
        m = re.match(r"^(.*?[\w'’]?)([^\w]*)$", raw)
        core, tail = (m.group(1), m.group(2)) if m else (raw, "")
        words = normalize(core).split()
        if not words:
            if tokens and not tokens[-1].mark:  # a lone mark: "word ?"
                tokens[-1].mark = _mark_of(tail or raw, "")
            continue
        pieces = [p for p in re.split(r"[^\w'’]+", core) if p]
        for i, word in enumerate(words):
            piece = pieces[i] if len(pieces) == len(words) else (pieces[0] if pieces else "")
            tokens.append(Token(word, "", _case_of(piece)))
        tokens[-1].mark = _mark_of(tail, core.strip("'\"“”‘’([")) if tail else ""
    return tokens


def render(tokens: Sequence[Token]) -> str:
    """Tokens -> text: 'The girl faced him, her eyes ...'."""
    return " ".join(_render_word(t.word, t.case) + t.mark for t in tokens)


def _render_word(word: str, case: str) -> str:
    if case == "upper":
        return word.upper()
    if case == "cap":
        return word[:1].upper() + word[1:]
    return word


def suffix_id(word: str) -> int:
    """The last two letters of a word as an id in [0, 28 * 28): 0 pads."""
    ids = [(_SUFFIX_LETTERS.find(c) + 1) for c in word[-2:].rjust(2, " ")]
    return ids[0] * 28 + ids[1]


N_SUFFIXES = 28 * 28


class PunctuationError(Exception):
    """The punctuation model file is missing or unusable."""


class Punctuator:
    """The punctuation-and-casing model on ONNX Runtime: words in, Tokens out.

    path: the .onnx file (default: the bundled one); threads: CPU threads for the session.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, threads: int = 1):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own kinds
            raise PunctuationError(f"{path}: not a usable punctuation model ({str(err).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.vocab = {w: i for i, w in enumerate(meta["vocab"].split("\n"))}  # id 0 is '<unk>'
        self.card = json.loads(meta.get("card", "{}"))
        self.path = Path(path)

    def __call__(self, words: Sequence[str], pauses: Sequence[int] = ()) -> list[Token]:
        """Marks and cases for these lower-case words (one text: a segment or a whole transcript).
        The text's first word and each word after a '.' or '?' get a capital; the last word gets
        '.' where the model gives it no end mark; a word followed by a pause (its index in
        `pauses`: the speaker stopped) gets the model's likeliest mark where it gave none."""
        words = list(words)
        if not words:
            return []
        marks = np.zeros((len(words), len(MARKS)), np.float32)
        cases = np.zeros((len(words), len(CASES)), np.float32)
        for lo, hi, keep_lo, keep_hi in _windows(len(words)):
            m, c = self._run(words[lo:hi])
            marks[keep_lo:keep_hi], cases[keep_lo:keep_hi] = m[keep_lo - lo:keep_hi - lo], c[keep_lo - lo:keep_hi - lo]
        tokens = [Token(w, MARKS[int(m)], CASES[int(c)]) for w, m, c in zip(words, marks.argmax(1), cases.argmax(1))]
        for i in pauses:
            if 0 <= i < len(tokens) and not tokens[i].mark:
                tokens[i].mark = MARKS[1 + int(marks[i, 1:].argmax())]
        if tokens[-1].mark not in (".", "?"):
            tokens[-1].mark = "?" if marks[-1, 3] > marks[-1, 2] else "."
        for i, t in enumerate(tokens):
            if (i == 0 or tokens[i - 1].mark in (".", "?")) and t.case == "lower":
                t.case = "cap"
            if t.word == "i" or t.word.startswith("i'"):
                t.case = "cap"
        return tokens

    def _run(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([[self.vocab.get(w, 0) for w in words]], np.int64)
        suffixes = np.array([[suffix_id(w) for w in words]], np.int64)
        marks, cases = self.session.run(["marks", "cases"], {"words": ids, "suffixes": suffixes})
        return marks[0], cases[0]

    def text(self, text: str) -> str:
        """'the girl faced him her eyes' -> 'The girl faced him, her eyes.'"""
        return render(self(text.split()))


def _windows(n: int) -> list[tuple[int, int, int, int]]:
    """(lo, hi, keep_lo, keep_hi): model windows over n words, each kept where it has context."""
    if n <= WINDOW:
        return [(0, n, 0, n)]
    out, keep_lo = [], 0
    while keep_lo < n:
        lo = max(0, keep_lo - OVERLAP)
        hi = min(n, lo + WINDOW)
        keep_hi = n if hi == n else hi - OVERLAP
        out.append((lo, hi, keep_lo, keep_hi))
        keep_lo = keep_hi
    return out


def punctuate_words(words: Sequence, punctuator: Punctuator) -> list:
    """decoding.Words -> the same words written with their case and the mark after them
    ("girl" -> "Girl,"), times and confidences kept; one text, so a sentence may span segments."""
    from dataclasses import replace
    pauses = [i for i in range(len(words) - 1) if words[i + 1].start - words[i].end >= PAUSE_SECONDS]
    tokens = punctuator([w.word for w in words], pauses)
    return [replace(w, word=_render_word(t.word, t.case) + t.mark) for w, t in zip(words, tokens)]


def punctuate_segment(segment, punctuator: Punctuator):
    """A decoding.Segment (a live stream's final utterance) punctuated on its own."""
    from .decoding import Segment
    words = punctuate_words(segment.words, punctuator)
    return Segment(segment.start, segment.end, " ".join(w.word for w in words), words) if words else segment


@lru_cache(maxsize=2)
def bundled(threads: int = 1) -> Punctuator | None:
    """The bundled model (loaded once), or None where this installation has none."""
    return Punctuator(DEFAULT_PATH, threads) if DEFAULT_PATH.is_file() else None


# --------------------------------------------------------------------------- scoring
@dataclass
class Scores:
    """Counts for per-mark precision/recall/F1 and casing accuracy over aligned words."""
    tp: dict = field(default_factory=lambda: {m: 0 for m in MARKS[1:]})
    fp: dict = field(default_factory=lambda: {m: 0 for m in MARKS[1:]})
    fn: dict = field(default_factory=lambda: {m: 0 for m in MARKS[1:]})
    case_right: int = 0
    words: int = 0

    def add(self, ref: Sequence[Token], hyp: Sequence[Token]) -> None:
        """Count the words the two texts share (aligned by the word strings); a word only one has
        is not counted: recognition errors are the WER's business."""
        for r, h in _aligned(ref, hyp):
            self.words += 1
            self.case_right += (r.case == h.case) or (len(r.word) == 1 and {r.case, h.case} == {"cap", "upper"})
            if r.mark and r.mark == h.mark:
                self.tp[r.mark] += 1
            else:
                if r.mark:
                    self.fn[r.mark] += 1
                if h.mark:
                    self.fp[h.mark] += 1

    def report(self) -> dict:
        out = {}
        for m, name in zip(MARKS[1:], ("comma", "period", "question")):
            tp, fp, fn = self.tp[m], self.fp[m], self.fn[m]
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            out[name] = {"precision": round(p, 3), "recall": round(r, 3),
                         "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0, "support": tp + fn}
        tp, fp, fn = (sum(d.values()) for d in (self.tp, self.fp, self.fn))
        p, r = (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)
        out["all_marks_f1"] = round(2 * p * r / (p + r), 3) if p + r else 0.0
        out["casing_accuracy"] = round(self.case_right / self.words, 4) if self.words else 0.0
        out["words"] = self.words
        return out


def _aligned(ref: Sequence[Token], hyp: Sequence[Token]):
    """Pairs of (ref, hyp) tokens with the same word on a minimal edit alignment."""
    import difflib
    matcher = difflib.SequenceMatcher(None, [t.word for t in ref], [t.word for t in hyp], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            yield ref[block.a + k], hyp[block.b + k]


def is_punctuated(text: str) -> bool:
    """Whether a reference carries punctuation or capitals to score against."""
    return any(c in text for c in ",.?!") or any(c.isupper() for c in text)
