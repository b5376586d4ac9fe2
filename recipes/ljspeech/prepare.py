#!/usr/bin/env python3
"""Prepare LJ Speech 1.1 for `asr train` (lhotse's recipe): one female speaker, 24 h.

    python recipes/ljspeech/prepare.py CORPUS_DIR OUT_DIR [--download]

CORPUS_DIR is LJSpeech-1.1 (metadata.csv and wavs/) or the folder holding it; --download
fetches it from keithito.com (lhotse.recipes.download_ljspeech; 2.6 GB). LJ Speech has no
official split: a stable 2% of the clips (by a hash of the clip id) is dev and another 2% is
test. The transcript used is metadata.csv's third column, where LJ Speech itself spelled out
numbers and abbreviations ("Mr." -> "Mister"), then asr.text.normalize. Stages:
  0  download (only with --download)
  1  lhotse manifests  -> OUT_DIR/lhotse/ljspeech_{recordings,supervisions}_all.jsonl.gz
  2  our manifests     -> OUT_DIR/{train,dev,test}.tsv
The 22.05 kHz WAV files are used where they are (asr resamples on the fly).

A CORPUS_DIR with `manifest.tsv` (`id path seconds speaker text`) and `audio/` instead, as
../shared/data/ljspeech_samples holds 32 of LJ Speech's clips, is read as it is (stage 2 only):
its dev part is the prompts recipes/ljprompts holds out for dev (other readers of LJ Speech's
prompts), so that no dev prompt is trained on; the rest is train.
"""
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.data import ManifestReport  # noqa: E402
from recipes.common import (Stages, load_lhotse, locate, parser, prepare_manifest_corpus, report_skips,  # noqa: E402
                            run_main, whole_file_utterances, write_split)
from recipes.ljprompts.prepare import is_dev_prompt  # noqa: E402


def split_of(utt_id: str) -> str:
    bucket = zlib.crc32(utt_id.encode()) % 100
    return "dev" if bucket < 2 else "test" if bucket < 4 else "train"


def spelled_out(sup) -> str:
    return (sup.custom or {}).get("normalized_text") or sup.text


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    stages = Stages.from_args(args)
    lhotse_dir = args.out_dir / "lhotse"

    def download():
        from lhotse.recipes import download_ljspeech
        download_ljspeech(args.corpus_dir)

    def lhotse_manifests():
        from lhotse.recipes import prepare_ljspeech
        root = locate(args.corpus_dir, ["LJSpeech-1.1"], lambda d: (d / "metadata.csv").is_file(), "LJ Speech")
        prepare_ljspeech(root, lhotse_dir)

    def our_manifests():
        report = ManifestReport()
        recordings = load_lhotse(lhotse_dir / "ljspeech_recordings_all.jsonl.gz")
        supervisions = load_lhotse(lhotse_dir / "ljspeech_supervisions_all.jsonl.gz")
        utts = whole_file_utterances(recordings, supervisions, report, text=spelled_out)
        for u in utts:
            u.speaker = "lj"
        for split in ("train", "dev", "test"):
            write_split([u for u in utts if split_of(u.id) == split], args.out_dir / f"{split}.tsv")
        report_skips(report, "ljspeech")

    if (args.corpus_dir / "manifest.tsv").is_file():
        stages.run(2, "manifests", lambda: prepare_manifest_corpus(args, "ljspeech", lambda u: is_dev_prompt(u.id)))
        return
    stages.run(0, "download", download, enabled=args.download)
    stages.run(1, "lhotse", lhotse_manifests)
    stages.run(2, "manifests", our_manifests)


if __name__ == "__main__":
    sys.exit(run_main(main))
