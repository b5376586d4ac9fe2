"""The torch/torchaudio pair that training and export need (the `train` extra), checked before
anything imports them. Transcribing needs neither: it runs on the runtime (runtime.py).

torchaudio's compiled extension loads only into the torch release it was built against
(torchaudio 2.11.1 needs a symbol that torch 2.11.0 lacks), and a mismatched pair fails in the
first `import torchaudio` with a long traceback. `require_torch()`, called by the commands that
need torch (`asr train`, `asr export`), turns that into one line naming the installed versions
and the pip command that installs the pair pyproject.toml pins; where torch is not installed at
all, one line saying how to install the train extra. The `asr` command prints it and exits 2; a
library caller gets ImportError with it.

Only the standard library is used here, so that `python -P asr/deps.py` checks an environment
without importing the package (scripts/setup.sh and .ci/run do; -P keeps asr/ off sys.path).
"""
from __future__ import annotations

import os
import re
import shlex
import sys

EXIT_USAGE = 2
PAIR = ("torch", "torchaudio")


def installed_version(name: str) -> str | None:
    import importlib.metadata  # here: `asr --help` need not wait for it
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _requirements() -> list[str]:
    """asr's own requirements, the train extra's included: pyproject.toml's in a checkout (fresh
    even when the installed metadata is older), else the installed package's metadata."""
    pyproject = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
    if os.path.isfile(pyproject):
        import tomllib
        with open(pyproject, "rb") as f:
            project = tomllib.load(f).get("project", {})
        return project.get("dependencies", []) + project.get("optional-dependencies", {}).get("train", [])
    import importlib.metadata
    try:
        return importlib.metadata.requires("asr") or []
    except importlib.metadata.PackageNotFoundError:
        return []


def pinned_pair() -> list[str]:
    """The exact torch and torchaudio requirements asr is tested with (pyproject.toml pins them),
    e.g. ["torch==2.11.0", "torchaudio==2.11.0"]; bare names where none is found."""
    pins = {}
    for req in _requirements():
        m = re.match(r"\s*(torch|torchaudio)\s*==\s*([\w.*+]+)\s*(;|$)", req)
        if m:
            pins[m.group(1)] = f"{m.group(1)}=={m.group(2)}"
    return [pins.get(name, name) for name in PAIR]


def fix_command() -> str:
    """The command that installs the pinned pair into this Python's environment."""
    return " ".join([shlex.quote(sys.executable), "-m", "pip", "install", *pinned_pair()])


def _reason(err: BaseException) -> str:
    """The innermost cause of an import failure, on one line, paths cut to file names:
    'libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace'."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return re.sub(r"(?:/[^/\s:]+)+/([^/\s:]+)", r"\1", text)


TRAIN_EXTRA = "install the train extra: bash scripts/setup.sh --train, or pip install -e '.[train]' in a checkout"


def torch_problem(what: str = "this") -> str | None:
    """None when torch and torchaudio import together; else one line saying which of them fails
    to load, with which installed versions, why, and the command that fixes it. what: who needs
    torch, for the message where it is not installed at all ("asr train")."""
    torch_v, audio_v = installed_version("torch"), installed_version("torchaudio")
    if torch_v is None:
        return f"{what} needs torch, which is not installed here (transcribing does not); {TRAIN_EXTRA}"
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as err:
        what = f"torch {torch_v} cannot be imported" if torch_v else "torch is not installed"
        return f"{what} ({_reason(err)}); install the pair asr is tested with: {fix_command()}"
    try:
        import torchaudio  # noqa: F401  (loads its compiled extension into this torch)
    except (ImportError, OSError) as err:
        what = (f"torchaudio {audio_v} does not load with torch {torch_v}" if audio_v
                else f"torchaudio is not installed beside torch {torch_v}")
        return f"{what} ({_reason(err)}); install the pair asr is tested with: {fix_command()}"
    return None


def running_as_cli() -> bool:
    """True in the `asr` command (its console script, `python -m asr`) and `python asr/deps.py`.
    While `-m asr` imports the package, sys.argv[0] is still '-m': sys.orig_argv tells."""
    if os.path.basename(sys.argv[0]) in ("asr", "deps.py"):
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(a == "-m" and b == "asr" for a, b in zip(argv, argv[1:]))


def require_torch(what: str = "this") -> None:
    """Return if torch and torchaudio load together; else print the one-line problem and exit 2
    when running as the `asr` command, or raise ImportError with it when imported as a library."""
    problem = torch_problem(what)
    if problem is None:
        return
    if running_as_cli():
        print(f"asr: error: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE)
    raise ImportError(problem)


if __name__ == "__main__":
    require_torch()
    print(f"torch {installed_version('torch')} and torchaudio {installed_version('torchaudio')} load together")
