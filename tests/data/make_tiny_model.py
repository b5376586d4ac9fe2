#!/usr/bin/env python3
"""Rebuild tests/data/tiny_uni.pt: a tiny streaming model overfitted on tests/data/cathy."""
import logging
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from asr.checkpoint import read_payload, save_model  # noqa: E402
from asr.data import read_manifest  # noqa: E402
from asr.model import AcousticModel  # noqa: E402
from asr.train import Trainer, dev_wer, load_config  # noqa: E402

OVERRIDES = ["model.hidden_size=128", "model.num_layers=2", "model.conv_channels=128", "model.lookahead=2",
             "model.dropout=0.0", "augment.speeds=[1.0]", "augment.noise_prob=0", "augment.freq_masks=0",
             "augment.time_masks=0", "augment.gain_db=[0,0]", "max_batch_seconds=60", "max_steps=400",
             "epochs=1000", "num_workers=0", "lr=3e-3", "warmup_steps=30", "checkpoint_every=0", "dev_every=0",
             "sorta_grad=false", "seed=1", "half_export=false"]


def main():
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    manifest = os.path.join(HERE, "cathy", "manifest.tsv")
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(None, [f"out_dir={out}", f"train=[{manifest}]"] + OVERRIDES)
        trainer = Trainer(cfg, progress=False)
        trainer.fit()
        wer = dev_wer(trainer.model, read_manifest(manifest))["wer"]
        model = AcousticModel(cfg.model)
        model.load_state_dict(read_payload(os.path.join(out, "model.pt"))["state_dict"])
    card = {"name": "tiny test model", "trained_on": "the eight clips of tests/data/cathy (CC0)",
            "purpose": "tests only: it knows eight sentences and nothing else", "train_wer": round(wer, 4)}
    save_model(model, os.path.join(HERE, "tiny_uni.pt"), card, half=True)
    print(f"wrote tests/data/tiny_uni.pt, WER on its own clips {wer:.3f}")


if __name__ == "__main__":
    main()
