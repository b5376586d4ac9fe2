#!/usr/bin/env python3
"""Prepare the Free Spoken Digit Dataset (spoken digits "zero".."nine", CC BY-SA 4.0).

    python recipes/fsdd/prepare.py CORPUS_DIR OUT_DIR [--dev-speakers george]

CORPUS_DIR is either a folder with manifest.tsv (id, path, seconds, speaker, text) and
audio/ (../shared/data/fsdd here), or a checkout of
github.com/Jakobovski/free-spoken-digit-dataset (recordings/{digit}_{speaker}_{index}.wav).
Train and dev are split by speaker, so the dev figure is for voices the model never heard;
also written is test.tsv, FSDD's published split (index 0-4 of each digit and speaker).
"""
import argparse
import csv
import glob
import os
import sys

import soundfile as sf

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def read_corpus(corpus_dir):
    manifest = os.path.join(corpus_dir, "manifest.tsv")
    if os.path.isfile(manifest):
        with open(manifest, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        for r in rows:
            r["path"] = os.path.abspath(os.path.join(corpus_dir, r["path"]))
        return rows
    rows = []
    for path in sorted(glob.glob(os.path.join(corpus_dir, "recordings", "*.wav"))):
        digit, speaker, index = os.path.basename(path)[:-4].split("_")
        rows.append({"id": f"{digit}_{speaker}_{index}", "path": os.path.abspath(path),
                     "seconds": f"{sf.info(path).duration:.3f}", "speaker": speaker, "text": DIGITS[int(digit)]})
    if not rows:
        sys.exit(f"prepare.py: error: {corpus_dir}: neither manifest.tsv nor recordings/*.wav")
    return rows


def write(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["id", "path", "seconds", "speaker", "text"], delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows({k: r[k] for k in w.fieldnames} for r in rows)
    print(f"{os.path.basename(path)[:-4]}: {len(rows)} utterances, speakers {sorted({r['speaker'] for r in rows})}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--dev-speakers", default="george", help="comma-separated held-out speakers")
    args = ap.parse_args(argv)
    rows = read_corpus(args.corpus_dir)
    dev_speakers = set(args.dev_speakers.split(","))
    os.makedirs(args.out_dir, exist_ok=True)
    write([r for r in rows if r["speaker"] not in dev_speakers], os.path.join(args.out_dir, "train.tsv"))
    write([r for r in rows if r["speaker"] in dev_speakers], os.path.join(args.out_dir, "dev.tsv"))
    write([r for r in rows if int(r["id"].split("_")[-1]) < 5], os.path.join(args.out_dir, "test.tsv"))


if __name__ == "__main__":
    main()
