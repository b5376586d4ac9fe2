#!/usr/bin/env python3
"""Prepare a Speech Commands sample (Google Speech Commands v0.01, CC BY 4.0: one-second clips of
single words by many voices) as a dev set for `asr evaluate` and `asr train`'s dev figures.

    python recipes/speech_commands/prepare.py CORPUS_DIR OUT_DIR [--dev-fraction 1.0]

CORPUS_DIR holds `manifest.tsv` (`id path seconds speaker text`) and `audio/`
(../shared/data/speech_commands_sample here: 249 clips of 30 words by 34 speakers; elsewhere a
manifest of the public set's clips). The sample is small, so by default all of it is dev: single
words from voices no model here was trained on. --dev-fraction below 1 keeps a share of the
speakers (by a hash of the speaker id) for dev and the rest for training.
Stages:
  1  manifests -> OUT_DIR/{train,dev}.tsv
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from recipes.common import Stages, in_share, parser, prepare_manifest_corpus, run_main  # noqa: E402


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dev-fraction", type=float, default=1.0, help="share of speakers held out for dev (1: all)")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)

    stages.run(1, "manifests", lambda: prepare_manifest_corpus(
        args, "speech commands", lambda u: args.dev_fraction >= 1 or in_share(u.speaker, args.dev_fraction)))


if __name__ == "__main__":
    sys.exit(run_main(main))
