#!/usr/bin/env python3
"""Score the punctuation-and-casing model: per-mark precision/recall/F1 and casing accuracy.

    python recipes/punctuation/evaluate.py DATA_DIR [--model ONNX] [--refs NAME=MANIFEST ...] [--json]

DATA_DIR/test.txt: prepare.py's held-out paragraphs, scored per source (each paragraph given to
the model whole, from its lower-case words). --refs: speech manifests with punctuated texts
(Cathy's and LJ Speech's dev prompts), each utterance given alone, as a final segment is. The
scores from recognised words instead of reference words come from `asr evaluate MANIFEST`, which
reports the same figures for the words a transcript and its reference share. Also prints the
model's speed: milliseconds per utterance on one thread (median of the --refs utterances).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from asr.punctuation import DEFAULT_PATH, Punctuator, Scores, label_words  # noqa: E402


def score(punctuator: Punctuator, texts: list[str], times: list[float] | None = None) -> dict:
    scores = Scores()
    for text in texts:
        ref = label_words(text)
        if not ref:
            continue
        t0 = time.perf_counter()
        hyp = punctuator([t.word for t in ref])
        if times is not None:
            times.append(time.perf_counter() - t0)
        scores.add(ref, hyp)
    return {"texts": len(texts), **scores.report()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--model", default=str(DEFAULT_PATH))
    ap.add_argument("--refs", nargs="*", default=[], metavar="NAME=MANIFEST")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    punctuator = Punctuator(args.model, threads=1)
    by_source: dict[str, list[str]] = {}
    with open(os.path.join(args.data_dir, "test.txt"), encoding="utf-8") as f:
        for line in f:
            source, text = line.rstrip("\n").split("\t", 1)
            by_source.setdefault(source, []).append(text)
    out = {f"held-out {k}": score(punctuator, v) for k, v in by_source.items()}
    times: list[float] = []
    for spec in args.refs:
        name, path = spec.split("=", 1)
        with open(path, newline="", encoding="utf-8") as f:
            texts = list(dict.fromkeys(r["text"] for r in csv.DictReader(f, delimiter="\t")))  # each prompt once
        out[f"{name} references"] = score(punctuator, texts, times)
    if times:
        out["ms_per_utterance_median"] = round(1000 * statistics.median(times), 2)
    if args.json:
        print(json.dumps(out))
        return
    print("| text | words | comma P/R/F1 (n) | period P/R/F1 (n) | question P/R/F1 (n) | casing acc |")
    print("|---|---:|---|---|---|---:|")
    for name, r in out.items():
        if not isinstance(r, dict):
            continue
        cells = [f"{r[m]['precision']:.2f}/{r[m]['recall']:.2f}/**{r[m]['f1']:.2f}** ({r[m]['support']})"
                 if r[m]["support"] else f"none in the text (P {r[m]['precision']:.2f})" for m in ("comma", "period", "question")]
        print(f"| {name} ({r['texts']}) | {r['words']} | " + " | ".join(cells) + f" | {100 * r['casing_accuracy']:.1f} % |")
    if times:
        print(f"speed: {out['ms_per_utterance_median']} ms per utterance (median, one thread)")


if __name__ == "__main__":
    main()
