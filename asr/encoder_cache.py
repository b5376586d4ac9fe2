"""The encoder's outputs, computed once per utterance and kept on disk (float16): what a model with
a frozen Whisper front-end trains on (asr/train.py), so that an epoch costs the GRU head alone.

Each utterance's audio is cached clean (variant 0) and as `variants` augmented copies (speed,
reverberation, noise, telephone band and gain applied to the waveform *before* the encoder, as
data.augment_waveform draws them), so the head also learns what the encoder makes of noisy,
fast or band-limited speech. A copy is keyed by the audio file's absolute path and its variant
number, so corpora listed in several manifests share it; variant v of a file is the same audio
whichever run asks for it (its random draw is seeded by (seed, v, path)).

Layout of a cache folder:
    index.tsv      path, variant, shard, start row, frames (one line per cached copy)
    shard-NNNN.npy (rows, d_model) float16, written whole when full; read memory-mapped
An interrupted fill keeps every finished shard and goes on where it stopped.
"""
from __future__ import annotations

import csv
import logging
import os
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger("asr.encoder_cache")

SHARD_ROWS = 250_000  # 1 h 23 min of 20 ms frames, 190 MB at d_model 384


def default_folder(data_dir: str | os.PathLike, spec: str | os.PathLike) -> str:
    """Where a run keeps the outputs of the encoder `spec` (a checkpoint's name or path) by default:
    data_dir/encoder-cache/<its last path component>."""
    name = os.path.basename(os.path.normpath(os.fspath(spec))) or "encoder"
    return os.path.join(os.fspath(data_dir), "encoder-cache", name)


class EncoderCache:
    """Cached encoder outputs of audio files, by (absolute path, variant)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.index: dict[tuple[str, int], tuple[int, int, int]] = {}
        self._shards: dict[int, np.ndarray] = {}
        path = self.folder / "index.tsv"
        if path.exists():
            with open(path, newline="") as f:
                for row in csv.reader(f, delimiter="\t"):
                    if len(row) == 5 and (self.folder / f"shard-{int(row[2]):04d}.npy").exists():
                        self.index[(row[0], int(row[1]))] = (int(row[2]), int(row[3]), int(row[4]))

    @staticmethod
    def key(path: str | os.PathLike) -> str:
        return os.path.abspath(os.fspath(path))

    def __contains__(self, item: tuple[str, int]) -> bool:
        return (self.key(item[0]), item[1]) in self.index

    def get(self, path: str | os.PathLike, variant: int = 0) -> np.ndarray:
        """The cached (U, d_model) float16 outputs of a file's variant (KeyError if not cached)."""
        shard, start, frames = self.index[(self.key(path), variant)]
        if shard not in self._shards:
            self._shards[shard] = np.load(self.folder / f"shard-{shard:04d}.npy", mmap_mode="r")
        return self._shards[shard][start:start + frames]

    def fill(self, paths: list[str], encode, variants: int = 0, augment=None, seed: int = 0,
             progress: bool = True) -> dict:
        """Cache every file's clean copy and `variants` augmented ones that are not cached yet.

        encode: samples (n,) float32 16 kHz -> (U, d_model) array (the frozen encoder);
        augment: a data.AugmentConfig for the augmented copies. Unreadable files are left out
        (the trainer names them). Returns counts: cached, skipped (unreadable), seconds of audio."""
        from tqdm import tqdm

        from .audio import AudioError, SAMPLE_RATE, load_audio
        from .data import augment_waveform
        todo = sorted({self.key(p) for p in paths})
        jobs = [(p, v) for p in todo for v in range(variants + 1) if (p, v) not in self.index]
        counts = {"cached": 0, "unreadable": 0, "audio_seconds": 0.0}
        if not jobs:
            return counts
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = max([s for s, _, _ in self.index.values()], default=-1) + 1
        rows, pending, n_rows = [], [], 0
        index = open(self.folder / "index.tsv", "a", newline="")

        def flush():
            nonlocal shard, rows, pending, n_rows
            if not rows:
                return
            target = self.folder / f"shard-{shard:04d}.npy"
            np.save(str(target) + ".tmp.npy", np.concatenate(rows).astype(np.float16))
            os.replace(str(target) + ".tmp.npy", target)
            writer = csv.writer(index, delimiter="\t", lineterminator="\n")
            for key, v, start, frames in pending:
                writer.writerow([key, v, shard, start, frames])
                self.index[(key, v)] = (shard, start, frames)
            index.flush()
            shard, rows, pending, n_rows = shard + 1, [], [], 0

        audio = {}
        try:
            for path, v in tqdm(jobs, desc="encoder cache", unit="clip", disable=not progress, mininterval=10):
                if path not in audio:
                    audio.clear()  # jobs are grouped by file: keep one file's samples at a time
                    try:
                        audio[path] = load_audio(path)
                    except AudioError as err:
                        audio[path] = None
                        log.warning("encoder cache: leaving out %s: %s", path, err)
                x = audio[path]
                if x is None:
                    counts["unreadable"] += 1
                    continue
                if v:
                    rng = np.random.default_rng([seed, v, zlib.crc32(path.encode())])
                    x = augment_waveform(x, augment, rng)
                out = np.asarray(encode(x), np.float32)
                pending.append((path, v, n_rows, len(out)))
                rows.append(out)
                n_rows += len(out)
                counts["cached"] += 1
                counts["audio_seconds"] += len(x) / SAMPLE_RATE
                if n_rows >= SHARD_ROWS:
                    flush()
            flush()
        finally:
            index.close()
        return counts


def encoder_function(encoder, fbank):
    """samples (n,) 16 kHz -> a WhisperEncoder's outputs (U, d_model) float32 numpy, given its mel
    filterbank (N_FREQS, n_mels) tensor, in pieces of at most the encoder's context for longer audio
    (what the cache holds; asr.train.whisper_encode for a model's own encoder)."""
    import torch

    from . import whisper
    fbank = fbank.float().cpu().numpy()
    context = 2 * encoder.positional.shape[0]  # mel frames

    @torch.inference_mode()
    def encode(samples):
        mel = torch.from_numpy(whisper.log_mel(samples, fbank))
        outs = []
        for start in range(0, max(1, len(mel)), context):
            piece = mel[start:start + context].to(encoder.positional.device)
            out, _ = encoder(piece[None], torch.tensor([len(piece)]))
            outs.append(out[0].float().cpu())
        return torch.cat(outs).numpy()
    return encode
