#!/usr/bin/env python3
"""Write measured dev results into a model file's card (stage 6 of recipes/default/run.sh).

    python recipes/default/card.py MODEL --dev NAME=EVAL.json [--dev ...] [--config YAML]

EVAL.json is the output of `asr evaluate MANIFEST --model MODEL --json`. The card keeps what
training wrote (name, trained_on, trained_steps) and the recipe's card text (--config), and
gets `dev_wer` replaced by the full-dev-set figures: {name: {wer, cer, utterances}}.
`asr models` prints the card.
"""
import argparse
import json
import sys

import yaml

from asr.checkpoint import ModelError, atomic_save, read_payload


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--dev", action="append", default=[], metavar="NAME=EVAL.json")
    ap.add_argument("--config", help="recipe YAML whose `card` entries are copied in")
    args = ap.parse_args(argv)
    try:
        payload = read_payload(args.model)
    except ModelError as err:
        sys.exit(f"card.py: error: {err}")
    card = dict(payload.get("card") or {})
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            card.update((yaml.safe_load(f) or {}).get("card") or {})
    dev = {}
    for item in args.dev:
        name, _, path = item.partition("=")
        if not path:
            sys.exit(f"card.py: error: --dev {item}: expected NAME=EVAL.json")
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        dev[name] = {"wer": round(r["wer"], 4), "cer": round(r["cer"], 4), "utterances": r["utterances"]}
    if dev:
        card["dev_wer"] = dev
    payload["card"] = card
    payload.pop("training", None)  # a shipped model carries no optimiser state
    atomic_save(payload, args.model)
    for key, value in card.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


if __name__ == "__main__":
    main()
