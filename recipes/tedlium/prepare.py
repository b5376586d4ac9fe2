#!/usr/bin/env python3
"""Prepare TED-LIUM release 3 for `asr train` (lhotse's recipe), cutting talks into utterances.

    python recipes/tedlium/prepare.py CORPUS_DIR OUT_DIR [--download] [--jobs N]

CORPUS_DIR is TEDLIUM_release-3 (legacy/{train,dev,test}/{sph,stm}) or the folder holding it;
--download fetches it from openslr.org (lhotse.recipes.download_tedlium; about 50 GB). The
legacy split is used: its dev and test sets are those of TED-LIUM 1 and 2. Stages:
  0  download (only with --download)
  1  lhotse manifests  -> OUT_DIR/lhotse/tedlium_{recordings,supervisions}_<split>.jsonl.gz
  2  cut each STM segment out of its talk into OUT_DIR/audio/<split>/<talk>/<segment>.flac
     (16 kHz FLAC) and write OUT_DIR/{train,dev,test}.tsv
Our manifests name whole files, so segments are cut once here rather than found by offset at
every read: training then streams short files like every other corpus, at the cost of a
second copy of the audio (about 25 GB of FLAC for the whole corpus). Transcripts are
normalised Kaldi-style by lhotse (<unk> and [NOISE] dropped, "they 're" joined) and then by
asr.text.normalize; segments marked ignore_time_segment_in_scoring are left out.
The SPH files are read through libsndfile (they are uncompressed 16-bit PCM), so lhotse's
sph2pipe is not needed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.data import ManifestReport  # noqa: E402
from recipes.common import (Stages, libsndfile_audio, load_lhotse, locate, parser, report_skips,  # noqa: E402
                            run_main, segment_utterances, write_split)

SPLITS = ("train", "dev", "test")


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    stages = Stages.from_args(args)
    lhotse_dir = args.out_dir / "lhotse"

    def download():
        from lhotse.recipes import download_tedlium
        download_tedlium(args.corpus_dir)

    def lhotse_manifests():
        from lhotse.recipes import prepare_tedlium
        root = locate(args.corpus_dir, ["TEDLIUM_release-3"], lambda d: (d / "legacy" / "train" / "stm").is_dir(),
                      "TED-LIUM 3 (legacy/train/stm)")
        lhotse_dir.mkdir(parents=True, exist_ok=True)
        with libsndfile_audio():
            prepare_tedlium(root, lhotse_dir, dataset_parts=SPLITS, num_jobs=args.jobs, normalize_text="kaldi")

    def our_manifests():
        for split in SPLITS:
            report = ManifestReport()
            recordings = load_lhotse(lhotse_dir / f"tedlium_recordings_{split}.jsonl.gz")
            supervisions = load_lhotse(lhotse_dir / f"tedlium_supervisions_{split}.jsonl.gz")
            utts = segment_utterances(recordings, supervisions, args.out_dir / "audio" / split, report,
                                      jobs=args.jobs)
            write_split(utts, args.out_dir / f"{split}.tsv")
            report_skips(report, split)

    stages.run(0, "download", download, enabled=args.download)
    stages.run(1, "lhotse", lhotse_manifests)
    stages.run(2, "segments", our_manifests)


if __name__ == "__main__":
    sys.exit(run_main(main))
