#!/usr/bin/env python3
"""Prepare Mozilla Common Voice English for `asr train` (lhotse's recipe).

    python recipes/commonvoice/prepare.py CORPUS_DIR OUT_DIR [--download --release cv-corpus-N-DATE]

CORPUS_DIR is an unpacked Common Voice release (cv-corpus-<version>/en/{train,dev,test}.tsv and
en/clips/*.mp3), its en/ folder, or a folder holding the release. Common Voice is handed out
by Mozilla after accepting its terms: download the English archive from
commonvoice.mozilla.org (or Mozilla Data Collective) and unpack it. --download tries lhotse's
downloader (lhotse.recipes.download_commonvoice, release --release), which works only where
Mozilla still serves that URL. lhotse reads the columns of releases 12 and later (accents,
variant). Stages:
  0  download (only with --download)
  1  lhotse manifests  -> OUT_DIR/lhotse/cv-en_{recordings,supervisions}_<split>.jsonl.gz
  2  our manifests     -> OUT_DIR/{train,dev,test}.tsv
The MP3 clips are used where they are: asr reads MP3 through libsndfile (>= 1.1) and
resamples to 16 kHz on the fly.
"""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.data import ManifestReport  # noqa: E402
from recipes.common import (RecipeError, Stages, load_lhotse, locate, parser, report_skips,  # noqa: E402
                            run_main, whole_file_utterances, write_split)

SPLITS = ("train", "dev", "test")
LHOTSE_COLUMNS = {"path", "sentence", "client_id", "gender", "age", "accents", "variant"}


def is_language_dir(d: Path) -> bool:
    return (d / "train.tsv").is_file() and (d / "clips").is_dir()


def language_dir(corpus_dir: Path, language: str) -> Path:
    """The folder with train.tsv and clips/: corpus_dir, corpus_dir/en, or corpus_dir/<release>/en."""
    names = [language] + sorted(f"{d.name}/{language}" for d in corpus_dir.glob("*") if d.is_dir())
    found = locate(corpus_dir, names, is_language_dir, f"Common Voice '{language}' (train.tsv and clips/)",
                   "download it from Mozilla and unpack it, or give --download")
    for split in SPLITS:
        tsv = found / f"{split}.tsv"
        if not tsv.is_file():
            raise RecipeError(f"{tsv}: no such file")
        with open(tsv, newline="", encoding="utf-8") as f:
            header = set(next(csv.reader(f, delimiter="\t"), []))
        if LHOTSE_COLUMNS - header:
            raise RecipeError(f"{tsv}: lacks column(s) {', '.join(sorted(LHOTSE_COLUMNS - header))}: lhotse's "
                              "recipe reads Common Voice releases 12 and later")
    return found


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--language", default="en", help="language code (default: en)")
    p.add_argument("--release", default="cv-corpus-13.0-2023-03-09", help="release to download (with --download)")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)
    lhotse_dir = args.out_dir / "lhotse"
    lang = args.language

    def download():
        from lhotse.recipes.commonvoice import download_commonvoice
        download_commonvoice(args.corpus_dir, languages=[lang], release=args.release)

    def lhotse_manifests():
        from lhotse.recipes import prepare_commonvoice
        found = language_dir(args.corpus_dir, lang)
        prepare_commonvoice(found.parent, lhotse_dir, languages=[found.name], splits=SPLITS, num_jobs=args.jobs)

    def our_manifests():
        for split in SPLITS:
            report = ManifestReport()
            recordings = load_lhotse(lhotse_dir / f"cv-{lang}_recordings_{split}.jsonl.gz")
            supervisions = load_lhotse(lhotse_dir / f"cv-{lang}_supervisions_{split}.jsonl.gz")
            write_split(whole_file_utterances(recordings, supervisions, report), args.out_dir / f"{split}.tsv")
            report_skips(report, split)

    stages.run(0, "download", download, enabled=args.download)
    stages.run(1, "lhotse", lhotse_manifests)
    stages.run(2, "manifests", our_manifests)


if __name__ == "__main__":
    sys.exit(run_main(main))
