"""Teacher-student distillation: a log-mel GRU model (streaming or not) learns to predict, from its
own layers, what Whisper's encoder makes of the same speech (asr train with distill_weight > 0).

The loss adds to CTC a regression (DistilHuBERT-style: L1 + (1 - cosine)) of a Linear projection of
one or more GRU layers onto the teacher encoder's outputs at the same 20 ms frames, normalised per
dimension with the teacher's mean and std. The teacher's outputs come from an EncoderCache (the
one the Whisper file model trains on: asr/encoder_cache.py), so the teacher runs once per file.
The projections are for training only: they live in the Distiller, saved in the training
checkpoint (resume is exact) and never in the exported model, which stays a plain GRU-CTC model.

Frame alignment. Whisper's output frame t is centred at 20 t ms (its log-mel is centred, its
second conv has stride 2) and has seen the whole window. Our model's GRU frame u has seen feature
frames up to 2u + 1 (the conv front-end: model._frontend), i.e. audio up to 20 u + 35 ms; its
emitted output frame u is the row convolution over GRU frames u .. u + lookahead (model._lookahead).
So the GRU frame that can know teacher frame t at the latency the model is built for is
t + lookahead: pred_t = proj(h_{t + lookahead}) is regressed onto teacher_t (as the pilot did with
lookahead 6; a bidirectional model has lookahead 0). Teacher frames with no such GRU frame (the
last `lookahead` ones, and the teacher's one or two extra frames at the end) are left out.

Augmentation meets the cache (the issue's question) with clean targets: the student hears its
audio augmented on the fly (data.augment_waveform: speed, reverberation, noise, telephone band,
gain; then SpecAugment), and its target is always the teacher's output on the *clean* audio
(cache variant 0) -- telling the student what a good ear makes of the clean speech under the
noise is the point. Speed perturbation changes the length: the clean targets are resampled in
time (linear interpolation, `stretch`) by the exact factor the audio was, so target t is the
clean frame at t x speed. The cache's augmented variants were not used instead: each holds one
fixed draw of every augmentation together, so they would give noisy targets and only K distinct
inputs per file.
"""
from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import read_payload
from .data import Dropped, SpeechDataset, collate, pad
from .features import log_mel
from .text import BLANK_ID, encode

log = logging.getLogger("asr.distill")


def stretch(frames: np.ndarray, speed: float) -> np.ndarray:
    """Teacher frames (U, D) of clean audio -> the frames of that audio played `speed` times as
    fast: frame t is the clean frame at t * speed, linearly interpolated; speed 1 returns frames."""
    if speed == 1.0 or len(frames) < 2:
        return frames
    n = int((len(frames) - 1) / speed) + 1
    pos = np.arange(n) * speed
    i0 = np.minimum(np.floor(pos).astype(np.int64), len(frames) - 1)
    i1 = np.minimum(i0 + 1, len(frames) - 1)
    w = (pos - i0)[:, None].astype(np.float32)
    return (1 - w) * frames[i0] + w * frames[i1]


class DistillDataset(SpeechDataset):
    """SpeechDataset's items (the same augmented features, drawn from the same random streams)
    plus the teacher's clean outputs for the utterance, stretched to the augmented audio's speed:
    (feats (T, 80), token ids (empty for untranscribed audio), index, teacher (U, D) float32).
    An utterance the teacher cache lacks yields Dropped."""

    def __init__(self, utterances, cache, augment=None, seed: int = 0):
        super().__init__(utterances, augment, seed)
        self.cache = cache

    def __getitem__(self, index):
        index, epoch = (index if isinstance(index, tuple) else (index, self.epoch))
        utt = self.utts[index]
        try:
            teacher = np.asarray(self.cache.get(utt.path, 0), np.float32)
        except KeyError:
            return Dropped(index, "not in the teacher's encoder cache (unreadable)")
        got = self.features(index, epoch)
        if isinstance(got, Dropped):
            return got
        feats, speed = got
        return feats, torch.tensor(encode(utt.text), dtype=torch.long), index, torch.from_numpy(stretch(teacher, speed))


def distill_collate(items):
    """collate's batch plus the teacher's frames: (..., teacher (B, U, D), teacher_lengths (B,))."""
    batch, dropped = collate([it if isinstance(it, Dropped) else it[:3] for it in items])
    if batch is None:
        return None, dropped
    teachers = {it[2]: it[3] for it in items if not isinstance(it, Dropped)}
    rows = [teachers[int(i)] for i in batch[4]]
    padded, lengths = pad([t.float() for t in rows], min_length=1)
    return (*batch, padded, lengths), dropped


def teacher_stats(cache, paths: list[str], n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std (D,) of the teacher's clean outputs over up to n of the files
    (drawn at random), for normalising the targets."""
    paths = sorted({p for p in paths if (p, 0) in cache})
    if not paths:
        raise ValueError("no training utterance has the teacher's outputs in its cache")
    rng = np.random.default_rng(seed)
    total, total_sq, count = 0.0, 0.0, 0
    for i in rng.choice(len(paths), size=min(n, len(paths)), replace=False):
        x = np.asarray(cache.get(paths[i], 0), np.float64)
        total, total_sq, count = total + x.sum(0), total_sq + (x * x).sum(0), count + len(x)
    mean = total / max(1, count)
    std = np.sqrt(np.maximum(total_sq / max(1, count) - mean * mean, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(np.maximum(std, 1e-5)).float()


class Distiller(nn.Module):
    """The training-only half of distillation: per chosen GRU layer, a Linear (H*dirs -> D) onto the
    teacher's normalised outputs, the teacher's per-dimension mean/std, and the loss."""

    def __init__(self, in_size: int, teacher_dim: int, layers: tuple[int, ...], num_layers: int, shift: int,
                 seed: int = 0):
        super().__init__()
        self.layers = tuple(i % num_layers for i in layers)
        self.shift = shift  # the model's lookahead: GRU frame t + shift is regressed onto teacher frame t
        self.register_buffer("teacher_mean", torch.zeros(teacher_dim))
        self.register_buffer("teacher_std", torch.ones(teacher_dim))
        with torch.random.fork_rng(devices=[]):  # own initial weights; the model's random stream is untouched
            torch.manual_seed(seed)
            self.proj = nn.ModuleList(nn.Linear(in_size, teacher_dim) for _ in self.layers)

    def forward(self, hidden: list[Tensor], lengths: Tensor, teacher: Tensor, teacher_lengths: Tensor
                ) -> tuple[Tensor, Tensor, int]:
        """hidden: the chosen layers' outputs, each (B, U, H*dirs) (valid up to lengths (B,)); teacher
        (B, U', D) raw, valid up to teacher_lengths (B,). -> (loss: mean over layers and paired frames
        of mean |pred - target| + 1 - cos(pred, target), mean cosine, paired frames per layer)."""
        pairs = torch.minimum(teacher_lengths.to(lengths.device), lengths - self.shift).clamp_min(0)  # (B,)
        P = int(pairs.max()) if len(pairs) else 0
        if P == 0:
            zero = sum(p.sum() for p in self.proj.parameters()) * 0.0  # keeps every rank's graph the same
            return zero, zero.detach(), 0
        mask = (torch.arange(P, device=lengths.device)[None] < pairs[:, None]).float()  # (B, P)
        target = (teacher[:, :P].float() - self.teacher_mean) / self.teacher_std  # (B, P, D)
        if target.shape[1] < P:
            target = F.pad(target, (0, 0, 0, P - target.shape[1]))
        frames = mask.sum()
        losses, cosines = [], []
        for h, proj in zip(hidden, self.proj):
            h = h[:, self.shift:self.shift + P].float()
            if h.shape[1] < P:  # a layer that came out shorter than the batch (one sequence, unpadded)
                h = F.pad(h, (0, 0, 0, P - h.shape[1]))
            pred = proj(h)  # (B, P, D)
            cos = F.cosine_similarity(pred, target, dim=-1, eps=1e-6)  # (B, P)
            per_frame = (pred - target).abs().mean(-1) + 1.0 - cos
            losses.append((per_frame * mask).sum() / frames)
            cosines.append((cos.detach() * mask).sum() / frames)
        return torch.stack(losses).mean(), torch.stack(cosines).mean(), int(frames)


@contextlib.contextmanager
def capture(model, distiller: Distiller | None):
    """Within the block, the outputs of the distiller's GRU layers (after their LayerNorm, before
    dropout) are appended to the yielded list at each forward pass; without a distiller, nothing."""
    if distiller is None:
        yield None
        return
    hidden: list[Tensor] = []
    hooks = [model.norms[i].register_forward_hook(lambda _m, _i, out: hidden.append(out)) for i in distiller.layers]
    try:
        yield hidden
    finally:
        for h in hooks:
            h.remove()


def setup(cfg, utts, dev_utts, resume: bool, is_main: bool = True, world: int = 1, progress: bool = False):
    """-> (the teacher's EncoderCache, a Distiller) for a run of TrainConfig cfg. The teacher's clean
    outputs are cached for every training and dev file the cache lacks (rank 0 runs the teacher; the
    others wait). The Distiller's projections and teacher statistics come from cfg.init_from where it
    has matching ones, else new (statistics from the cache); on resume the checkpoint brings them."""
    from .encoder_cache import EncoderCache, default_folder, encoder_function
    folder = cfg.teacher_cache or default_folder(cfg.data_dir, cfg.teacher)
    paths = [u.path for u in utts] + [u.path for u in dev_utts]
    cache = EncoderCache(folder)
    missing = sorted({p for p in paths if (p, 0) not in cache})
    if missing and is_main:
        from . import whisper
        from .model import WhisperEncoder
        try:
            dims, weights = whisper.read_encoder(cfg.teacher)
        except whisper.WhisperError as err:
            raise ValueError(f"config teacher: {err}") from None
        encoder = WhisperEncoder(dims.as_tuple()).eval()
        encoder.load_whisper(weights)
        fbank = torch.from_numpy(whisper.mel_filters(dims.n_mels).T.copy())
        log.info("teacher %s: caching its outputs for %d files in %s", cfg.teacher, len(missing), folder)
        cache.fill(missing, encoder_function(encoder, fbank), 0, progress=progress)
    if world > 1:
        torch.distributed.barrier()
        cache = EncoderCache(folder)  # what rank 0 added
    width = next(iter(cache.get(p, 0) for p in paths if (p, 0) in cache), np.zeros((0, 0))).shape[1]
    if not width:
        raise ValueError(f"{folder}: no training utterance has the teacher's outputs (unreadable audio?)")
    m = cfg.model
    distiller = Distiller(m.hidden_size * (2 if m.bidirectional else 1), width, cfg.distill_layers, m.num_layers,
                          m.lookahead, seed=cfg.seed)
    if resume:
        return cache, distiller  # the trainer's _load brings the distiller's state
    src = read_payload(cfg.init_from).get("training", {}).get("distill") if cfg.init_from else None
    if src is not None and all(src.get(k) is not None and v.shape == src[k].shape
                               for k, v in distiller.state_dict().items()):
        distiller.load_state_dict(src)
        log.info("distillation heads and teacher statistics from %s", cfg.init_from)
    else:
        mean, std = teacher_stats(cache, [u.path for u in utts], cfg.stats_utterances, cfg.seed)
        distiller.teacher_mean.copy_(mean)
        distiller.teacher_std.copy_(std)
    return cache, distiller


def loss(cfg, distiller: Distiller, log_probs, out_lengths, targets, target_lengths, hidden, teacher,
         teacher_lengths):
    """cfg.ctc_weight x CTC per letter (over the utterances that have text) + cfg.distill_weight x the
    regression onto the teacher (every utterance). -> (loss, its parts for the logs)."""
    device = log_probs.device
    tokens = int(target_lengths.sum())
    ctc = log_probs.new_zeros((), dtype=torch.float32)
    if tokens and cfg.ctc_weight:
        rows = (target_lengths > 0).to(device)
        ctc = F.ctc_loss(log_probs[rows].float().transpose(0, 1), targets.to(device), out_lengths[rows],
                         target_lengths[target_lengths > 0].to(device), blank=BLANK_ID, reduction="sum",
                         zero_infinity=True) / tokens
    reg, cos, _ = distiller(hidden, out_lengths, teacher.to(device), teacher_lengths.to(device))
    total = cfg.ctc_weight * ctc + cfg.distill_weight * reg
    return total, {"ctc": ctc.item(), "distill": reg.item(), "cosine": cos.item()}


@torch.inference_mode()
def dev_scores(model, distiller: Distiller, utts, cache, batch_seconds: float = 200.0) -> dict:
    """The distillation loss and cosine to the teacher on clean utterances the cache holds
    (frame-weighted means), the model in eval mode: {"distill": ..., "cos": ...} or {}."""
    utts = [u for u in utts if (u.path, 0) in cache]
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    order = sorted(utts, key=lambda u: u.seconds)
    loss_sum = cos_sum = frames = 0.0
    i = 0
    from .audio import AudioError, load_audio
    while i < len(order):
        j = i + 1
        while j < len(order) and order[j].seconds * (j - i + 1) <= batch_seconds:
            j += 1
        feats, teachers = [], []
        for u in order[i:j]:
            try:
                f = log_mel(load_audio(u.path))
            except AudioError:
                continue
            if len(f) >= 2 * model.cfg.subsampling:
                feats.append(f)
                teachers.append(torch.from_numpy(np.asarray(cache.get(u.path, 0), np.float32)))
        i = j
        if not feats:
            continue
        x, lengths = pad(feats)
        t, t_lengths = pad(teachers)
        with capture(model, distiller) as hidden:
            _, out_lengths = model(x.to(device), lengths.to(device))
        loss, cos, n = distiller(hidden, out_lengths, t.to(device), t_lengths.to(device))
        loss_sum, cos_sum, frames = loss_sum + float(loss) * n, cos_sum + float(cos) * n, frames + n
    model.train(was_training)
    return {"distill": loss_sum / frames, "cos": cos_sum / frames} if frames else {}
