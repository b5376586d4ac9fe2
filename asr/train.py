"""Training: CTC loss, AdamW with warm-up and cosine decay, gradient clipping, bf16 autocast on
GPU, duration-bucketed batches with SortaGrad, atomic checkpoints with exact resume,
TensorBoard logs, dev WER at intervals, and DistributedDataParallel under torchrun.

    asr train --config recipes/default/uni.yaml [key=value ...] [--resume]
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from .checkpoint import atomic_save, model_payload, read_payload, save_model
from . import distill
from .config import TrainConfig, load_config  # noqa: F401 (load_config is asr.train's API too)
from .data import (DurationBatchSampler, EncodedDataset, ManifestReport, SpeechDataset, Utterance, collate,
                   ctc_min_frames, pad, read_manifest)
from .encoder_cache import encoder_function
from .evaluate import score
from .features import compute_stats, log_mel
from .audio import FRAMES_PER_SECOND, load_audio
from .model import AcousticModel, bidirectional_from_streaming, widened
from .text import BLANK_ID

log = logging.getLogger("asr.train")


@torch.inference_mode()
def greedy_batch(model: AcousticModel, feats: list[torch.Tensor]) -> list[str]:
    """Greedy transcripts of a list of (T, 80) features in one padded batch (for dev WER)."""
    from .decoding import greedy_text
    x, lengths = pad([f.float().to(model.head.weight.device) for f in feats])
    log_probs, out_lengths = model(x, lengths, encoded=model.cfg.whisper)
    return [greedy_text(lp[: int(n)].float().cpu()) for lp, n in zip(log_probs, out_lengths)]


def _resolve(cfg: TrainConfig, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(cfg.data_dir, path)


def load_training_set(cfg: TrainConfig, report: ManifestReport) -> list[Utterance]:
    utts = []
    for entry in cfg.train:
        entry = {"manifest": entry} if isinstance(entry, str) else entry
        part = read_manifest(_resolve(cfg, entry["manifest"]), report=report, untranscribed=cfg.distill_weight > 0)
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


def whisper_encode(model: AcousticModel):
    """samples (n,) 16 kHz -> the frozen encoder's outputs (U, d_model) float32 numpy, in pieces of
    at most the encoder's context for longer audio (what the encoder cache holds)."""
    return encoder_function(model.encoder, model.whisper_fbank)


@torch.inference_mode()
def dev_wer(model: AcousticModel, utts: list[Utterance], batch_seconds: float = 200.0, cache=None) -> dict:
    """Greedy WER/CER of the model on utterances (offline pass, batched; a whisper-frontend model
    reads its encoder's outputs from the cache)."""
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
        if cache is not None:
            feats = [torch.from_numpy(np.asarray(cache.get(u.path, 0), np.float32)).to(device) for u in batch]
        else:
            feats = [log_mel(load_audio(u.path)).to(device) for u in batch]
        keep = [k for k, f in enumerate(feats) if len(f)]
        hyps.extend(greedy_batch(model, [feats[k] for k in keep]))
        refs.extend(batch[k].text for k in keep)
        i = j
    model.train(was_training)
    return score(refs, hyps)


def _clock(seconds: float) -> str:
    """3725.2 -> '1:02:05'."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class Trainer:
    PROGRESS_SECONDS = 30.0  # a plain progress line this often when stderr is not a terminal (a log file)

    def __init__(self, cfg: TrainConfig, resume: bool = False, device: str | None = None, progress: bool = True):
        """resume: continue from out_dir/last.pt (FileNotFoundError when there is none). progress: a
        progress bar on a terminal, periodic log lines elsewhere."""
        self.cfg = cfg
        self.progress = progress
        self.out = Path(cfg.out_dir)
        if resume and not (self.out / "last.pt").exists():
            raise FileNotFoundError(f"{self.out / 'last.pt'}: no checkpoint to resume from")
        resumed = read_payload(self.out / "last.pt") if resume else None  # read once: the set-up and _load use it
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if device is None:
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.local_rank)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
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
        self.init_steps = 0  # steps the init_from model had already been trained for
        if cfg.init_from:
            src = read_payload(cfg.init_from)
            self.init_steps = int((src.get("card") or {}).get("trained_steps") or src.get("training", {}).get("step", 0))
            weights = {k: v.float() if v.is_floating_point() else v for k, v in src["state_dict"].items()}
            if cfg.model.bidirectional and not src["config"].get("bidirectional"):
                weights = bidirectional_from_streaming(weights, cfg.model)  # a streaming model seeds an offline one
            elif src["config"].get("hidden_size", cfg.model.hidden_size) < cfg.model.hidden_size:
                weights = widened(weights, src["config"], cfg.model, seed=cfg.seed)  # a smaller model seeds a wider one
            self.model.load_state_dict(weights)
        self.cache = None
        if cfg.model.whisper:
            self._whisper_setup(resumed)
        self.distiller, self.collate = None, collate
        if cfg.distill_weight > 0:
            self._distill_setup(resume)
        if self.rank:  # the same initial weights everywhere (DDP broadcasts rank 0's anyway), own dropout masks
            torch.manual_seed(cfg.seed + 1000003 * self.rank)
        if self.distiller is not None:
            self.dataset = distill.DistillDataset(self.utts, self.teacher_cache, cfg.augment, seed=cfg.seed)
        elif self.cache is not None:
            self.dataset = EncodedDataset(self.utts, self.cache, cfg.encoder_variants, cfg.augment, seed=cfg.seed)
        else:
            self.dataset = SpeechDataset(self.utts, cfg.augment, seed=cfg.seed)
        self.sampler = DurationBatchSampler([u.seconds for u in self.utts], cfg.max_batch_seconds, seed=cfg.seed,
                                            sorta_grad=cfg.sorta_grad, rank=self.rank, world_size=self.world)
        self.steps_per_epoch = len(self.sampler.batches(1))
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.params = self.model.trainable_parameters() + (list(self.distiller.parameters()) if self.distiller else [])
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.total_steps))
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best = float("inf")
        self.skipped_long = 0
        self.named_too_long: set[str] = set()  # utterances whose label is too long, already named in the log
        self.skipped_nonfinite = 0
        self.dropped_unreadable = 0
        self.utterances_trained = 0
        self.train_seconds = 0.0  # wall-clock time in fit(), summed over resumes (the learning curve's x)
        self.audio_seconds = 0.0  # audio trained on, summed over resumes
        self.history: list[dict] = []
        if resume:
            self._load(self.out / "last.pt", resumed)
        elif not cfg.init_from and not cfg.model.whisper:
            mean, std = feature_stats(self.utts, cfg.stats_utterances, cfg.seed)
            self.model.feat_mean.copy_(mean)
            self.model.feat_std.copy_(std)
        self.ddp = None
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.writer = None
        log.info("rank %d of %d: %d utterances, %d batches per epoch, %d steps", self.rank, self.world,
                 len(self.utts), self.steps_per_epoch, self.total_steps)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step)
            except ImportError:
                log.info("tensorboard not installed: no TensorBoard logs")

    def _whisper_setup(self, resumed: dict | None) -> None:
        """A Whisper front-end: its weights from cfg.encoder (unless init_from or a checkpoint brings
        them), then every training and dev utterance's encoder outputs cached (once)."""
        from . import whisper
        from .encoder_cache import EncoderCache, default_folder
        cfg = self.cfg
        if not cfg.init_from and resumed is None:
            dims, weights = whisper.read_encoder(cfg.encoder)
            if dims.as_tuple() != cfg.model.encoder_dims:
                raise ValueError(f"config model.encoder_dims {list(cfg.model.encoder_dims)} differ from {cfg.encoder}'s "
                                 f"{list(dims.as_tuple())}")
            self.model.encoder.load_whisper(weights)
            self.model.whisper_fbank.copy_(torch.from_numpy(whisper.mel_filters(dims.n_mels).T.copy()))
        elif resumed is not None:  # the checkpoint's weights are loaded later; the cache needs them now
            self.model.load_state_dict(resumed["state_dict"])
        self.cache = EncoderCache(cfg.encoder_cache or default_folder(cfg.data_dir, cfg.encoder))
        self.model.eval()
        encode = whisper_encode(self.model)
        counts = self.cache.fill([u.path for u in self.utts], encode, cfg.encoder_variants, cfg.augment, cfg.seed,
                                 progress=self.progress and self.is_main)
        counts_dev = self.cache.fill([u.path for d in self.dev.values() for u in d], encode, 0,
                                     progress=self.progress and self.is_main)
        if counts["cached"] or counts_dev["cached"]:
            log.info("encoder cache %s: %d copies of %.2f h of audio added", self.cache.folder,
                     counts["cached"] + counts_dev["cached"], (counts["audio_seconds"] + counts_dev["audio_seconds"]) / 3600)
        self.model.train()

    def _distill_setup(self, resume: bool) -> None:
        """Distillation: the teacher's cache filled for every training and dev file (asr/distill.py)."""
        self.teacher_cache, self.distiller = distill.setup(
            self.cfg, self.utts, [u for d in self.dev.values() for u in d], resume=resume, is_main=self.is_main,
            world=self.world, progress=self.progress)
        self.distiller.to(self.device)
        self.collate = distill.distill_collate

    # ---------------------------------------------------------------- checkpoints
    _COUNTERS = ("skipped_long", "skipped_nonfinite", "dropped_unreadable", "utterances_trained", "train_seconds",
                 "audio_seconds")

    def _rank_state(self) -> dict:
        """What differs between ranks: the random state (dropout masks) and the counters."""
        state = {"torch_rng": torch.get_rng_state(), "python_rng": list(random.getstate()[1])}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        state.update({k: getattr(self, k) for k in self._COUNTERS})
        return state

    def _training_state(self, ranks: list[dict]) -> dict:
        state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "best": self.best,
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "ranks": ranks, "history": self.history, "config": self.cfg.to_dict()}
        if self.distiller is not None:  # training-only weights: here, never in the model's state_dict
            state["distill"] = {k: v.detach().cpu() for k, v in self.distiller.state_dict().items()}
        return state

    def checkpoint(self) -> None:
        """Write last.pt with every rank's own state (under DDP all ranks must call this together)."""
        ranks = [self._rank_state()]
        if self.world > 1:
            ranks = [None] * self.world
            torch.distributed.all_gather_object(ranks, self._rank_state())
        self.save("last.pt", ranks)

    def save(self, name: str, ranks: list[dict] | None = None) -> None:
        """Rank 0 writes the model and (for resuming) the training state; other ranks do nothing."""
        if not self.is_main:
            return
        payload = model_payload(self.model, self._card())
        payload["training"] = self._training_state(ranks or [self._rank_state()])
        atomic_save(payload, self.out / name)

    def _load(self, path: Path, payload: dict) -> None:
        """Continue from the checkpoint payload read from path."""
        state = payload["training"]
        then, now = state.get("config", {}), self.cfg.to_dict()
        changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k) and k != "out_dir")
        if changed and self.is_main:
            log.warning("resuming with a config that differs from %s's in %s: the run will not be the one it "
                        "would have been", path, ", ".join(changed))
        self.model.load_state_dict(payload["state_dict"])
        if (self.distiller is not None) != ("distill" in state):
            raise ValueError(f"{path} was written {'with' if 'distill' in state else 'without'} distillation and "
                             f"the config has distill_weight={self.cfg.distill_weight}: resume it as it was, or "
                             f"start a new run from it with init_from=")
        if self.distiller is not None:
            self.distiller.load_state_dict(state["distill"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best = state["best"]
        self.history = list(state.get("history", []))
        ranks = state["ranks"]
        if len(ranks) == self.world:
            mine = ranks[self.rank]
            for k in self._COUNTERS:
                setattr(self, k, mine.get(k, getattr(self, k)))  # older checkpoints lack the newer counters
        else:
            mine = ranks[0]
            if self.is_main:
                log.warning("%s was written by %d process(es), resuming with %d: dropout masks will differ from an "
                            "uninterrupted run", path, len(ranks), self.world)
        torch.set_rng_state(mine["torch_rng"])
        if "cuda_rng" in mine and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda_rng"], self.device)
        random.setstate((3, tuple(mine["python_rng"]), None))
        if self.is_main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch, self.batch_in_epoch)

    def _card(self) -> dict:
        card = dict(self.cfg.card)
        card.setdefault("trained_steps", self.init_steps + self.step)
        if self.train_seconds:  # this run's share (init_from's runs are named by fine_tuned_from)
            card.setdefault("training", f"{self.step} steps in {self.train_seconds / 3600:.2f} h on {self.device.type}, "
                                        f"{self.audio_seconds / 3600:.1f} h of audio at "
                                        f"{self.audio_seconds / self.train_seconds:.0f} audio-seconds per second")
        if self.cfg.init_from:
            card.setdefault("fine_tuned_from", f"{Path(self.cfg.init_from).name} ({self.init_steps} steps)")
        if self.history:
            card["dev_wer"] = {k: round(v, 4) for k, v in self.history[-1].items() if k.endswith("wer") and k != "step"}
        return card

    # ---------------------------------------------------------------- loop
    def _loader(self):
        self.dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
        # A DataLoader draws its workers' base seed from the global torch RNG unless given a generator:
        # that draw, made again on resume mid-epoch, would shift every later dropout mask.
        generator = torch.Generator().manual_seed(self.cfg.seed * 1000 + self.epoch)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=self.collate,
                                           num_workers=self.cfg.num_workers, generator=generator,
                                           persistent_workers=False, prefetch_factor=4 if self.cfg.num_workers else None)

    def _usable(self, batch):
        """The batch without items whose label needs more CTC frames than the model outputs
        (counted in skipped_long; a NaN loss otherwise), or None if nothing is left."""
        if batch is None:
            return None
        feats, lengths, targets, target_lengths, indices = batch[:5]
        extra = batch[5:]  # per-item tensors (B, ...) besides: the teacher's frames when distilling
        out_lengths = lengths if self.cache is not None else self.model.output_lengths(lengths)
        pieces = torch.split(targets, target_lengths.tolist())
        keep = torch.tensor([int(o) >= ctc_min_frames(t) for o, t in zip(out_lengths, pieces)], dtype=torch.bool)
        if keep.all():
            return (feats, lengths, targets, target_lengths, *extra)
        self.skipped_long += int((~keep).sum())
        for i in (~keep).nonzero().flatten().tolist():  # named once; counted every time
            utt = self.utts[int(indices[i])]
            if utt.id not in self.named_too_long:
                self.named_too_long.add(utt.id)
                log.warning("skipping %s whenever its label is too long for its audio: %d letters need %d output "
                            "frames, it gives %d (counted in skipped_label_too_long)", utt.id, len(pieces[i]),
                            ctc_min_frames(pieces[i]), int(out_lengths[i]))
        if not keep.any():
            return None
        pieces = [p for p, k in zip(pieces, keep) if k]
        return (feats[keep], lengths[keep], torch.cat(pieces), target_lengths[keep], *(e[keep] for e in extra))

    def _placeholder_batch(self):
        """One short silent item with a one-letter label, for a rank that has nothing to train on."""
        frames = 4 * (1 if self.cache is not None else self.model.cfg.subsampling)
        width = self.model.cfg.encoder_dims[2] if self.cache is not None else self.model.cfg.n_mels
        batch = (torch.zeros(1, frames, width), torch.tensor([frames]), torch.tensor([BLANK_ID + 1]), torch.tensor([1]))
        if self.distiller is not None:
            batch += (torch.zeros(1, 1, len(self.distiller.teacher_mean)), torch.tensor([0]))
        return batch

    def _all_ranks(self, flag: bool) -> bool:
        """True when flag is true on every rank."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return bool(t.item())

    def train_step(self, batch) -> dict | None:
        """One optimiser step. batch: collate's tuple, or None when all its audio was unreadable.
        Returns loss statistics, or None when the step was skipped (nothing usable, non-finite loss).

        Under DDP every rank must take part in every backward pass, or the gradient all-reduce
        hangs: a rank with nothing usable trains on a placeholder item with weight 0, and a
        non-finite loss on any rank makes all ranks skip the step together.
        """
        usable = self._usable(batch)
        if usable is None and self.world == 1:
            return None
        weight = 1.0
        if usable is None:
            usable, weight = self._placeholder_batch(), 0.0
        feats, lengths, targets, target_lengths = usable[:4]
        model = self.ddp or self.model
        feats, lengths = feats.to(self.device, non_blocking=True), lengths.to(self.device)
        use_bf16 = self.cfg.bf16_cpu if self.device.type == "cpu" else self.cfg.bf16
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16), \
                distill.capture(self.model, self.distiller) as hidden:
            log_probs, out_lengths = model(feats, lengths, encoded=self.cache is not None)
        tokens = int(target_lengths.sum())
        parts = {}
        if self.distiller is None:
            loss_sum = F.ctc_loss(log_probs.float().transpose(0, 1), targets.to(self.device), out_lengths,
                                  target_lengths.to(self.device), blank=BLANK_ID, reduction="sum", zero_infinity=True)
            loss = loss_sum / max(1, tokens) * weight
        else:
            loss, parts = distill.loss(self.cfg, self.distiller, log_probs, out_lengths, targets, target_lengths,
                                       hidden, *usable[4:])
            loss = loss * weight
        self.optimizer.zero_grad(set_to_none=True)
        if not self._all_ranks(bool(torch.isfinite(loss))):
            self.skipped_nonfinite += 1
            return None
        loss.backward()
        if self.distiller is not None and self.world > 1:  # outside DDP's module: average its gradients here
            for p in self.distiller.parameters():
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if weight == 0.0:
            return None
        self.utterances_trained += len(lengths)
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), "tokens": tokens,
                "seconds": float(lengths.sum()) / (FRAMES_PER_SECOND / (2 if self.cache is not None else 1)), **parts}

    def evaluate_dev(self) -> dict:
        out = {"step": self.step, "train_hours": self.train_seconds / 3600, "audio_hours": self.audio_seconds / 3600}
        for name, utts in self.dev.items():
            if utts and self.cfg.ctc_weight:  # (regression alone trains no CTC head: no WER to measure)
                s = dev_wer(self.model, utts, cache=self.cache)
                out[f"{name}_wer"], out[f"{name}_cer"] = s["wer"], s["cer"]
            if utts and self.distiller is not None:
                out.update({f"{name}_{k}": v for k, v in
                            distill.dev_scores(self.model, self.distiller, utts, self.teacher_cache).items()})
        for key in ("wer", "distill", "cos"):
            values = [v for k, v in out.items() if k.endswith("_" + key) and not k.startswith("mean_")]
            if values:
                out[f"mean_{key}"] = float(np.mean(values))
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
        if res.get("mean_wer", res.get("mean_distill", float("inf"))) < self.best:  # distill: regression alone
            self.best = res.get("mean_wer", res.get("mean_distill"))
            self.save("best.pt")

    def _drop(self, dropped: list) -> None:
        """Count the utterances a batch left out; name each unreadable file once, and read it no more."""
        self.dropped_unreadable += len(dropped)
        for d in dropped:
            path = self.utts[d.index].path
            if d.reason and path not in self.dataset.unreadable:
                self.dataset.unreadable.add(path)  # the next epoch's loader workers get the set
                log.warning("leaving %s out of training: %s", self.utts[d.index].id, d.reason)

    def _progress_line(self, stats: dict, started: float, first_step: int, audio_s: float) -> None:
        elapsed = time.perf_counter() - started
        left = elapsed / max(1, self.step - first_step) * (self.total_steps - self.step)
        parts = "".join(f" {k} {stats[k]:.3f}" for k in ("ctc", "distill", "cosine") if k in stats)
        log.info("step %d/%d (%.0f%%), epoch %d: loss %.3f%s, %.0fx real time, %s elapsed, about %s left", self.step,
                 self.total_steps, 100 * self.step / self.total_steps, self.epoch, stats["loss"],
                 f" ({parts.strip()})" if parts else "", audio_s / max(elapsed, 1e-9), _clock(elapsed), _clock(left))

    def fit(self) -> dict:
        from tqdm import tqdm
        self.model.train()
        show = self.progress and self.is_main
        lines = show and not sys.stderr.isatty()  # to a file: a log line every PROGRESS_SECONDS, not a bar
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", file=sys.stderr,
                   disable=not show or lines, dynamic_ncols=True)
        t0, audio_s, n_since = time.perf_counter(), 0.0, 0
        tick, first_step, last_line = t0, self.step, -math.inf
        last_step = min(self.cfg.stop_step or self.total_steps, self.total_steps)  # the schedule spans total_steps
        done = self.step >= last_step
        while not done and self.epoch < self.cfg.epochs:
            for batch, dropped in self._loader():
                self._drop(dropped)
                self.batch_in_epoch += 1
                stats = self.train_step(batch)
                self.step += 1
                now = time.perf_counter()
                self.train_seconds += now - tick
                tick = now
                bar.update(1)
                if stats:
                    audio_s += stats["seconds"]
                    self.audio_seconds += stats["seconds"]
                    n_since += 1
                    if lines and (now - last_line >= self.PROGRESS_SECONDS or self.step >= self.total_steps):
                        last_line = now
                        self._progress_line(stats, t0, first_step, audio_s)
                    elapsed = time.perf_counter() - t0
                    if self.is_main and (self.step % 10 == 0 or self.step == 1):
                        speed = audio_s / max(elapsed, 1e-9)
                        bar.set_postfix(loss=f"{stats['loss']:.3f}", epoch=self.epoch, x_realtime=f"{speed:.0f}")
                        if self.writer:
                            self.writer.add_scalar("train/loss", stats["loss"], self.step)
                            for k in ("ctc", "distill", "cosine"):  # the parts of a distillation loss
                                if k in stats:
                                    self.writer.add_scalar(f"train/{k}", stats[k], self.step)
                            self.writer.add_scalar("train/grad_norm", stats["grad_norm"], self.step)
                            self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                            self.writer.add_scalar("train/audio_seconds_per_second", speed, self.step)
                if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                    self.checkpoint()
                if self.cfg.dev_every and self.step % self.cfg.dev_every == 0:
                    self._log_dev()
                if self.step >= last_step:
                    done = True
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
                self.checkpoint()
                self._log_dev()
        bar.close()
        self.checkpoint()
        summary = {"step": self.step, "epoch": self.epoch, "train_utterances": len(self.utts),
                   "skipped_manifest": self.report.skipped, "skipped_label_too_long": self.skipped_long,
                   "skipped_nonfinite_loss": self.skipped_nonfinite, "dropped_unreadable": self.dropped_unreadable,
                   "audio_seconds_per_second": audio_s / max(time.perf_counter() - t0, 1e-9),
                   "utterances_trained": self.utterances_trained, "world_size": self.world}
        if self.world > 1:  # the counters summed over ranks
            per_rank = [None] * self.world
            torch.distributed.all_gather_object(per_rank, {k: getattr(self, k) for k in self._COUNTERS})
            summary["utterances_trained_per_rank"] = [r["utterances_trained"] for r in per_rank]
            summary["utterances_trained"] = sum(r["utterances_trained"] for r in per_rank)
            summary["skipped_label_too_long"] = sum(r["skipped_long"] for r in per_rank)
            summary["dropped_unreadable"] = sum(r["dropped_unreadable"] for r in per_rank)
        if self.is_main:
            best = self.out / "best.pt"
            source = read_payload(best) if self.cfg.export == "best" and best.exists() else None
            final = AcousticModel(self.cfg.model)
            final.load_state_dict(source["state_dict"] if source else self.model.state_dict())
            card = dict(source["card"]) if source else self._card()
            save_model(final, self.out / "model.pt", card, half=self.cfg.half_export)
            summary["model"] = str(self.out / "model.pt")
            log.info("done: %s", json.dumps(summary))
        if self.writer:
            self.writer.close()
        if self.world > 1:
            torch.distributed.barrier()  # the others wait for rank 0's export, then all leave together
            torch.distributed.destroy_process_group()
        return summary
