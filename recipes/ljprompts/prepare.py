#!/usr/bin/env python3
"""Prepare LJ Speech prompts read by other people (one male speaker on a home microphone,
github.com/PhilippMatthes/dc_tts, Apache-2.0) for `asr train`.

    python recipes/ljprompts/prepare.py CORPUS_DIR OUT_DIR [--dev-fraction 0.1]

CORPUS_DIR holds `manifest.tsv` (`id path seconds speaker text`, ids `<reader>_LJ001-0001`) and
`audio/` (../shared/data/ljprompts_matthes here). The texts are LJ Speech's normalised column
(numbers written out). One voice, so dev is a stable share of the *prompts*, chosen by the LJ
clip id with the rule recipes/ljspeech uses for its manifest layout (`is_dev_prompt`), so that
a prompt is dev for every reader of it. Stages:
  1  manifests -> OUT_DIR/{train,dev}.tsv
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from recipes.common import Stages, in_share, parser, prepare_manifest_corpus, run_main  # noqa: E402


def clip_of(utt_id: str) -> str:
    """LJ001-0001 from pmatthes_LJ001-0001 or lj_LJ001-0001."""
    return utt_id.rsplit("_", 1)[-1]


def is_dev_prompt(utt_id: str, fraction: float = 0.1) -> bool:
    return in_share(clip_of(utt_id), fraction)


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dev-fraction", type=float, default=0.1, help="share of prompts held out for dev")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)

    stages.run(1, "manifests", lambda: prepare_manifest_corpus(
        args, "ljprompts", lambda u: is_dev_prompt(u.id, args.dev_fraction)))


if __name__ == "__main__":
    sys.exit(run_main(main))
