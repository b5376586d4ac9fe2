#!/usr/bin/env python3
"""Prepare LibriSpeech (960 h, 100 h) or mini-LibriSpeech for `asr train` (lhotse's recipe).

    python recipes/librispeech/prepare.py CORPUS_DIR OUT_DIR [--subset 960|100|mini] [--download]

CORPUS_DIR holds LibriSpeech/<part>/<speaker>/<chapter>/*.flac with *.trans.txt (or is that
LibriSpeech folder). With --download, the parts are fetched from openslr.org into CORPUS_DIR
first (lhotse.recipes.download_librispeech). Stages:
  0  download (only with --download)
  1  lhotse manifests  -> OUT_DIR/lhotse/librispeech_{recordings,supervisions}_<part>.jsonl.gz
  2  our manifests     -> OUT_DIR/<part>.tsv (id, path, seconds, speaker, text)
The FLAC files are used where they are.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.data import ManifestReport  # noqa: E402
from recipes.common import (RecipeError, Stages, load_lhotse, locate, parser, report_skips, run_main,  # noqa: E402
                            whole_file_utterances, write_split)

TRAIN = {"960": ["train-clean-100", "train-clean-360", "train-other-500"], "100": ["train-clean-100"],
         "mini": ["train-clean-5"]}
EVAL = {"960": ["dev-clean", "dev-other", "test-clean", "test-other"],
        "100": ["dev-clean", "dev-other", "test-clean", "test-other"], "mini": ["dev-clean-2"]}


def parts_of(subset: str) -> list[str]:
    return TRAIN[subset] + EVAL[subset]


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--subset", choices=sorted(TRAIN), default="960", help="which training set (default: 960)")
    args = p.parse_args(argv)
    parts = parts_of(args.subset)
    stages = Stages.from_args(args)
    lhotse_dir = args.out_dir / "lhotse"

    def download():
        from lhotse.recipes import download_librispeech
        download_librispeech(args.corpus_dir, dataset_parts=parts)

    def corpus() -> Path:
        known = {part for subset in TRAIN for part in parts_of(subset)}
        root = locate(args.corpus_dir, ["LibriSpeech"], lambda d: any((d / part).is_dir() for part in known),
                      "LibriSpeech")
        missing = [part for part in parts if not (root / part).is_dir()]
        if missing:
            raise RecipeError(f"{root}: missing part(s) {', '.join(missing)} for --subset {args.subset} "
                              "(give --download to fetch them)")
        return root

    def lhotse_manifests():
        from lhotse.recipes import prepare_librispeech
        prepare_librispeech(corpus(), dataset_parts=parts, output_dir=lhotse_dir, num_jobs=args.jobs)

    def our_manifests():
        for part in parts:
            report = ManifestReport()
            recordings = load_lhotse(lhotse_dir / f"librispeech_recordings_{part}.jsonl.gz")
            supervisions = load_lhotse(lhotse_dir / f"librispeech_supervisions_{part}.jsonl.gz")
            write_split(whole_file_utterances(recordings, supervisions, report), args.out_dir / f"{part}.tsv")
            report_skips(report, part)

    stages.run(0, f"download-{args.subset}", download, enabled=args.download)
    stages.run(1, f"lhotse-{args.subset}", lhotse_manifests)
    stages.run(2, f"manifests-{args.subset}", our_manifests)


if __name__ == "__main__":
    sys.exit(run_main(main))
