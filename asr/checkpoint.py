"""One file is the whole model: config, vocabulary, feature settings, normalisation stats
(buffers in the state dict), weights, and a model card. Saved atomically, loaded safely."""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import torch

from .audio import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE
from .model import AcousticModel, ModelConfig
from .text import VOCAB

FORMAT = "asr-gru-ctc"
VERSION = 1
FEATURES = {"type": "log-mel", "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH,
            "n_mels": N_MELS, "f_min": 20.0, "log_floor": 1e-10}
DEFAULT_MODEL = "default.pt"  # inside asr/models/
# The bundled models by name (--model NAME): the streaming model serves live audio; the offline
# (bidirectional) one, where bundled, is what `asr transcribe` uses for files unless --stream.
BUNDLED = {"streaming": DEFAULT_MODEL, "offline": "default-bi.pt"}


class ModelError(Exception):
    """A model file that is missing or cannot be used."""


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def model_payload(model: AcousticModel, card: dict | None = None, half: bool = False) -> dict:
    state = {k: (v.half() if half and v.is_floating_point() and not k.startswith("feat_") else v).detach().cpu()
             for k, v in model.state_dict().items()}
    return {"format": FORMAT, "version": VERSION, "config": asdict(model.cfg), "vocab": list(VOCAB),
            "features": dict(FEATURES), "state_dict": state, "card": dict(card or {})}


def save_model(model: AcousticModel, path: str | os.PathLike, card: dict | None = None, half: bool = False) -> None:
    """Write the whole model to one file. half=True stores weights as float16 (half the size)."""
    atomic_save(model_payload(model, card, half), path)


def bundled_model_path(name: str = "streaming") -> Path | None:
    """A bundled model by name (BUNDLED), or None when this installation does not have it."""
    path = Path(str(resources.files("asr") / "models" / BUNDLED[name]))
    return path if path.is_file() else None


def default_model_path(offline: bool = False) -> Path | None:
    """The bundled default model: the offline one when asked for and bundled, else the streaming
    one; None when this installation has neither."""
    return (offline and bundled_model_path("offline")) or bundled_model_path("streaming")


def resolve_model(spec: str | os.PathLike | None, offline: bool = False) -> Path:
    """--model's value (a bundled model's name, a path, or None for the default) as a file path."""
    if spec is None:
        path = default_model_path(offline)
        if path is None:
            raise ModelError("no default model is bundled with this installation; pass --model PATH "
                             "(train one with `asr train`, see recipes/)")
        return path
    if str(spec) in BUNDLED and not os.path.exists(spec):
        path = bundled_model_path(str(spec))
        if path is None:
            raise ModelError(f"{spec}: this installation has no bundled {spec} model")
        return path
    return Path(spec)


def read_payload(path: str | os.PathLike) -> dict:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise ModelError(f"{path}: not a model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not an asr model file")
    return payload


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               offline: bool = False) -> AcousticModel:
    """Load a model in eval mode on device: a file, a bundled model's name ("streaming",
    "offline"), or None for the bundled default (the offline model where offline=True and one is
    bundled, else the streaming one)."""
    path = resolve_model(path, offline)
    payload = read_payload(path)
    # A training checkpoint is a model file with a "training" entry besides: it loads the same.
    if list(payload["vocab"]) != list(VOCAB):
        raise ModelError(f"{path}: its vocabulary differs from this version's")
    feats = payload["features"]
    if any(feats.get(k) != v for k, v in FEATURES.items()):
        raise ModelError(f"{path}: its feature settings {feats} differ from this version's {FEATURES}")
    model = AcousticModel(ModelConfig.from_dict(payload["config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    model.card = payload.get("card", {})
    model.source = os.fspath(path)
    return model.to(device).eval()
