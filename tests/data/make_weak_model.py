#!/usr/bin/env python3
"""Rebuild tests/data/tiny_weak.pt: the tiny model's recipe stopped early, so that it makes the
spelling-level mistakes a language model can fix (tests of beam search + LM).

    python tests/data/make_weak_model.py [--steps N]
"""
import argparse
import logging
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

from make_tiny_model import OVERRIDES  # noqa: E402

from asr.checkpoint import read_payload, save_model  # noqa: E402
from asr.data import read_manifest  # noqa: E402
from asr.model import AcousticModel  # noqa: E402
from asr.train import Trainer, dev_wer, load_config  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=130)
    ap.add_argument("--out", default=os.path.join(HERE, "tiny_weak.pt"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    manifest = os.path.join(HERE, "cathy", "manifest.tsv")
    overrides = [o for o in OVERRIDES if not o.startswith("max_steps=")] + [f"max_steps={args.steps}"]
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(None, [f"out_dir={out}", f"train=[{manifest}]"] + overrides)
        trainer = Trainer(cfg, progress=False)
        trainer.fit()
        wer = dev_wer(trainer.model, read_manifest(manifest))
        model = AcousticModel(cfg.model)
        model.load_state_dict(read_payload(os.path.join(out, "model.pt"))["state_dict"])
    card = {"name": "weak tiny test model", "trained_on": "the eight clips of tests/data/cathy (CC0)",
            "purpose": f"tests only: the tiny model's recipe stopped at {args.steps} steps, so it misspells",
            "train_wer": round(wer["wer"], 4)}
    save_model(model, args.out, card, half=True)
    print(f"wrote {args.out}, WER on its own clips {wer['wer']:.3f}, CER {wer.get('cer', float('nan')):.3f}")


if __name__ == "__main__":
    main()
