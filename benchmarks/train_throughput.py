#!/usr/bin/env python3
"""Training throughput in audio-seconds per second, for a model configuration on real clips.

    python benchmarks/train_throughput.py [--model default|ds2|CONFIG.yaml] [--manifest TSV]
        [--device cpu|cuda] [--seconds 60] [--batch-seconds N] [--threads N] [--no-bf16] [--cpu-bf16]
        [--data-seconds 20]

Times the training step of `asr train` itself (Trainer.train_step: forward, CTC loss, backward,
gradient clipping, AdamW) on batches of real speech whose features were computed beforehand,
so the figure is the model's cost alone; then, separately, the data pipeline's (read, augment,
log-mel) on one CPU worker, which says how many loader workers keep the model fed.

--model default is the bundled default's configuration (ModelConfig()); ds2 is a Deep Speech 2
sized model (5 x bidirectional GRU 1024, conv 512); a YAML file uses its `model:` section. On a
GPU the step runs under bf16 autocast (as `asr train` does; --no-bf16 for fp32) and nn.GRU runs
on cuDNN; on a CPU in fp32 unless --cpu-bf16 (config `bf16_cpu: true`). The clips default to tests/data/cathy (eight CC0 clips), repeated to fill the batches.
"""
import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from asr.data import AugmentConfig, DurationBatchSampler, SpeechDataset, collate, read_manifest  # noqa: E402
from asr.model import ModelConfig  # noqa: E402
from asr.train import Trainer, load_config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIPS = os.path.join(HERE, "..", "tests", "data", "cathy", "manifest.tsv")
MODELS = {"default": {}, "ds2": {"conv_channels": 512, "hidden_size": 1024, "num_layers": 5,
                                 "bidirectional": True, "lookahead": 0}}


def model_overrides(name: str) -> list[str]:
    if name in MODELS:
        return [f"model.{k}={v}" for k, v in MODELS[name].items()]
    cfg = load_config(name)
    defaults = ModelConfig()
    return [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in vars(cfg.model).items()
            if getattr(defaults, k) != v]


def describe(cfg: ModelConfig) -> str:
    kind = "bidirectional" if cfg.bidirectional else f"unidirectional, lookahead {cfg.lookahead}"
    return f"{cfg.num_layers} x GRU {cfg.hidden_size}, {kind}, conv {cfg.conv_channels}"


def step_throughput(trainer: Trainer, batches: list, seconds: float) -> dict:
    """Train on the batches round and round for about `seconds` (after two warm-up steps)."""
    cuda = trainer.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    it = itertools.cycle(batches)
    for _ in range(2):
        trainer.train_step(next(it))
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    audio = steps = skipped = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        stats = trainer.train_step(next(it))
        steps += 1
        if stats is None:
            skipped += 1
        else:
            audio += stats["seconds"]
    sync()
    elapsed = time.perf_counter() - start
    out = {"audio_per_s": audio / elapsed, "steps_per_s": steps / elapsed, "steps": steps, "elapsed": elapsed,
           "skipped": skipped}
    if cuda:
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def data_throughput(utts, seconds: float) -> dict:
    """Items through SpeechDataset (read, default augmentation, log-mel) in this one process."""
    dataset = SpeechDataset(utts, AugmentConfig(), seed=0)
    audio = n = 0
    start = time.perf_counter()
    for i in itertools.cycle(range(len(utts))):
        feats = dataset[(i, n // len(utts))][0]
        audio += len(feats) / 100.0
        n += 1
        if time.perf_counter() - start >= seconds:
            break
    return {"audio_per_s": audio / (time.perf_counter() - start), "items": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="default, ds2, or a recipe YAML (its model: section)")
    ap.add_argument("--manifest", default=CLIPS, help="clips to train on (default: tests/data/cathy)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to time the training step")
    ap.add_argument("--batch-seconds", type=float, default=None,
                    help="padded audio per batch (default: 60 on CPU, 480 on GPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-bf16", action="store_true", help="fp32 on GPU")
    ap.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast on CPU too (config bf16_cpu)")
    ap.add_argument("--data-seconds", type=float, default=20.0, help="how long to time the data pipeline (0: skip)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batch_seconds = args.batch_seconds or (480.0 if device.type == "cuda" else 60.0)
    utts = read_manifest(args.manifest)
    if not utts:
        sys.exit(f"{args.manifest}: no usable utterances")
    clip_seconds = sum(u.seconds for u in utts)
    reps = max(1, int(4 * batch_seconds / clip_seconds) + 1)  # at least ~4 distinct batches
    out = tempfile.mkdtemp(prefix="train_throughput.")  # the trainer's out_dir (config, TensorBoard)
    cfg = load_config(None, [f"train={args.manifest}", f"out_dir={out}", f"max_batch_seconds={batch_seconds}",
                             "num_workers=0", "stats_utterances=50", f"bf16={not args.no_bf16}", f"bf16_cpu={args.cpu_bf16}",
                             "max_utterance_seconds=60"] + model_overrides(args.model))
    trainer = Trainer(cfg, device=str(device), progress=False)
    trainer.model.train()
    plain = SpeechDataset(utts * reps, augment=None)
    sampler = DurationBatchSampler([u.seconds for u in plain.utts], batch_seconds, sorta_grad=False)
    batches = [collate([plain[i] for i in b])[0] for b in sampler.batches(1)]
    bf16 = not args.no_bf16 if device.type == "cuda" else args.cpu_bf16
    threads = torch.get_num_threads()
    where = f"{device} ({threads} thread{'s' if threads > 1 else ''})" if device.type == "cpu" else \
        f"{device} ({torch.cuda.get_device_name(device)})"
    print(f"device: {where}; model: {args.model} ({describe(cfg.model)}), "
          f"{trainer.model.num_parameters() / 1e6:.2f} M parameters")
    print(f"clips: {args.manifest}: {len(utts)} utterances, {clip_seconds:.1f} s; {len(batches)} batches of "
          f"<= {batch_seconds:.0f} s padded audio, {len(plain) / len(batches):.1f} utterances each")
    r = step_throughput(trainer, batches, args.seconds)
    mem = f", peak GPU memory {r['peak_gb']:.1f} GB" if "peak_gb" in r else ""
    print(f"training step (forward, CTC, backward, AdamW; {'bf16 autocast' if bf16 else 'fp32'}): "
          f"{r['audio_per_s']:.1f} audio-seconds per second, {r['steps_per_s']:.2f} steps/s "
          f"({r['steps']} steps in {r['elapsed']:.0f} s{mem})")
    if r["skipped"]:
        print(f"  ({r['skipped']} steps skipped: labels longer than the output frames or a non-finite loss)")
    if args.data_seconds:
        d = data_throughput(utts, args.data_seconds)
        print(f"data pipeline (read, augment, log-mel) in one worker: {d['audio_per_s']:.1f} audio-seconds per "
              f"second ({d['items']} items); workers to keep up: {r['audio_per_s'] / d['audio_per_s']:.1f}")
    if trainer.writer:
        trainer.writer.close()
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
