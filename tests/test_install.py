"""The installed environment: the lock, a torch/torchaudio pair that does not load, the KenLM
tools' absence, and setup's wait for apt's locks."""
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).parent.parent
LOCK = REPO / "constraints.txt"
SAMPLE = REPO / "asr" / "samples" / "cathy_a0046.flac"


def pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def requirements(extras=("dev", "train")) -> list[Requirement]:
    project = pyproject()
    reqs = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    return [Requirement(r) for r in reqs]


def lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = version.strip()
    return pins


# --------------------------------------------------------------------------- the lock
def test_torch_and_torchaudio_are_pinned_as_one_pair_in_pyproject_and_the_lock():
    for extra in ("train", "dev"):  # training and the tests' reference; transcribing needs no torch
        reqs = [Requirement(r) for r in pyproject()["optional-dependencies"][extra]]
        pins = {r.name: str(r.specifier) for r in reqs if r.name in ("torch", "torchaudio")}
        assert pins == {"torch": "==2.11.0", "torchaudio": "==2.11.0"}, extra
    assert not [r for r in requirements(()) if r.name in ("torch", "torchaudio")]
    assert lock()["torch"] == "2.11.0" and lock()["torchaudio"] == "2.11.0"


def test_the_lock_pins_every_requirement_within_pyprojects_ranges():
    pins = lock()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is required by pyproject.toml but not in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject.toml's {req}"


def test_installed_packages_are_at_the_locked_versions():
    """The suite runs on the lock (scripts/setup.sh --dev installs it): a package that drifted
    from it means these results say nothing about what users get."""
    drifted = []
    for name, version in lock().items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra not installed here (e.g. train's tensorboard)
        if have != version:
            drifted.append(f"{name} {have} (lock: {version})")
    assert not drifted, f"not the locked versions: {', '.join(drifted)}; run bash scripts/setup.sh --dev"


def test_setup_and_ci_install_from_the_lock():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    installs = [line for line in setup.splitlines() if re.search(r"pip install .*-e ", line)]
    assert installs and all('-c "$lock"' in line for line in installs), installs
    assert re.search(r"^lock=constraints\.txt$", setup, re.M)
    assert "scripts/setup.sh --dev" in (REPO / ".ci" / "run").read_text()


def test_setup_dev_installs_what_the_skipping_tests_need():
    """The browser and microphone tests skip where their programs are missing: setup.sh --dev
    (which CI runs) installs them all, so that there they run."""
    setup = (REPO / "scripts" / "setup.sh").read_text()
    dev = re.search(r'^if \[ "\$dev" = 1 \]; then packages\+=\(([^)]*)\); fi$', setup, re.M)
    assert dev, "setup.sh: no line adding the --dev system packages"
    needed = {"pulseaudio", "pulseaudio-utils", "libasound2-plugins", "chromium", "chromium-driver", "firefox-esr"}
    assert needed <= set(dev.group(1).split()), needed - set(dev.group(1).split())


# --------------------------------------------------------------------------- a broken torch pair
@pytest.fixture
def broken_torchaudio(tmp_path) -> dict:
    """An environment in which torchaudio 2.11.1 stands first on the path and fails to load its
    extension into the installed torch exactly as the real one does."""
    pkg = tmp_path / "torchaudio"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""\
        import torch
        try:
            raise OSError("/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: "
                          "undefined symbol: torch_exception_get_what_without_backtrace")
        except OSError as e:
            raise OSError("Could not load this library: /venv/torchaudio/lib/libtorchaudio.so") from e
        """))
    meta = tmp_path / "torchaudio-2.11.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: torchaudio\nVersion: 2.11.1\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))


def assert_one_clear_line(out: subprocess.CompletedProcess, prefix: str = "asr: error: "):
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    torch_version = importlib.metadata.version("torch")
    assert line.startswith(prefix), line
    assert f"torchaudio 2.11.1 does not load with torch {torch_version}" in line
    assert "undefined symbol: torch_exception_get_what_without_backtrace" in line
    assert line.endswith("-m pip install torch==2.11.0 torchaudio==2.11.0"), line
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.parametrize("argv", [["train", "--config", "x.yaml"], ["export", "model.pt", "-o", "model.npz"]])
def test_a_torch_pair_that_does_not_load_is_one_line_and_exit_2(broken_torchaudio, argv, tmp_path):
    out = subprocess.run([sys.executable, "-m", "asr", *argv], capture_output=True, text=True,
                         env=broken_torchaudio, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert_one_clear_line(out)


def test_the_asr_command_reports_a_broken_pair_the_same_way(broken_torchaudio, tmp_path):
    script = Path(sys.executable).parent / "asr"
    if not script.is_file():
        pytest.skip("the asr console script is not installed beside this Python")
    out = subprocess.run([str(script), "export", "model.pt", "-o", "model.npz"], capture_output=True, text=True,
                         env=broken_torchaudio, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert_one_clear_line(out)
    # what needs no torch works all the same: the cards, and transcribing
    out = subprocess.run([str(script), "models"], capture_output=True, text=True, env=broken_torchaudio, timeout=120)
    assert out.returncode == 0 and "M parameters" in out.stdout, out.stderr
    out = subprocess.run([str(script), "transcribe", str(SAMPLE), "--no-lm"], capture_output=True, text=True,
                         env=broken_torchaudio, timeout=120)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr


def test_importing_asr_with_a_broken_pair_works_and_the_torch_names_raise_the_line(broken_torchaudio):
    out = subprocess.run([sys.executable, "-c", "import asr; print(asr.load_model().cfg.streaming); asr.AcousticModel"],
                         capture_output=True, text=True, env=broken_torchaudio, cwd=REPO, timeout=120)
    assert out.returncode == 1 and out.stdout == "True\n", out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: torchaudio 2.11.1 does not load with torch"), last


@pytest.mark.parametrize("command", ["train", "export"])
def test_train_and_export_without_torch_say_how_to_install_it(command, monkeypatch, capsys):
    """Where torch is not installed (a runtime-only install), the commands that need it say in one
    line how to install the train extra, and exit 2."""
    from asr import cli, deps
    real = deps.installed_version
    monkeypatch.setattr(deps, "installed_version", lambda name: None if name == "torch" else real(name))
    argv = ["train", "--config", "x.yaml"] if command == "train" else ["export", "m.pt", "-o", "m.npz"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"asr: error: asr {command} needs torch, which is not installed")
    assert "scripts/setup.sh --train" in err and ".[train]" in err


def test_the_environment_check_passes_here_and_fails_on_a_broken_pair(broken_torchaudio):
    ok = subprocess.run([sys.executable, "-P", "asr/deps.py"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == (f"torch {importlib.metadata.version('torch')} and torchaudio "
                                 f"{importlib.metadata.version('torchaudio')} load together")
    bad = subprocess.run([sys.executable, "-P", "asr/deps.py"], capture_output=True, text=True, cwd=REPO,
                         env=broken_torchaudio, timeout=120)
    assert bad.returncode == 2
    assert_one_clear_line(bad)


# --------------------------------------------------------------------------- KenLM's tools
@pytest.mark.parametrize("argv", [["lm", "build", "README.md", "-o", "{tmp}/lm.arpa"],
                                  ["lm", "binary", "README.md", "-o", "{tmp}/lm.bin"]])
def test_lm_commands_without_kenlms_tools_say_how_to_build_them(argv, monkeypatch, capsys, tmp_path):
    import asr.lm
    from asr.cli import main
    monkeypatch.setattr(asr.lm, "kenlm_tool", lambda name: None)
    monkeypatch.chdir(REPO)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.fullmatch(r"asr: error: (lmplz|build_binary) \(KenLM's [a-z ]+\) is not installed: build it once "
                        r"with `bash scripts/install-kenlm-tools.sh( \S+)?` .*", err[0]), err[0]
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- apt's locks
LOCKED = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)"


def run_apt_install(tmp_path, locked_calls: int, wait: int = 30) -> subprocess.CompletedProcess:
    """apt_install of a missing package with a stand-in apt-get (and sudo) that reports the
    lock as held for its first `locked_calls` calls and then succeeds; its calls go to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$*" >> {tmp_path}/calls.log
        n=$(wc -l < {tmp_path}/calls.log)
        if [ "$n" -le {locked_calls} ]; then echo "{LOCKED}" >&2; exit 100; fi
        """))
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_APT_WAIT=str(wait),
               ASR_APT_RETRY_S="0.1")
    return subprocess.run(["bash", "-c", "set -euo pipefail; source scripts/apt.sh; apt_install asr-test-no-such-package"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_apt_install_waits_while_another_apt_holds_the_lock(tmp_path):
    out = run_apt_install(tmp_path, locked_calls=3)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) == 5 and all(c.startswith("-o DPkg::Lock::Timeout=") for c in calls), calls
    assert [c.split()[2] for c in calls] == ["update"] * 4 + ["install"]
    assert calls[-1].endswith("install -y -qq asr-test-no-such-package")
    assert out.stderr.count("waiting (up to 30 s) for another apt-get or dpkg to finish") == 1, out.stderr


def test_apt_install_gives_up_after_the_wait_with_one_line(tmp_path):
    out = run_apt_install(tmp_path, locked_calls=1000, wait=1)
    assert out.returncode != 0
    gave_up = [line for line in out.stderr.splitlines() if "gave up" in line]
    assert len(gave_up) == 1 and "after 1 s waiting for another apt-get or dpkg" in gave_up[0], out.stderr
    assert "ASR_APT_WAIT" in gave_up[0]
