#!/usr/bin/env python3
"""Write measured dev results into a model file's card (stage 6 of recipes/default/run.sh).

    python recipes/default/card.py MODEL --dev NAME=EVAL.json [--dev ...] [--config YAML]
        [--lm FILE --tune TUNE.json --dev-lm NAME=EVAL.json ...] [--set KEY=TEXT ...]

EVAL.json is the output of `asr evaluate MANIFEST --model MODEL --json`. The card keeps what
training wrote (name, trained_on, trained_steps) and the recipe's card text (--config), and
gets `dev_wer` replaced by the full-dev-set figures: {name: {wer, cer, utterances}}. With
--lm, the card names that LM file (it must lie beside MODEL) with the alpha and beta that
`asr tune-lm --json` found (TUNE.json): every command then decodes with it unless --no-lm;
`dev_wer_lm` holds the figures with it. `asr models` prints the card.
"""
import argparse
import json
import os
import sys

import yaml

from asr.beam import DEFAULT_ALPHA, DEFAULT_BETA
from asr.checkpoint import ModelError, atomic_save, read_payload


def read_eval(item: str) -> tuple[str, dict]:
    name, _, path = item.partition("=")
    if not path:
        sys.exit(f"card.py: error: {item}: expected NAME=EVAL.json")
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    return name, {"wer": round(r["wer"], 4), "cer": round(r["cer"], 4), "utterances": r["utterances"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--dev", action="append", default=[], metavar="NAME=EVAL.json")
    ap.add_argument("--config", help="recipe YAML whose `card` entries are copied in")
    ap.add_argument("--lm", help="language model file beside MODEL to decode with by default")
    ap.add_argument("--tune", help="`asr tune-lm --json` output: the LM's alpha and beta")
    ap.add_argument("--dev-lm", action="append", default=[], metavar="NAME=EVAL.json")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=TEXT",
                    help="a card entry of this run that the config cannot know (e.g. training=...)")
    args = ap.parse_args(argv)
    try:
        payload = read_payload(args.model)
    except ModelError as err:
        sys.exit(f"card.py: error: {err}")
    card = dict(payload.get("card") or {})
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            card.update((yaml.safe_load(f) or {}).get("card") or {})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"card.py: error: --set {item}: expected KEY=TEXT")
        card[key] = value
    for key, items in (("dev_wer", args.dev), ("dev_wer_lm", args.dev_lm)):
        if items:
            card[key] = dict(map(read_eval, items))
    if args.lm:
        if os.path.dirname(os.path.abspath(args.lm)) != os.path.dirname(os.path.abspath(args.model)):
            sys.exit(f"card.py: error: --lm {args.lm}: must lie beside {args.model}")
        best = {"alpha": DEFAULT_ALPHA, "beta": DEFAULT_BETA}  # what the decoder uses untuned
        if args.tune:
            with open(args.tune, encoding="utf-8") as f:
                best = json.load(f)["best"]
        card["lm"] = {"file": os.path.basename(args.lm), "alpha": best["alpha"], "beta": best["beta"]}
    payload["card"] = card
    payload.pop("training", None)  # a shipped model carries no optimiser state
    atomic_save(payload, args.model)
    for key, value in card.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


if __name__ == "__main__":
    main()
