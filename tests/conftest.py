"""Shared fixtures: real audio (eight CC0 Cathy clips) and a tiny model that knows them."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent

torch.set_num_threads(1)  # the suite runs on 2 cores beside other work; keep runs predictable


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def cathy_manifest() -> Path:
    return DATA / "cathy" / "manifest.tsv"


@pytest.fixture(scope="session")
def cathy_clips(cathy_manifest) -> list[tuple[Path, str]]:
    """[(audio path, normalised transcript)] for the eight test clips."""
    from asr.text import normalize
    with open(cathy_manifest, newline="") as f:
        return [(DATA / "cathy" / r["path"], normalize(r["text"])) for r in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    return DATA / "tiny_uni.pt"


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    """The tiny model as the commands run it: on the runtime (exported in memory)."""
    from asr.export import load
    return load(tiny_model_path)


@pytest.fixture(scope="session")
def tiny_torch_model(tiny_model_path):
    """The tiny model in torch, the reference the runtime is checked against."""
    from asr.checkpoint import load_model
    return load_model(tiny_model_path)


def run_cli(*args, cwd=None, timeout=300, input=None) -> subprocess.CompletedProcess:
    """Run `python -m asr ARGS...` as a user would; returns the completed process."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env, input=input)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_live_model_path() -> Path:
    """Like tiny_uni.pt, but also trained on the clips with silent gaps around and between them,
    so it outputs blanks in pauses: for live tests (make_live_model.py)."""
    return DATA / "tiny_live.pt"


@pytest.fixture(scope="session")
def tiny_live_model(tiny_live_model_path):
    from asr.export import load
    return load(tiny_live_model_path)
