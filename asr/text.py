"""Text normalisation and the character vocabulary.

One normaliser serves training labels, evaluation references and language-model text, so
that what the model is scored on is exactly what it was taught to write.
"""
from __future__ import annotations

import re
import unicodedata

from num2words import num2words

BLANK = "<b>"  # CTC blank, index 0
VOCAB: tuple[str, ...] = (BLANK, " ", "'") + tuple("abcdefghijklmnopqrstuvwxyz")
BLANK_ID = 0
SPACE_ID = 1

# Words that keep a leading apostrophe ('em, 'tis); elsewhere quotes are stripped.
_LEADING_APOSTROPHE = {"em", "tis", "twas", "til", "cause", "round", "n", "bout", "neath"}

_REPLACEMENTS = [
    (re.compile(r"[\u2018\u2019\u02bc\u2032`´]"), "'"),
    (re.compile(r"&"), " and "),
    (re.compile(r"%"), " percent "),
    (re.compile(r"\+"), " plus "),
    (re.compile(r"@"), " at "),
]
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_MONEY = re.compile(r"\$(\d+)(?:\.(\d\d))?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def _spell_number(match: re.Match) -> str:
    token = match.group(0)
    grouped = "," in token and re.fullmatch(r"\d{1,3}(,\d{3})+", token) is not None
    if grouped:
        token = token.replace(",", "")
    try:
        if re.fullmatch(r"\d+", token):
            value = int(token)
            if not grouped and len(token) == 4 and 1100 <= value <= 2099 and value % 1000 >= 10:
                return " " + num2words(value, to="year") + " "
            if len(token) > 1 and token.startswith("0"):  # digit strings: "007"
                return " " + " ".join(num2words(int(d)) for d in token) + " "
            return " " + num2words(value) + " "
        if re.fullmatch(r"\d+\.\d+", token):
            return " " + num2words(float(token)) + " "
    except (OverflowError, ValueError, NotImplementedError):
        pass
    return " " + " ".join(num2words(int(d)) for d in token if d.isdigit()) + " "


def _spell_money(match: re.Match) -> str:
    dollars, cents = int(match.group(1)), match.group(2)
    words = f"{num2words(dollars)} dollar{'s' if dollars != 1 else ''}"
    if cents and int(cents):
        words += f" and {num2words(int(cents))} cent{'s' if int(cents) != 1 else ''}"
    return f" {words} "


def _clean_apostrophes(word: str) -> str:
    core = word.strip("'")
    if not core:
        return ""
    if word.startswith("'") and core in _LEADING_APOSTROPHE:
        return "'" + core
    return core


def normalize(text: str) -> str:
    """Lower-case words of a-z and apostrophes separated by single spaces.

    >>> normalize("Author of the danger trail, Philip Steels, etc.")
    'author of the danger trail philip steels etc'
    >>> normalize("God bless 'em, in 1908 -- I'm 42!")
    "god bless 'em in nineteen oh eight i'm forty two"
    """
    text = unicodedata.normalize("NFKC", text)
    for pattern, repl in _REPLACEMENTS:
        text = pattern.sub(repl, text)
    text = _MONEY.sub(_spell_money, text)
    text = _ORDINAL.sub(lambda m: " " + num2words(int(m.group(1)), to="ordinal") + " ", text)
    text = _NUMBER.sub(_spell_number, text)
    # accents off: café -> cafe
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.lower()
    text = _NOT_ALLOWED.sub(" ", text)
    words = (_clean_apostrophes(w) for w in text.split())
    return _SPACES.sub(" ", " ".join(w for w in words if w)).strip()


_CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    """Normalised text -> token ids (no blanks). Characters outside the vocabulary are an error."""
    try:
        return [_CHAR_TO_ID[c] for c in text]
    except KeyError as err:
        raise ValueError(f"character {err.args[0]!r} is not in the vocabulary; normalise first") from None


def decode(ids) -> str:
    """Token ids (no blanks, already collapsed) -> text."""
    return "".join(VOCAB[i] for i in ids if i != BLANK_ID)
