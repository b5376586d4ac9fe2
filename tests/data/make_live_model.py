#!/usr/bin/env python3
"""Rebuild tests/data/tiny_live.pt: a tiny streaming model that knows the eight Cathy clips
*and silence*: it is trained on runs of one or two clips separated by gaps of digital silence
or faint noise, so it outputs blanks in pauses and recognises a clip whatever came before.
Live tests need that (a microphone hears silence before, between and after the speech);
tiny_uni.pt only ever saw isolated clips. It starts from tiny_uni.pt's weights (same
architecture) and fine-tunes for 1200 steps: about twenty minutes on one busy CPU core."""
import csv
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from asr.audio import SAMPLE_RATE, load_audio  # noqa: E402
from asr.checkpoint import load_model, save_model  # noqa: E402
from asr.features import log_mel  # noqa: E402
from asr.text import encode, normalize  # noqa: E402
from asr.transcribe import transcribe_array  # noqa: E402

STEPS = 1200
BATCH = 6
LR = 2e-3


def clips():
    with open(os.path.join(HERE, "cathy", "manifest.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(load_audio(os.path.join(HERE, "cathy", r["path"])), normalize(r["text"])) for r in rows]


def background(rng, seconds: float) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE)
    if rng.random() < 0.5:
        return np.zeros(n, np.float32)
    level = 10 ** (rng.uniform(-80, -50) / 20)
    return (rng.standard_normal(n) * level).astype(np.float32)


def example(data, rng) -> tuple[np.ndarray, str]:
    """One or two clips with random gains, separated by silence or faint noise, with or
    without some before the first and after the last."""
    picks = rng.choice(len(data), size=int(rng.integers(1, 3)), replace=False)
    parts, texts = [background(rng, 0.0 if rng.random() < 0.3 else rng.uniform(0.0, 1.2))], []
    for k, i in enumerate(picks):
        audio, text = data[i]
        parts.append(audio * np.float32(10 ** (rng.uniform(-8, 3) / 20)))
        last = k == len(picks) - 1
        parts.append(background(rng, 0.0 if last and rng.random() < 0.3 else rng.uniform(0.3, 2.0)))
        texts.append(text)
    return np.concatenate(parts), " ".join(texts)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    data = clips()
    model = load_model(os.path.join(HERE, "tiny_uni.pt"))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(s, STEPS) / STEPS)))
    model.train()
    for step in range(STEPS):
        batch = [example(data, rng) for _ in range(BATCH)]
        feats = [log_mel(a) for a, _ in batch]
        lengths = torch.tensor([len(f) for f in feats])
        x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        targets = [torch.tensor(encode(t)) for _, t in batch]
        log_probs, out_lengths = model(x, lengths)
        loss = F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets), out_lengths,
                          torch.tensor([len(t) for t in targets]), blank=0, reduction="mean", zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    model.eval()
    errors = sum(transcribe_array(model, a).text != t for a, t in data)
    mixed = [example(data, rng) for _ in range(20)]
    mixed_errors = sum(transcribe_array(model, a).text != t for a, t in mixed)
    card = {"name": "tiny live test model",
            "trained_on": "the eight clips of tests/data/cathy (CC0), alone and in runs with silent gaps",
            "purpose": "tests only: it knows eight sentences and silence, nothing else",
            "clip_errors": int(errors), "mixed_errors": f"{mixed_errors}/20"}
    save_model(model, os.path.join(HERE, "tiny_live.pt"), card, half=True)
    print(f"wrote tests/data/tiny_live.pt: {errors}/8 clips wrong alone, {mixed_errors}/20 runs wrong")


if __name__ == "__main__":
    main()
