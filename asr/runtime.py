"""The acoustic model without torch: ONNX Runtime runs model.py's layers, behind the same
explicit-state contract as model.AcousticModel, and the model file format it loads.

Shapes: B batch, T feature frames (10 ms), U output frames, C channels, H GRU hidden size,
D = H * directions, V vocabulary size; arithmetic in float32.

`Model.infer(feats, lengths, state, final)` takes and returns an explicit `StreamState`; a
chain of infer calls over any split of the features (in multiples of the subsampling factor)
gives the log-probs of the whole-utterance pass `Model(feats, lengths)`, and stepping many
streams in one batch gives what stepping each alone gives. model.AcousticModel is the torch
reference these equal within 1e-4. Why ONNX Runtime and not numpy: benchmarks/runtime.py
(a numpy twin of the layers spends its time in Python between 20 small GEMVs per chunk).

A runtime model file (`asr export`, export.py) is a numpy .npz archive, read with
allow_pickle=False:
    onnx       the ONNX graph (uint8 bytes; onnx_graph.py): weights, normalisation statistics
    mel_fbank  the mel filterbank (201, 80) float32 the features are made with (torchaudio's; or
               Whisper's, for a model with Whisper's front-end: whisper.py)
    meta       UTF-8 JSON: format, version, config, vocab, features, parameters and the model
               card (which names the model's language model, relative to the file's folder)
This module reads runtime files only and imports nothing of torch's: the torch .pt model files
and training checkpoints are export.py's (asr.export.load exports one in memory), which, like
checkpoint.py, depends on this module, never the other way.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import numpy as np

from .audio import N_MELS
from . import whisper
from .logmel import FEATURES, N_FREQS, log_mel, log_mel_frames
from .text import VOCAB

FORMAT = "asr-gru-ctc-runtime"
VERSION = 1
DEFAULT_MODEL = "default.npz"  # inside asr/models/
# The bundled models by name (--model NAME), in the runtime's form (what the commands run): the
# streaming model serves live audio; the offline (bidirectional) one, where bundled, is what
# `asr transcribe` uses for files unless --stream. Each is exported (`asr export`,
# scripts/export-models.sh) from the torch model file of the same name beside it
# (checkpoint.BUNDLED_TORCH), which training starts from (init_from=) and the tests compare
# against; a test checks that each pair agrees.
BUNDLED = {"streaming": DEFAULT_MODEL, "offline": "default-bi.npz"}


class ModelError(Exception):
    """A model file that is missing or cannot be used. str() is one line naming the file."""


@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = N_MELS
    vocab_size: int = len(VOCAB)
    conv_channels: int = 256
    conv_kernel: int = 3
    # Product = time subsampling: 10 ms -> 20 ms. Characters need it no coarser: English speech
    # runs at ~15 characters a second, and CTC wants blanks between them (Deep Speech 2 found
    # stride 2 the most a character model takes; at 40 ms frames ours learned far slower).
    conv_strides: tuple[int, ...] = (2, 1)
    hidden_size: int = 256
    num_layers: int = 4
    bidirectional: bool = False
    lookahead: int = 6  # future output frames seen by the row convolution (0: none)
    dropout: float = 0.1
    layer_norm: bool = True  # LayerNorm on each GRU layer's output (steadier, faster training)
    # "log-mel": the convs above read our 80-dim log-mel. "whisper": Whisper's log-mel and audio
    # encoder (asr/whisper.py; its 20 ms output frames replace the convs), then LayerNorm and a
    # Linear to conv_channels, then the GRU stack; encoder_dims = (n_mels, n_ctx, d_model,
    # n_heads, n_layers) of the encoder, whose weights the model file carries.
    frontend: str = "log-mel"
    encoder_dims: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "conv_strides", tuple(int(s) for s in self.conv_strides))
        object.__setattr__(self, "encoder_dims", tuple(int(d) for d in self.encoder_dims))
        if self.frontend not in ("log-mel", "whisper"):
            raise ValueError(f"frontend must be 'log-mel' or 'whisper', got {self.frontend!r}")
        if self.frontend == "whisper" and len(self.encoder_dims) != 5:
            raise ValueError("a whisper frontend needs encoder_dims (n_mels, n_ctx, d_model, n_heads, n_layers)")
        if self.frontend == "whisper" and not self.bidirectional:
            raise ValueError("a whisper frontend sees the whole window (its encoder cannot stream): set bidirectional")
        if self.bidirectional and self.lookahead:
            raise ValueError("lookahead is for unidirectional models; a bidirectional model sees the future already")
        if any(s > self.conv_kernel for s in self.conv_strides):
            raise ValueError("each conv stride must be at most conv_kernel")
        if self.lookahead < 0 or self.num_layers < 1:
            raise ValueError("lookahead must be >= 0 and num_layers >= 1")

    @property
    def subsampling(self) -> int:
        return 2 if self.whisper else math.prod(self.conv_strides)

    @property
    def streaming(self) -> bool:
        return not self.bidirectional

    @property
    def whisper(self) -> bool:
        return self.frontend == "whisper"

    @property
    def input_dim(self) -> int:
        """Width of the features the model's graph reads: Whisper's mel bins, or our n_mels."""
        return self.encoder_dims[0] if self.whisper else self.n_mels

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d = dict(d)
        d.setdefault("layer_norm", False)  # files written before the option had none
        return cls(**d)


@dataclass
class StreamState:
    """Everything a unidirectional model carries from one chunk to the next (numpy arrays).

    conv:       per conv layer, the pending input frames (B, C_in, kernel - stride) float32
    gru:        GRU hidden state (num_layers, B, H) float32
    ahead:      GRU outputs waiting for their future context (B, lookahead, H), right-aligned
    ahead_fill: how many of `ahead` are real (B,) int64, < lookahead only at the stream's start
    """
    conv: list[np.ndarray]
    gru: np.ndarray
    ahead: np.ndarray
    ahead_fill: np.ndarray

    @property
    def batch_size(self) -> int:
        return self.gru.shape[1]

    def unbind(self) -> list["StreamState"]:
        """Split a batch state into B single-stream states."""
        return [StreamState([c[i:i + 1] for c in self.conv], self.gru[:, i:i + 1],
                            self.ahead[i:i + 1], self.ahead_fill[i:i + 1]) for i in range(self.batch_size)]

    @staticmethod
    def stack(states: list["StreamState"]) -> "StreamState":
        """Join single- or multi-stream states into one batch state."""
        return StreamState([np.concatenate(cs, 0) for cs in zip(*(s.conv for s in states))],
                           np.concatenate([s.gru for s in states], 1),
                           np.concatenate([s.ahead for s in states], 0),
                           np.concatenate([s.ahead_fill for s in states], 0))


def _gather_rows(x: np.ndarray, start: np.ndarray, count: int) -> np.ndarray:
    """x (B, T, C), start (B,) -> x[b, start[b] : start[b] + count] as (B, count, C)."""
    if x.shape[0] == 1:  # one stream (the common streaming case): a plain slice
        s = int(start[0])
        if 0 <= s and s + count <= x.shape[1]:
            return x[:, s:s + count]
    idx = np.clip(start[:, None] + np.arange(count)[None], 0, x.shape[1] - 1)  # (B, count)
    return x[np.arange(x.shape[0])[:, None], idx]


class Model:
    """The acoustic model: conv front-end -> stacked GRU -> optional lookahead -> CTC head,
    one ONNX Runtime session of the graph onnx_graph.py builds.

    graph: the serialized ONNX model; fbank: the mel filterbank (201, 80) the model's features
    are made with; card: the model card; source: the file it came from (the card's language
    model is relative to it); threads: CPU threads for the session (1, as sherpa-onnx: a
    streaming step is too small to share, and many streams are better batched).
    """

    def __init__(self, cfg: ModelConfig, graph: bytes, fbank: np.ndarray, card: dict | None = None,
                 source: str | None = None, threads: int = 1):
        import onnxruntime as ort  # imported here: `asr --help` and the file readers need none of it

        self.cfg = cfg
        self.fbank = np.asarray(fbank, np.float64)
        self.card = dict(card or {})
        self.source = source
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no notes about unused initializers on stderr
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph kinds
            raise ModelError(f"{source or 'model'}: its ONNX graph does not load ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.dims = cfg.hidden_size * (2 if cfg.bidirectional else 1)  # D

    # ------------------------------------------------------------------ features and state
    def features(self, samples: np.ndarray) -> np.ndarray:
        """16 kHz mono samples (n,) -> the features this model reads (T, input_dim) float32: our
        log-mel, or Whisper's (whose clamp to 8 below the maximum is per call: call it per window)."""
        if self.cfg.whisper:
            return whisper.log_mel(samples, self.fbank)
        return log_mel(samples, self.fbank)

    @property
    def max_frames(self) -> int | None:
        """Most feature frames one whole-utterance call takes (a Whisper encoder's context), or None."""
        return 2 * self.cfg.encoder_dims[1] if self.cfg.whisper else None

    def log_probs(self, samples: np.ndarray) -> np.ndarray:
        """The whole-utterance pass over samples (n,) -> log-probs (U, V); audio longer than the
        model's context (a Whisper front-end's 30 s) goes through in pieces of that length."""
        step = (self.max_frames or 0) * whisper.HOP_LENGTH
        pieces = [samples[i:i + step] for i in range(0, len(samples), step)] if step else [samples]
        out = []
        for piece in pieces:
            feats = self.features(piece)
            if len(feats):
                lp, n = self(feats[None], np.array([len(feats)]))
                out.append(lp[0, : int(n[0])])
        return np.concatenate(out) if out else np.zeros((0, self.cfg.vocab_size), np.float32)

    def log_mel_frames(self, frames: np.ndarray) -> np.ndarray:
        """Analysis windows (k, N_FFT) float64 -> this model's log-mel features (k, 80) float32."""
        return log_mel_frames(frames, self.fbank)

    def init_state(self, batch_size: int = 1) -> StreamState:
        cfg = self.cfg
        chans = [cfg.n_mels] + [cfg.conv_channels] * len(cfg.conv_strides)
        conv = [np.zeros((batch_size, c, cfg.conv_kernel - s), np.float32) for s, c in zip(cfg.conv_strides, chans)
                ] if not cfg.whisper else []
        dirs = 2 if cfg.bidirectional else 1
        gru = np.zeros((cfg.num_layers * dirs, batch_size, cfg.hidden_size), np.float32)
        ahead = np.zeros((batch_size, cfg.lookahead, self.dims), np.float32)
        return StreamState(conv, gru, ahead, np.zeros(batch_size, np.int64))

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        """Whole-utterance output frames for feature lengths (B,)."""
        if self.cfg.whisper:
            return whisper.output_frames(lengths)
        for s in self.cfg.conv_strides:
            lengths = lengths // s
        return lengths

    # ------------------------------------------------------------------ passes
    def __call__(self, feats: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whole utterances, either direction. feats (B, T, 80) log-mel, lengths (B,) ->
        log-probs (B, U, V), lengths (B,)."""
        feats = np.asarray(feats, np.float32)
        log_probs, out_lengths, _ = self._step(feats, lengths, self.init_state(feats.shape[0]), True)
        return log_probs, out_lengths

    def infer(self, feats: np.ndarray, lengths: np.ndarray, state: StreamState, final: bool = False
              ) -> tuple[np.ndarray, np.ndarray, StreamState]:
        """One streaming step. feats (B, T, 80) with lengths (B,) new frames per stream, each a
        multiple of `cfg.subsampling` unless final; -> (log-probs (B, U', V) of the newly
        emitted output frames, their counts (B,), the next state). With final=True the
        remaining lookahead is flushed, as at the end of the whole-utterance pass.
        """
        if not self.cfg.streaming:
            raise ValueError("a bidirectional model cannot stream; use a unidirectional model")
        return self._step(feats, lengths, state, final)

    def _step(self, feats: np.ndarray, lengths: np.ndarray, state: StreamState, final: bool):
        feats = np.ascontiguousarray(feats, np.float32)
        lengths = np.asarray(lengths, np.int64).reshape(-1)
        B, T, _ = feats.shape
        if self.max_frames and T > self.max_frames:
            raise ValueError(f"{T} feature frames exceed the model's context of {self.max_frames} (30 s): cut the audio")
        if T < self.cfg.subsampling:  # the graph wants a window for every conv: pad past the lengths
            feats = np.pad(feats, ((0, 0), (0, self.cfg.subsampling - T), (0, 0)))
        feeds = {"feats": feats, "lengths": lengths, "gru": state.gru}
        feeds.update((f"conv_{i}", c) for i, c in enumerate(state.conv))
        k = self.cfg.lookahead
        if k:
            feeds["ahead"] = state.ahead
        out = dict(zip(self.outputs, self.session.run(self.outputs, feeds)))
        conv = [out[f"conv_{i}_out"] for i in range(len(state.conv))]
        lengths = self.output_lengths(lengths)
        if not k:
            return out["log_probs"], lengths, StreamState(conv, out["gru_out"], state.ahead, state.ahead_fill)
        # Row p of log_probs is the output at position p of [ahead (k), new outputs]: a stream
        # emits from its first real pending output, up to its last one with k successors
        # (or, when final, with the k zeros the whole-utterance pass pads the end with).
        start = k - state.ahead_fill
        counts = np.maximum((lengths + k if final else lengths) - start, 0)
        log_probs = _gather_rows(out["log_probs"], start, int(counts.max()) if B else 0)
        fill = np.minimum(state.ahead_fill + lengths, k)
        return log_probs, counts, StreamState(conv, out["gru_out"], out["ahead_out"], fill)


# ---------------------------------------------------------------------------- files
def write_model_file(path: str | os.PathLike, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a runtime model file: the arrays and the JSON `meta`, atomically (a temporary file
    in the same folder renamed over path), readable by everyone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), np.uint8), **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def is_runtime_file(path: str | os.PathLike) -> bool:
    """True for a runtime model file (a zip archive with a "meta" entry), else False."""
    try:
        with zipfile.ZipFile(path) as z:
            return "meta.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a runtime model file; ModelError (one line) for anything else."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such model file")
    if not is_runtime_file(path):
        raise ModelError(f"{path}: not an asr runtime model file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ModelError(f"{path}: corrupt model file ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path}: not an asr runtime model file")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise ModelError(f"{path}: format version {meta.get('version')} is newer than this asr reads ({VERSION}); "
                         "upgrade asr")
    if list(meta.get("vocab", [])) != list(VOCAB):
        raise ModelError(f"{path}: its vocabulary differs from this version's")
    features = meta.get("features", {})
    expected = features_of(meta.get("config", {}))
    if any(features.get(k) != v for k, v in expected.items()):
        raise ModelError(f"{path}: its feature settings {features} differ from this version's {expected}")
    n_mels = (meta.get("config", {}).get("encoder_dims") or [N_MELS])[0]
    for name, shape in (("onnx", None), ("mel_fbank", (N_FREQS, n_mels))):
        if name not in arrays or (shape and arrays[name].shape != shape):
            raise ModelError(f"{path}: corrupt model file (no {name}" + (f" of shape {shape})" if shape else ")"))
    return meta, arrays


def features_of(config: dict) -> dict:
    """The feature settings a model of this config (a dict) must have been made with."""
    return whisper.FEATURES if config.get("frontend") == "whisper" else FEATURES


def bundled_model_path(name: str = "streaming", files: dict[str, str] = BUNDLED) -> Path | None:
    """A bundled model by name (a key of `files`: BUNDLED, the runtime files), or None when this
    installation does not have it."""
    path = Path(str(resources.files("asr") / "models" / files[name]))
    return path if path.is_file() else None


def default_model_path(offline: bool = False, files: dict[str, str] = BUNDLED) -> Path | None:
    """The bundled default model: the offline one when asked for and bundled, else the streaming
    one; None when this installation has neither."""
    return (offline and bundled_model_path("offline", files)) or bundled_model_path("streaming", files)


def resolve_model(spec: str | os.PathLike | None, offline: bool = False, files: dict[str, str] = BUNDLED) -> Path:
    """--model's value (a bundled model's name, a path, or None for the default) as a file path;
    a bundled model's file from `files` (BUNDLED: its runtime file)."""
    if spec is None:
        path = default_model_path(offline, files)
        if path is None:
            raise ModelError("no default model is bundled with this installation; pass --model PATH "
                             "(train one with `asr train`, see recipes/)")
        return path
    if str(spec) in files and not os.path.exists(spec):
        path = bundled_model_path(str(spec), files)
        if path is None:
            raise ModelError(f"{spec}: this installation has no bundled {spec} model")
        return path
    return Path(spec)


def load_model(spec: str | os.PathLike | None = None, offline: bool = False, threads: int = 1) -> Model:
    """Load a runtime model to run: a runtime model file, a bundled model's name ("streaming",
    "offline"), or None for the bundled default (the offline model where offline=True and one is
    bundled, else the streaming one), on `threads` CPU threads. Raises ModelError (one line).
    export.load_model also takes torch model files."""
    return load(resolve_model(spec, offline), threads)


def load(path: str | os.PathLike, threads: int = 1) -> Model:
    """Load a runtime model file on `threads` CPU threads (numpy and ONNX Runtime only)."""
    path = os.fspath(path)
    return from_file_form(*read_model_file(path), path, threads)


def from_file_form(meta: dict, arrays: dict[str, np.ndarray], source: str | None = None, threads: int = 1) -> Model:
    """A Model of a runtime file's (meta, arrays), as read_model_file gives them (or export.runtime_form)."""
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (KeyError, ValueError, TypeError) as err:
        raise ModelError(f"{source or 'model'}: corrupt model file (config: {err})") from None
    return Model(cfg, arrays["onnx"].tobytes(), arrays["mel_fbank"], meta.get("card", {}), source, threads)
