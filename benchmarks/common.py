"""What the benchmark scripts share: real speech of any length, and the model to measure."""
import os
import sys

import numpy as np
import torch

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)

from asr.audio import SAMPLE_RATE, load_audio  # noqa: E402
from asr.checkpoint import default_model_path, load_model  # noqa: E402
from asr.model import AcousticModel, ModelConfig  # noqa: E402

SPEECH = os.path.join(REPO, "tests", "data", "cathy", "audio")


def speech(seconds: float) -> np.ndarray:
    """Real speech (the test clips, repeated) of the given length, 16 kHz mono float32."""
    x = np.concatenate([load_audio(os.path.join(SPEECH, f)) for f in sorted(os.listdir(SPEECH))])
    return np.tile(x, int(np.ceil(seconds * SAMPLE_RATE / len(x))))[: int(seconds * SAMPLE_RATE)]


def get_model(path: str | None):
    """(model, description): the model file given, else the bundled default model, else a
    randomly initialised model of the default configuration (the same cost)."""
    if path:
        return load_model(path), path
    if default_model_path():
        return load_model(None), str(default_model_path(torch_file=True))
    torch.manual_seed(0)
    return AcousticModel(ModelConfig()).eval(), "random weights, default config ModelConfig()"
