#!/usr/bin/env python3
"""Prepare wake-word recordings (one word or short phrase by many voices, mostly silence around
it) for `asr train`: Picovoice's wake-word benchmark (Apache-2.0) and Mycroft's Precise
community data (public-domain dedications).

    python recipes/keywords/prepare.py CORPUS_DIR OUT_DIR [--dev-fraction 0.05]

CORPUS_DIR holds `manifest.tsv` (`id path seconds speaker text`) and `audio/`
(../shared/data/keywords_picovoice or ../shared/data/keywords_precise here). Neither names its
speakers (Picovoice's have no ids; Precise's `speaker` is the contributor), so dev is a stable
share of the clips by a hash of the id: its voices may also be in train, which flatters it.
Stages:
  1  manifests -> OUT_DIR/{train,dev}.tsv
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from recipes.common import Stages, in_share, parser, prepare_manifest_corpus, run_main  # noqa: E402


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dev-fraction", type=float, default=0.05, help="share of clips held out for dev")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)

    stages.run(1, "manifests", lambda: prepare_manifest_corpus(
        args, "keywords", lambda u: in_share(u.id, args.dev_fraction)))


if __name__ == "__main__":
    sys.exit(run_main(main))
