#!/usr/bin/env python3
"""Prepare the Allison prompts (Asterisk's telephone-system prompts, one professional US-English
female voice, CC BY-SA 3.0) for `asr train`.

    python recipes/allison/prepare.py CORPUS_DIR OUT_DIR [--dev-fraction 0.1]

CORPUS_DIR holds `manifest.tsv` (`id path seconds speaker text`) and `audio/`
(../shared/data/allison here, made from Debian's asterisk-core-sounds-en(-g722) 1.6.1 and the
text files that ship with them). The texts are written for reading, not as spoken: numerals
(`press 1`), `*` and `#` (read "star" and "pound"), glosses of symbols (`at [@]`: the spoken
word, then the symbol) and a misspelling; they are turned into what she says. One voice, so dev
is a stable tenth of the prompts (by a hash of the id), not of speakers. Stages:
  1  manifests -> OUT_DIR/{train,dev}.tsv
"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.text import normalize  # noqa: E402
from recipes.common import Stages, in_share, parser, prepare_manifest_corpus, run_main  # noqa: E402

GLOSS = re.compile(r"\[[^\]]*\]")  # `dollar [$]`: the symbol after the word she says
SPOKEN = [(re.compile(r"\*"), " star "), (re.compile(r"#"), " pound "),
          (re.compile(r"exclaimation", re.IGNORECASE), "exclamation"),
          (re.compile(r"\bumute\b"), "unmute")]
UNSURE = re.compile(r"[A-Za-z]\.\d")  # H.323: "h dot three two three" or "h three twenty three"? not guessed


def allison_text(text: str) -> str:
    """What she says for a prompt's text, normalised; "" where that is not clear from the text."""
    if UNSURE.search(text):
        return ""
    text = GLOSS.sub(" ", text)
    for pattern, spoken in SPOKEN:
        text = pattern.sub(spoken, text)
    return normalize(text)


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dev-fraction", type=float, default=0.1, help="share of prompts held out for dev")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)

    stages.run(1, "manifests", lambda: prepare_manifest_corpus(
        args, "allison", lambda u: in_share(u.id, args.dev_fraction), allison_text))


if __name__ == "__main__":
    sys.exit(run_main(main))
