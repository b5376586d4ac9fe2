"""One file is the whole model: config, vocabulary, feature settings, normalisation stats
(buffers in the state dict), weights, and a model card. Saved atomically, loaded safely."""
from __future__ import annotations

import math
import os
import pickle
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from . import runtime
from .runtime import BUNDLED, DEFAULT_MODEL, ModelError, features_of  # noqa: F401 (one error type for model files of either form)
from .text import VOCAB

if TYPE_CHECKING:
    import torch

    from .model import AcousticModel
# torch and the model are imported where they are used, so that `asr models` (peek_payload) runs without torch.

FORMAT = "asr-gru-ctc"
VERSION = 1
# The bundled models by name: their runtime files are runtime.BUNDLED; each is exported from the
# torch model file of the same name here, which training starts from (init_from=).
BUNDLED_TORCH = {"streaming": "default.pt", "offline": "default-bi.pt"}


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over path."""
    import torch
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
            "features": dict(features_of(asdict(model.cfg))), "state_dict": state, "card": dict(card or {})}


def save_model(model: AcousticModel, path: str | os.PathLike, card: dict | None = None, half: bool = False) -> None:
    """Write the whole model to one file. half=True stores weights as float16 (half the size)."""
    atomic_save(model_payload(model, card, half), path)


def bundled_model_path(name: str = "streaming", torch_file: bool = False) -> Path | None:
    """A bundled model by name (BUNDLED; torch_file=True: its torch model file, BUNDLED_TORCH), or None
    when this installation does not have it."""
    return runtime.bundled_model_path(name, BUNDLED_TORCH if torch_file else BUNDLED)


def default_model_path(offline: bool = False, torch_file: bool = False) -> Path | None:
    """runtime.default_model_path; torch_file=True: its torch model file."""
    return runtime.default_model_path(offline, BUNDLED_TORCH if torch_file else BUNDLED)


def resolve_model(spec: str | os.PathLike | None, offline: bool = False, torch_file: bool = False) -> Path:
    """runtime.resolve_model; torch_file=True: a bundled model's torch model file."""
    return runtime.resolve_model(spec, offline, BUNDLED_TORCH if torch_file else BUNDLED)


def read_payload(path: str | os.PathLike) -> dict:
    import torch
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
    """Load the torch model (the training and reference form) in eval mode on device: a .pt file,
    a bundled model's name ("streaming", "offline"), or None for the bundled default (the offline
    model where offline=True and one is bundled, else the streaming one). The commands run the
    runtime's form instead (runtime.load_model)."""
    path = resolve_model(path, offline, torch_file=True)
    payload = read_payload(path)
    # A training checkpoint is a model file with a "training" entry besides: it loads the same.
    if list(payload["vocab"]) != list(VOCAB):
        raise ModelError(f"{path}: its vocabulary differs from this version's")
    feats = payload["features"]
    expected = features_of(payload["config"])
    if any(feats.get(k) != v for k, v in expected.items()):
        raise ModelError(f"{path}: its feature settings {feats} differ from this version's {expected}")
    from .model import AcousticModel, ModelConfig
    model = AcousticModel(ModelConfig.from_dict(payload["config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    model.card = payload.get("card", {})
    model.source = os.fspath(path)
    return model.to(device).eval()


class _Shape:
    """A tensor of a model file as peek_payload reads it: its shape only."""

    def __init__(self, size):
        self.shape = tuple(size)

    def numel(self) -> int:
        return math.prod(self.shape)


class _ShapeUnpickler(pickle.Unpickler):
    """torch.save's pickle with tensors read as their shapes, and no other globals than a model file holds."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, *rest: _Shape(size)
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a model file")

    def persistent_load(self, pid):
        return None  # the storage: its bytes are not read


def peek_payload(path: str | os.PathLike) -> dict:
    """read_payload without torch, for `asr models` (it answers in a blink): the same dict, with
    each tensor read as its shape (`.shape`, `.numel()`), not its values. A file holding more than
    a model file does (a training checkpoint's optimiser state) is read with torch instead.
    Raises ModelError (one line) for anything that is not a model file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl"))
            with z.open(name) as f:
                payload = _ShapeUnpickler(f).load()
    except pickle.UnpicklingError:
        return read_payload(path)
    except (OSError, zipfile.BadZipFile, StopIteration, EOFError, ValueError, TypeError) as err:
        raise ModelError(f"{path}: not a model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not an asr model file")
    return payload
