#!/usr/bin/env python3
"""Prepare the Cathy corpus (CMU ARCTIC prompts read by one US-English female speaker, CC0).

    python recipes/cathy/prepare.py CORPUS_DIR OUT_DIR [--dev-fraction 0.1]

CORPUS_DIR holds manifest.tsv (id, path, seconds, speaker, text) and audio/: here
../shared/data/cathy, elsewhere a checkout of github.com/rhasspy/dataset-voice-cathy laid out
the same way. Several prompts were read more than once, so train and dev are split by
prompt (the `arctic_a0001` part of the id), never by file, or dev would be flattered.
Writes OUT_DIR/train.tsv and OUT_DIR/dev.tsv with absolute audio paths.
"""
import argparse
import csv
import os
import sys
import zlib


def prompt_of(utt_id: str) -> str:
    return "_".join(utt_id.split("_")[:2])  # arctic_a0001_1592748574 -> arctic_a0001


def is_dev(prompt: str, fraction: float) -> bool:
    """A stable pseudo-random split by prompt: the same prompt always lands on the same side."""
    return zlib.crc32(prompt.encode()) % 1000 < fraction * 1000


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--dev-fraction", type=float, default=0.1)
    args = ap.parse_args(argv)
    src = os.path.join(args.corpus_dir, "manifest.tsv")
    if not os.path.isfile(src):
        sys.exit(f"prepare.py: error: {src}: no such file (is {args.corpus_dir} the Cathy corpus?)")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    splits = {"train": [], "dev": []}
    for r in rows:
        r["path"] = os.path.abspath(os.path.join(args.corpus_dir, r["path"]))
        splits["dev" if is_dev(prompt_of(r["id"]), args.dev_fraction) else "train"].append(r)
    for name, part in splits.items():
        with open(os.path.join(args.out_dir, f"{name}.tsv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, ["id", "path", "seconds", "speaker", "text"], delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows({k: r[k] for k in w.fieldnames} for r in part)
        prompts = len({prompt_of(r["id"]) for r in part})
        hours = sum(float(r["seconds"]) for r in part) / 3600
        print(f"{name}: {len(part)} utterances, {prompts} prompts, {hours:.2f} h")


if __name__ == "__main__":
    main()
