"""The training dataset, on-the-fly augmentation and batching by duration (torch); the
manifests it reads are manifest.py's (re-exported here).
"""
from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass

import numpy as np
import soxr
import torch
import torchaudio

from .audio import SAMPLE_RATE, AudioError, load_audio
from .features import log_mel
from .manifest import (MANIFEST_COLUMNS, MANIFEST_FORMAT, ManifestReport, Utterance, read_manifest,  # noqa: F401
                       write_manifest)
from .text import encode

log = logging.getLogger("asr.data")

# --------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class AugmentConfig:
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)  # speed perturbation factors, drawn uniformly
    noise_prob: float = 0.5  # additive coloured noise ...
    snr_db: tuple[float, float] = (5.0, 40.0)  # ... at a random SNR in this range
    reverb_prob: float = 0.0  # synthetic room reverberation
    rt60: tuple[float, float] = (0.15, 0.6)  # seconds
    gain_db: tuple[float, float] = (-12.0, 6.0)  # random level
    telephone_prob: float = 0.0  # band-limit to a telephone's 8 kHz sampling (300-3400 Hz speech band)
    freq_masks: int = 2  # SpecAugment
    freq_mask_width: int = 27
    time_masks: int = 2
    time_mask_width: int = 40  # frames, and at most time_mask_ratio of the utterance
    time_mask_ratio: float = 0.05

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(speeds=(1.0,), noise_prob=0.0, reverb_prob=0.0, gain_db=(0.0, 0.0), telephone_prob=0.0,
                   freq_masks=0, time_masks=0)


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise of n samples (unit RMS)."""
    white = rng.standard_normal(n)
    exponent = rng.choice([0.0, 1.0, 2.0])  # 1/f^exponent power spectrum
    if exponent:
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        white = np.fft.irfft(spec / f ** (exponent / 2), n)
    return white / (np.sqrt(np.mean(white ** 2)) + 1e-12)


def _room_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """An exponentially decaying noise impulse response with the given RT60 (seconds)."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    rir[0] = 1.0
    return rir / np.sqrt(np.sum(rir ** 2))


def augment_waveform(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Speed, reverberation, noise, telephone band and gain, drawn from rng. x: 16 kHz mono float32."""
    speed = float(rng.choice(cfg.speeds))
    if speed != 1.0:  # play faster or slower: pitch and tempo together (Kaldi/sox "speed")
        x = soxr.resample(x, SAMPLE_RATE * speed, SAMPLE_RATE)
    x = x.astype(np.float64)
    if cfg.reverb_prob and rng.random() < cfg.reverb_prob:
        rir = _room_response(rng, rng.uniform(*cfg.rt60))
        x = torchaudio.functional.fftconvolve(torch.from_numpy(x), torch.from_numpy(rir)).numpy()[: len(x)]
    if cfg.noise_prob and rng.random() < cfg.noise_prob:
        power = np.mean(x ** 2)
        if power > 0:
            snr = rng.uniform(*cfg.snr_db)
            x = x + _coloured_noise(len(x), rng) * math.sqrt(power / 10 ** (snr / 10))
    if cfg.telephone_prob and rng.random() < cfg.telephone_prob:  # down to 8 kHz and back: nothing above 4 kHz
        x = soxr.resample(soxr.resample(x, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: len(x)]
    gain = 10 ** (rng.uniform(*cfg.gain_db) / 20)
    peak = np.max(np.abs(x)) if len(x) else 0.0
    x = x * gain
    if peak * gain > 0.99:  # no clipping
        x *= 0.99 / (peak * gain)
    return x.astype(np.float32)


def spec_augment(feats: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Frequency and time masks (SpecAugment) on (T, 80) log-mel, filled with the utterance mean,
    using torchaudio's masking with mask positions drawn from rng."""
    if not (cfg.freq_masks or cfg.time_masks) or len(feats) == 0:
        return feats
    spec = feats.T.unsqueeze(0).clone()  # (1, 80, T)
    fill = float(spec.mean())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        for _ in range(cfg.freq_masks):
            spec = torchaudio.functional.mask_along_axis(spec, cfg.freq_mask_width, fill, axis=1)
        width = min(cfg.time_mask_width, int(cfg.time_mask_ratio * spec.shape[-1]))
        if width > 0:
            for _ in range(cfg.time_masks):
                spec = torchaudio.functional.mask_along_axis(spec, width, fill, axis=2)
    return spec[0].T.contiguous()


# --------------------------------------------------------------------------- dataset
def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one utterance in one epoch: the same whichever worker or order."""
    return np.random.default_rng([seed, epoch, index])


@dataclass(frozen=True)
class Dropped:
    """An utterance the collate function leaves out of a batch, and why (None: known already)."""
    index: int
    reason: str | None = None


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances -> (features (T, 80), token ids, utterance index), augmented per epoch.

    An utterance whose audio cannot be read yields Dropped(index, reason); the collate function
    leaves it out. Files named in `unreadable` (the trainer adds them) are not read again.
    """

    def __init__(self, utterances: list[Utterance], augment: AugmentConfig | None = None, seed: int = 0):
        self.utts = utterances
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.unreadable: set[str] = set()  # audio paths not to read again (unreadable, or too short)

    def __len__(self) -> int:
        return len(self.utts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        index, epoch = (index if isinstance(index, tuple) else (index, self.epoch))
        got = self.features(index, epoch)
        if isinstance(got, Dropped):
            return got
        return got[0], torch.tensor(encode(self.utts[index].text), dtype=torch.long), index

    def features(self, index: int, epoch: int):
        """One utterance's augmented log-mel (T, 80) and its speed factor (the clean audio's samples
        over the augmented audio's), or Dropped."""
        utt = self.utts[index]
        if utt.path in self.unreadable:
            return Dropped(index)
        try:
            x = load_audio(utt.path)
        except AudioError as err:
            return Dropped(index, str(err))
        clean_samples = len(x)
        feats_rng = None
        if self.augment is not None:
            rng = item_rng(self.seed, epoch, index)
            x = augment_waveform(x, self.augment, rng)
            feats_rng = rng
        feats = log_mel(x)
        if feats_rng is not None:
            feats = spec_augment(feats, self.augment, feats_rng)
        return feats, clean_samples / max(1, len(x))


class EncodedDataset(SpeechDataset):
    """Utterances -> (cached encoder outputs (U, d_model) float32, token ids, utterance index) for
    a model with a frozen Whisper front-end (encoder_cache.py): each epoch draws one of the file's
    cached copies (clean, or one of `variants` augmented before the encoder), then SpecAugment-style
    masks on the encoder's frames and channels. Files the cache lacks yield Dropped."""

    def __init__(self, utterances: list[Utterance], cache, variants: int = 0, augment: AugmentConfig | None = None,
                 seed: int = 0):
        super().__init__(utterances, augment, seed)
        self.cache, self.variants = cache, variants

    def __getitem__(self, index):
        index, epoch = (index if isinstance(index, tuple) else (index, self.epoch))
        utt = self.utts[index]
        rng = item_rng(self.seed, epoch, index)
        variant = int(rng.integers(self.variants + 1)) if self.augment is not None else 0
        try:
            feats = torch.from_numpy(np.asarray(self.cache.get(utt.path, variant), np.float32))
        except KeyError:
            return Dropped(index, "not in the encoder cache (unreadable)")
        if self.augment is not None:
            feats = spec_augment(feats, self.augment, rng)
        return feats, torch.tensor(encode(utt.text), dtype=torch.long), index


def pad(seqs: list[torch.Tensor], min_length: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences (T_i, D) -> zero-padded (B, max(T_i, min_length), D) on their device and dtype,
    and their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in seqs])
    padded = seqs[0].new_zeros(len(seqs), max(min_length, int(lengths.max())), seqs[0].shape[1])
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    return padded, lengths


def collate(items):
    """-> (feats (B, T, 80), feat_lengths (B,), targets (sum L,), target_lengths (B,), indices (B,))
    or None when no item is usable, and the list of Dropped items (unreadable, or too short for
    one feature frame)."""
    dropped = [it if isinstance(it, Dropped) else Dropped(it[2], "too short for one feature frame")
               for it in items if isinstance(it, Dropped) or len(it[0]) == 0]
    good = [it for it in items if not isinstance(it, Dropped) and len(it[0]) > 0]
    if not good:
        return None, dropped
    feats, lengths = pad([f.float() for f, _, _ in good])
    targets = torch.cat([t for _, t, _ in good])
    target_lengths = torch.tensor([len(t) for _, t, _ in good])
    indices = torch.tensor([i for _, _, i in good])
    return (feats, lengths, targets, target_lengths, indices), dropped


def ctc_min_frames(tokens: list[int] | torch.Tensor) -> int:
    """Fewest CTC output frames that can carry this label: its length plus one blank between
    each pair of repeated characters."""
    t = tokens.tolist() if torch.is_tensor(tokens) else list(tokens)
    return len(t) + sum(1 for a, b in zip(t, t[1:]) if a == b)


class DurationBatchSampler:
    """Batches of at most max_seconds of audio, bucketed by duration.

    Epoch 0 with sorta_grad: batches in order of increasing duration (SortaGrad, Deep Speech
    2). Other epochs: utterances shuffled within duration buckets, batches shuffled. Every
    order is a function of (seed, epoch); `start` skips batches already done (for resume);
    with world_size > 1 each rank takes every world_size-th batch.
    """

    def __init__(self, seconds: list[float], max_seconds: float, seed: int = 0, sorta_grad: bool = True,
                 max_utterances: int = 512, rank: int = 0, world_size: int = 1):
        self.seconds = np.asarray(seconds, dtype=np.float64)
        self.max_seconds = max_seconds
        self.seed = seed
        self.sorta_grad = sorta_grad
        self.max_utterances = max_utterances
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch, 7])
        if epoch == 0 and self.sorta_grad:
            order = np.argsort(self.seconds, kind="stable")
        else:  # shuffle, then sort within buckets of ~100 batches so batches hold similar lengths
            order = rng.permutation(len(self.seconds))
            bucket = max(1, int(100 * self.max_seconds / max(self.seconds.mean(), 1e-3)))
            order = np.concatenate([chunk[np.argsort(self.seconds[chunk], kind="stable")]
                                    for chunk in np.array_split(order, max(1, len(order) // bucket))])
        batches, cur, longest = [], [], 0.0
        for i in order:
            longest_if = max(longest, self.seconds[i])
            if cur and (longest_if * (len(cur) + 1) > self.max_seconds or len(cur) >= self.max_utterances):
                batches.append(cur)
                cur, longest_if = [], self.seconds[i]
            cur.append(int(i))
            longest = longest_if
        if cur:
            batches.append(cur)
        if not (epoch == 0 and self.sorta_grad):
            batches = [batches[j] for j in rng.permutation(len(batches))]
        usable = len(batches) - len(batches) % self.world_size if self.world_size > 1 else len(batches)
        return batches[:usable][self.rank::self.world_size]

    def __iter__(self):
        for b in self.batches(self.epoch)[self.start:]:
            yield [(i, self.epoch) for i in b]

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) - self.start


def crc_split(key: str, fraction: float) -> bool:
    """A stable pseudo-random choice by key (True for about `fraction` of keys)."""
    return zlib.crc32(key.encode()) % 10000 < fraction * 10000
