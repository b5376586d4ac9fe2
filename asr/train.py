"""Training: CTC loss, AdamW with warm-up and cosine decay, gradient clipping, bf16 autocast on
GPU, duration-bucketed batches with SortaGrad, atomic checkpoints with exact resume,
TensorBoard logs, dev WER at intervals, and DistributedDataParallel under torchrun.

    asr train --config recipes/default/uni.yaml [key=value ...] [--resume]
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from .checkpoint import atomic_save, model_payload, read_payload, save_model
from .data import (AugmentConfig, DurationBatchSampler, ManifestReport, SpeechDataset, Utterance, collate,
                   ctc_min_frames, read_manifest)
from .evaluate import greedy_batch, score
from .features import compute_stats, log_mel
from .audio import load_audio
from .model import AcousticModel, ModelConfig
from .text import BLANK_ID

log = logging.getLogger("asr.train")


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "exp/run"
    data_dir: str = "."  # relative manifest paths are taken from here
    train: tuple = ()  # [{manifest: path, repeat: n}] or [path]
    dev: dict = field(default_factory=dict)  # name -> manifest
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 30
    max_steps: int = 0  # stop after this many steps (0: run all epochs)
    max_batch_seconds: float = 240.0  # padded audio per batch
    max_utterance_seconds: float = 30.0
    lr: float = 1e-3
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    grad_clip: float = 5.0
    seed: int = 0
    sorta_grad: bool = True
    num_workers: int = 1
    threads: int = 0  # torch CPU threads (0: torch's default)
    checkpoint_every: int = 500  # steps
    dev_every: int = 1000  # steps (also at every epoch end)
    dev_max_utterances: int = 300  # per dev set, for speed
    stats_utterances: int = 400  # utterances sampled for the feature statistics
    bf16: bool = True  # autocast on GPU
    half_export: bool = True  # export the final model with float16 weights
    card: dict = field(default_factory=dict)  # model-card text copied into the exported model
    init_from: str = ""  # start from this model's weights (fine-tuning)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = _typed(cls, d, "")
        if "model" in d:
            d["model"] = ModelConfig(**_typed(ModelConfig, d["model"] or {}, "model."))
        if "augment" in d:
            d["augment"] = AugmentConfig(**_typed(AugmentConfig, d["augment"] or {}, "augment."))
        if "train" in d:
            d["train"] = tuple(d["train"] or ())
        return cls(**d)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _typed(cls, d: dict, prefix: str) -> dict:
    """Check keys against a config dataclass and convert values to its fields' types (YAML
    reads `1e-3` as a string, lists where tuples are wanted)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(prefix + k for k in sorted(unknown))}")
    out = {}
    for key, value in d.items():
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        try:
            if isinstance(default, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif isinstance(default, float):
                value = float(value)
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
                value = tuple(float(v) if isinstance(default[0], float) else v for v in value) if default else tuple(value)
        except (TypeError, ValueError):
            raise ValueError(f"config {prefix}{key}: {value!r} is not a valid {type(default).__name__}") from None
        out[key] = value
    return out


def _parse_value(text: str):
    return yaml.safe_load(text) if text != "" else ""


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """A YAML recipe plus key=value overrides (dotted keys reach nested sections: model.hidden_size=256)."""
    d: dict = {}
    if path:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        node = d
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_value(value)
    return TrainConfig.from_dict(d)


def _resolve(cfg: TrainConfig, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(cfg.data_dir, path)


def load_training_set(cfg: TrainConfig, report: ManifestReport) -> list[Utterance]:
    utts = []
    for entry in cfg.train:
        entry = {"manifest": entry} if isinstance(entry, str) else entry
        part = read_manifest(_resolve(cfg, entry["manifest"]), report=report)
        long = [u for u in part if u.seconds > cfg.max_utterance_seconds]
        for u in long:
            report.skip(f"longer than max_utterance_seconds={cfg.max_utterance_seconds}", u.id)
        part = [u for u in part if u.seconds <= cfg.max_utterance_seconds]
        utts.extend(part * int(entry.get("repeat", 1)))
    if not utts:
        raise ValueError("no training utterances: check the `train` manifests")
    return utts


def lr_lambda(cfg: TrainConfig, total_steps: int):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def feature_stats(utts: list[Utterance], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean/std of log-mel over up to n utterances drawn at random (unaugmented)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(utts), size=min(n, len(utts)), replace=False)

    def feats():
        for i in pick:
            try:
                yield log_mel(load_audio(utts[i].path))
            except Exception as err:  # unreadable files are reported by the dataset later
                log.warning("stats: skipping %s: %s", utts[i].id, err)
    return compute_stats(feats())


@torch.inference_mode()
def dev_wer(model: AcousticModel, utts: list[Utterance], batch_seconds: float = 200.0) -> dict:
    """Greedy WER/CER of the model on utterances (offline pass, batched)."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    refs, hyps = [], []
    order = sorted(range(len(utts)), key=lambda i: utts[i].seconds)
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and utts[order[j]].seconds * (j - i + 1) <= batch_seconds:
            j += 1
        batch = [utts[k] for k in order[i:j]]
        feats = [log_mel(load_audio(u.path)).to(device) for u in batch]
        keep = [k for k, f in enumerate(feats) if len(f)]
        hyps.extend(greedy_batch(model, [feats[k] for k in keep]))
        refs.extend(batch[k].text for k in keep)
        i = j
    model.train(was_training)
    return score(refs, hyps)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, device: str | None = None, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.out = Path(cfg.out_dir)
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
        if device is None:
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.is_main = self.rank == 0

        self.report = ManifestReport()
        self.utts = load_training_set(cfg, self.report)
        self.dev = {name: read_manifest(_resolve(cfg, path), report=self.report)[: cfg.dev_max_utterances]
                    for name, path in (cfg.dev or {}).items()}
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model = AcousticModel(cfg.model).to(self.device)
        if cfg.init_from:
            src = read_payload(cfg.init_from)
            self.model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                        for k, v in src["state_dict"].items()})
        self.dataset = SpeechDataset(self.utts, cfg.augment, seed=cfg.seed)
        self.sampler = DurationBatchSampler([u.seconds for u in self.utts], cfg.max_batch_seconds, seed=cfg.seed,
                                            sorta_grad=cfg.sorta_grad, rank=self.rank, world_size=self.world)
        self.steps_per_epoch = len(self.sampler.batches(1))
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.total_steps))
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best = float("inf")
        self.skipped_long = 0
        self.skipped_nonfinite = 0
        self.dropped_unreadable = 0
        self.history: list[dict] = []
        if resume and (self.out / "last.pt").exists():
            self._load(self.out / "last.pt")
        elif not cfg.init_from:
            mean, std = feature_stats(self.utts, cfg.stats_utterances, cfg.seed)
            self.model.feat_mean.copy_(mean)
            self.model.feat_std.copy_(std)
        self.ddp = None
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.writer = None
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step)
            except ImportError:
                log.info("tensorboard not installed: no TensorBoard logs")

    # ---------------------------------------------------------------- checkpoints
    def _training_state(self) -> dict:
        state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "best": self.best,
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "torch_rng": torch.get_rng_state(), "python_rng": list(random.getstate()[1]),
                 "skipped_long": self.skipped_long, "skipped_nonfinite": self.skipped_nonfinite,
                 "history": self.history, "config": self.cfg.to_dict()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self, name: str = "last.pt") -> None:
        if not self.is_main:
            return
        payload = model_payload(self.model, self._card())
        payload["training"] = self._training_state()
        atomic_save(payload, self.out / name)

    def _load(self, path: Path) -> None:
        payload = read_payload(path)
        state = payload["training"]
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best = state["best"]
        self.skipped_long, self.skipped_nonfinite = state["skipped_long"], state["skipped_nonfinite"]
        self.history = list(state.get("history", []))
        torch.set_rng_state(state["torch_rng"])
        random.setstate((3, tuple(state["python_rng"]), None))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.is_main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch, self.batch_in_epoch)

    def _card(self) -> dict:
        card = dict(self.cfg.card)
        card.setdefault("trained_steps", self.step)
        if self.history:
            card["dev_wer"] = {k: round(v, 4) for k, v in self.history[-1].items() if k.endswith("wer") and k != "step"}
        return card

    # ---------------------------------------------------------------- loop
    def _loader(self):
        self.dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=collate,
                                           num_workers=self.cfg.num_workers,
                                           persistent_workers=False, prefetch_factor=4 if self.cfg.num_workers else None)

    def train_step(self, batch) -> dict | None:
        feats, lengths, targets, target_lengths, _ = batch
        model = self.ddp or self.model
        out_lengths = self.model.output_lengths(lengths)
        pieces = torch.split(targets, target_lengths.tolist())
        keep = torch.tensor([int(o) >= ctc_min_frames(t) for o, t in zip(out_lengths, pieces)])
        if not keep.all():  # label longer than the output frames: skip, never a NaN loss
            self.skipped_long += int((~keep).sum())
            if not keep.any():
                return None
            feats, lengths = feats[keep], lengths[keep]
            pieces = [p for p, k in zip(pieces, keep) if k]
            targets, target_lengths = torch.cat(pieces), target_lengths[keep]
        feats, lengths = feats.to(self.device, non_blocking=True), lengths.to(self.device)
        use_bf16 = self.cfg.bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            log_probs, out_lengths = model(feats, lengths)
        loss_sum = F.ctc_loss(log_probs.float().transpose(0, 1), targets.to(self.device), out_lengths,
                              target_lengths.to(self.device), blank=BLANK_ID, reduction="sum", zero_infinity=True)
        tokens = int(target_lengths.sum())
        loss = loss_sum / max(1, tokens)
        if not torch.isfinite(loss):
            self.skipped_nonfinite += 1
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), "tokens": tokens,
                "seconds": float(lengths.sum()) / 100.0}

    def evaluate_dev(self) -> dict:
        out = {"step": self.step}
        for name, utts in self.dev.items():
            if utts:
                s = dev_wer(self.model, utts)
                out[f"{name}_wer"], out[f"{name}_cer"] = s["wer"], s["cer"]
        wers = [v for k, v in out.items() if k.endswith("_wer")]
        if wers:
            out["mean_wer"] = float(np.mean(wers))
        return out

    def _log_dev(self) -> None:
        if not (self.is_main and self.dev):
            return
        res = self.evaluate_dev()
        self.history.append(res)
        msg = " ".join(f"{k}={v:.4f}" for k, v in res.items() if k != "step")
        log.info("step %d dev: %s", self.step, msg)
        if self.writer:
            for k, v in res.items():
                if k != "step":
                    self.writer.add_scalar(f"dev/{k}", v, self.step)
        if res.get("mean_wer", float("inf")) < self.best:
            self.best = res["mean_wer"]
            self.save("best.pt")

    def fit(self) -> dict:
        from tqdm import tqdm
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", file=sys.stderr,
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        t0, audio_s, n_since = time.perf_counter(), 0.0, 0
        done = self.step >= self.total_steps
        while not done and self.epoch < self.cfg.epochs:
            for batch, dropped in self._loader():
                self.dropped_unreadable += dropped
                self.batch_in_epoch += 1
                stats = self.train_step(batch) if batch is not None else None
                self.step += 1
                bar.update(1)
                if stats:
                    audio_s += stats["seconds"]
                    n_since += 1
                    elapsed = time.perf_counter() - t0
                    if self.is_main and (self.step % 10 == 0 or self.step == 1):
                        speed = audio_s / max(elapsed, 1e-9)
                        bar.set_postfix(loss=f"{stats['loss']:.3f}", epoch=self.epoch, x_realtime=f"{speed:.0f}")
                        if self.writer:
                            self.writer.add_scalar("train/loss", stats["loss"], self.step)
                            self.writer.add_scalar("train/grad_norm", stats["grad_norm"], self.step)
                            self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                            self.writer.add_scalar("train/audio_seconds_per_second", speed, self.step)
                if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                    self.save()
                if self.cfg.dev_every and self.step % self.cfg.dev_every == 0:
                    self._log_dev()
                if self.step >= self.total_steps:
                    done = True
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
                self.save()
                self._log_dev()
        bar.close()
        self.save()
        summary = {"step": self.step, "epoch": self.epoch, "train_utterances": len(self.utts),
                   "skipped_manifest": self.report.skipped, "skipped_label_too_long": self.skipped_long,
                   "skipped_nonfinite_loss": self.skipped_nonfinite, "dropped_unreadable": self.dropped_unreadable,
                   "audio_seconds_per_second": audio_s / max(time.perf_counter() - t0, 1e-9)}
        if self.is_main:
            best = self.out / "best.pt"
            source = read_payload(best) if best.exists() else None
            final = AcousticModel(self.cfg.model)
            final.load_state_dict(source["state_dict"] if source else self.model.state_dict())
            card = dict(source["card"]) if source else self._card()
            save_model(final, self.out / "model.pt", card, half=self.cfg.half_export)
            summary["model"] = str(self.out / "model.pt")
            log.info("done: %s", json.dumps(summary))
        if self.writer:
            self.writer.close()
        return summary
