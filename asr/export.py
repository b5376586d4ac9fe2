"""`asr export CHECKPOINT -o MODEL`: a torch model file or training checkpoint -> a runtime
model file (runtime.py's format), which loads and runs without torch; and the same in memory:
`load` / `load_model` take a model file of either form (a torch one is exported as it loads,
where torch and onnx are installed), `as_runtime` a torch model object.

The weights and normalisation statistics go into an ONNX graph (onnx_graph.py), in the
precision they were saved in (a float16 model stays float16 and half the size); the file
also carries the mel filterbank the features were made with (torchaudio's), the config,
vocabulary, feature settings and the model card. Only export itself needs torch. A card
that names a language model names it relative to the model's folder: the LM (and its .vocab)
is copied beside the exported file when it is not there already, so the link still holds.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import zipfile

from .runtime import FEATURES, FORMAT, VERSION, Model, ModelError, from_file_form, is_runtime_file, read_model_file, \
    resolve_model, write_model_file

# numpy, torch, checkpoint.py and the graph builder are imported where used: the runtime's
# commands import this module (for torch model files given as --model) and run without torch.


def runtime_form(model, half: bool = False, int8: bool = False) -> tuple[dict, dict]:
    """(meta, arrays) of a runtime model file for a torch AcousticModel; half=True stores the
    weights (not the normalisation statistics) as float16; int8=True the graph with its large
    products in int8 (onnx_graph.build_int8; the weights' float16 rounding kept first, so that an
    int8 export of a half model is that model's, quantised). meta["int8"] says which."""
    from dataclasses import asdict

    import numpy as np
    import torch

    from . import onnx_graph
    from .features import _FBANK
    from .runtime import features_of
    from .text import VOCAB
    weights = {}
    for name, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point() and not name.startswith("feat_"):
            value = value.half()
        weights[name] = value.numpy()
    graph = onnx_graph.build_int8(model.cfg, weights) if int8 else onnx_graph.build(model.cfg, weights)
    arrays = {"onnx": np.frombuffer(graph, np.uint8),
              "mel_fbank": (model.whisper_fbank if model.cfg.whisper else _FBANK).to(torch.float32).numpy()}
    # (201, 80): torchaudio's filterbank exactly, or Whisper's for a model with its front-end
    meta = {"format": FORMAT, "version": VERSION, "config": asdict(model.cfg), "vocab": list(VOCAB),
            "features": dict(features_of(asdict(model.cfg))), "parameters": model.num_parameters(),
            "card": dict(getattr(model, "card", {}) or {}), "int8": int8}
    return meta, arrays


def export(checkpoint: str | os.PathLike, output: str | os.PathLike, int8: bool = False) -> list[str]:
    """Convert a torch model file to a runtime model file at output (int8: its large products in
    int8, runtime_form); returns the paths written (the model, and the card's language model
    files when they had to be copied beside it)."""
    import torch

    from .checkpoint import load_model, read_payload
    if is_runtime_file(checkpoint):
        raise ModelError(f"{checkpoint}: already a runtime model file; `asr export` converts a torch model file (.pt)")
    payload = read_payload(checkpoint)
    model = load_model(checkpoint)
    half = any(v.dtype == torch.float16 for v in payload["state_dict"].values())
    meta, arrays = runtime_form(model, half=half, int8=int8)
    written = []
    lm = meta["card"].get("lm")
    if isinstance(lm, dict) and lm.get("file"):
        src_dir, dst_dir = os.path.dirname(os.path.abspath(checkpoint)), os.path.dirname(os.path.abspath(output))
        for name in (lm["file"], lm["file"] + ".vocab"):
            src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, name)
            if not os.path.exists(src):
                if name == lm["file"]:
                    raise ModelError(f"{checkpoint}: its card names the language model {name}, which is not beside it")
                continue
            if os.path.exists(dst) and (os.path.samefile(src, dst) or filecmp.cmp(src, dst, shallow=False)):
                continue  # already there
            if os.path.exists(dst):
                raise ModelError(f"{dst} exists and is not {checkpoint}'s language model {src}; "
                                 "export into another folder")
            os.makedirs(dst_dir, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(dst)
    write_model_file(output, meta, arrays)
    return [os.fspath(output)] + written


def as_runtime(model) -> Model:
    """A runtime Model as it is, or a torch AcousticModel converted to one in memory (with
    torch and onnx; its card and source carried over)."""
    if isinstance(model, Model):
        return model
    return from_file_form(*runtime_form(model), getattr(model, "source", None))


def load_model(spec: str | os.PathLike | None = None, offline: bool = False, threads: int = 1) -> Model:
    """runtime.load_model that also takes a torch model file (exported in memory): a model file of
    either form, a bundled model's name, or None for the bundled default. Raises ModelError (one line)."""
    return load(resolve_model(spec, offline), threads)


def load(path: str | os.PathLike, threads: int = 1) -> Model:
    """Load a model file on `threads` CPU threads: a runtime file (numpy and ONNX Runtime
    only), or a torch .pt model file or training checkpoint (that needs torch and onnx, as
    training does: it is exported in memory)."""
    path = os.fspath(path)
    form = _export_torch_file(path) if _is_torch_file(path) else read_model_file(path)
    return from_file_form(*form, path, threads)


def _is_torch_file(path: str) -> bool:
    """True for what torch.save writes: a zip archive holding a data.pkl."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.endswith("data.pkl") for name in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _export_torch_file(path: str) -> tuple[dict, dict]:
    try:
        import torch  # noqa: F401
        import onnx  # noqa: F401

        from .checkpoint import load_model
    except ImportError as err:
        raise ModelError(f"{path}: a torch model file, and {err.name or 'torch'} is not installed here; convert it with "
                         "`asr export` where torch and onnx are (pip install 'asr[train]')") from None
    return runtime_form(load_model(path))
