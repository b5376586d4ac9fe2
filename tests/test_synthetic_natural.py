"""recipes/synthetic/natural.py without its engines: the voices and blends it plans, how it
uses the text pool, how it skips engines that are not installed, and its synth and manifest
stages driven by a stand-in engine (a tone), so the hook into prepare.py is exercised."""
import csv
import importlib.util
import json
import types

import numpy as np
import pytest
import soundfile as sf

from asr.data import read_manifest

from conftest import REPO


@pytest.fixture(scope="module")
def natural():
    spec = importlib.util.spec_from_file_location("synthetic_natural", REPO / "recipes" / "synthetic" / "natural.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))


def test_voices_dev_held_out_and_blends_valid(natural):
    def components(v: dict) -> set[str]:  # the Kokoro base voices a Kokoro voice is made of
        return set(natural.parse_mix(v["name"])) if "*" in v["name"] else {v["name"]}

    voices = natural.build_voices(natural.ENGINES, seed=7, n_blends=150, n_dev_blends=8)
    train = [v for v in voices if v["split"] == "train"]
    dev = [v for v in voices if v["split"] == "dev"]
    assert not {v["voice"] for v in train} & {v["voice"] for v in dev}
    dev_bases = set(natural.KOKORO_DEV)
    kokoro_train = [v for v in train if v["engine"] == "kokoro"]
    kokoro_dev = [v for v in dev if v["engine"] == "kokoro"]
    assert len(kokoro_train) == len(natural.KOKORO_VOICES) - len(dev_bases) + 150
    assert len(kokoro_dev) == len(dev_bases) + 8
    for v in kokoro_train:  # no held-out voice in train, alone or in a blend
        assert not components(v) & dev_bases, v
    for v in kokoro_dev:
        assert components(v) <= dev_bases, v
    blends = [v for v in voices if "*" in v["name"]]
    assert len(blends) == 158 and len({v["name"] for v in blends}) == 158
    for v in blends:
        mix = natural.parse_mix(v["name"])
        assert len(mix) in (2, 3)
        assert sum(mix.values()) == pytest.approx(1.0, abs=1e-9)
        assert min(mix.values()) >= natural.BLEND_MIN_WEIGHT - 1e-9
        top = max(mix, key=mix.get)
        assert v["lang"] == ("en-gb" if top.startswith("b") else "en-us")
    # one engine's voice per split at least, where it has one; Piper's single voice is train only
    assert {v["engine"] for v in dev} == {"kokoro", "rhvoice", "pico"}
    assert [v["voice"] for v in voices if v["engine"] == "piper"] == ["piper_joe"]
    # seeded: the same seed gives the same voices, another seed other blends
    assert natural.build_voices(natural.ENGINES, 7, 150, 8) == voices
    assert natural.build_voices(natural.ENGINES, 8, 150, 8) != voices
    assert all(v["engine"] == "rhvoice" for v in natural.build_voices(["rhvoice"], 7, 150, 8))


def fake_pool(n_lm=600) -> list[dict]:
    """A text pool shaped like prepare.py's text/sentences.tsv."""
    out = []
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    rng = np.random.default_rng(0)
    for source, n in (("lm", n_lm), ("wordnet", 200), ("cathy_train", 30), ("devil", 30), ("kjv", 20),
                      ("digit_seq", 50), ("numbers", 50)):
        for i in range(n):  # distinct texts: the source and a number in each
            text = " ".join([source.replace("_", " "), "item", str(i), *rng.choice(words, 4)])
            out.append({"source": source, "tts": text + ".", "text": text})
    out += [{"source": "digit_single", "tts": d, "text": d} for d in ("zero", "one", "two")]
    return out


def test_plan_uses_the_pool_and_keeps_dev_apart(natural):
    pool = fake_pool()
    voices = natural.build_voices(natural.ENGINES, 3, 40, 6)
    other_train = {pool[0]["text"], pool[1]["text"], pool[2]["text"]}  # e.g. prepare.py's corpus
    other_dev = {pool[3]["text"], pool[4]["text"]}
    plan = natural.plan_corpus(pool, voices, n_train=400, n_dev=120, rng=natural.rng_for(3, "t"),
                               not_in_dev=other_train, not_in_train=other_dev)
    by_text = {r["text"]: r for r in pool}
    split_of = {v["voice"]: v["split"] for v in voices}
    for split in ("train", "dev"):
        assert abs(len(plan[split]) - {"train": 400, "dev": 120}[split]) <= 4  # shares rounded per source
        for it in plan[split]:
            assert by_text[it["text"]]["tts"] == it["tts"]  # texts come from the pool as they are
            assert split_of[it["voice"]] == split
            assert it["id"].startswith(f"natural_{split}_")
    dev_texts = {it["text"] for it in plan["dev"]}
    train_texts = {it["text"] for it in plan["train"]}
    assert not dev_texts & train_texts
    assert not dev_texts & other_train and not train_texts & other_dev
    assert len(dev_texts) == len(plan["dev"])  # distinct dev sentences
    assert not {it["source"] for it in plan["dev"]} & {"cathy_train", "digit_single"}
    assert {it["engine"] for it in plan["train"]} == set(natural.ENGINES)
    # settings: Kokoro's carry the voice's mix, so a changed voice gets a new file name
    for it in plan["train"] + plan["dev"]:
        s = natural.parse_settings(it["settings"])
        if it["engine"] == "kokoro":
            assert natural.parse_mix(s["mix"]) == natural.parse_mix(
                it["name"] if "*" in it["name"] else it["name"] + "*1")
            assert 0.8 <= float(s["speed"]) <= 1.2
    # a split with no voice of the chosen engines stays empty (Piper has no dev voice)
    piper_only = natural.plan_corpus(pool, natural.build_voices(["piper"], 3, 0, 0), 50, 20, natural.rng_for(3, "p"))
    assert piper_only["dev"] == [] and abs(len(piper_only["train"]) - 50) <= 4


def test_cli_engine_commands(natural):
    item = {"engine": "rhvoice", "name": "slt", "settings": "pitch=95,rate=110", "tts": "one two three",
            "id": "x"}
    cmd, stdin = natural.cli_command(item, "/tmp/a.wav")
    assert cmd == ["RHVoice-test", "-p", "slt", "-r", "110", "-t", "95", "-o", "/tmp/a.wav"]
    assert stdin == "one two three."
    item = {"engine": "pico", "name": "en-GB", "settings": "pitch=90,speed=120", "tts": "hello there, you.",
            "id": "y"}
    cmd, stdin = natural.cli_command(item, "/tmp/b.wav")
    assert cmd[:5] == ["pico2wave", "-l", "en-GB", "-w", "/tmp/b.wav"] and stdin is None
    assert cmd[5] == '<speed level="120"><pitch level="90">hello there, you.</pitch></speed>'


def test_uninstalled_engines_are_skipped_with_a_clear_line(natural, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(natural.shutil, "which", lambda name: None)
    problems = natural.engine_problems(list(natural.ENGINES), str(tmp_path / "no-venv" / "python"),
                                       str(tmp_path / "no-voices"))
    assert set(problems) == set(natural.ENGINES) and all(problems.values())
    assert "RHVoice-test not found" in problems["rhvoice"] and "pico2wave not found" in problems["pico"]
    assert "no-voices" in problems["kokoro"] and "no Python at" in problems["piper"]
    # one engine usable: the others are skipped, each with its reason and the install hint
    problems["pico"] = None
    assert natural.choose_engines(list(natural.ENGINES), problems, str(tmp_path)) == ["pico"]
    out = capsys.readouterr().out
    for e in ("kokoro", "rhvoice", "piper"):
        assert f"skipping engine {e}:" in out
    assert out.count("install_natural.sh") == 3
    # none usable: a clear error, not an empty corpus
    problems["pico"] = "pico2wave not found"
    with pytest.raises(SystemExit, match="no engine"):
        natural.choose_engines(["pico"], problems, str(tmp_path))
    # an engine an existing plan uses is never dropped silently (its clips would be deleted)
    (tmp_path / ".done.plan").write_text(json.dumps({"engines": ["pico", "rhvoice"]}))
    with pytest.raises(SystemExit, match="existing plan"):
        natural.choose_engines(["pico", "rhvoice"], {"pico": None, "rhvoice": "gone"}, str(tmp_path))
    # the whole command line says the same when nothing is installed
    with pytest.raises(SystemExit, match="no engine"):
        natural.main([str(tmp_path / "out"), "--cathy-dir", str(tmp_path), "--tts-python", "/nonexistent/python",
                      "--kokoro-voices", str(tmp_path), "--stage", "plan"])


class ToneEngine:
    """Stands in for the TTS engines: a tone whose pitch depends on the voice, 0.35 s per word."""

    def __call__(self, item, wav, tmpdir):
        n = len(item["text"].split())
        t = np.arange(int(22050 * (0.3 + 0.35 * n))) / 22050
        f0 = 100 + sum(map(ord, item["voice"])) % 150
        sf.write(wav, (0.4 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 22050)


def test_plan_synth_manifest_with_a_stand_in_engine(natural, tmp_path):
    out = tmp_path / "natural"
    (out / "text").mkdir(parents=True)
    pool = fake_pool(200)
    natural.write_tsv(str(out / "text" / "sentences.tsv"), pool, ["source", "tts", "text"])
    (out / "text" / "stats.json").write_text("{}")
    args = types.SimpleNamespace(seed=5, hours=0.004, dev_minutes=0.15, jobs=1, kokoro_blends=10, dev_blends=2,
                                 text_from=None)
    natural.stage_plan(args, str(out), ["kokoro", "rhvoice"])
    assert (out / ".done.plan").is_file() and (out / "voices.tsv").is_file()
    natural.prep.stage_synth(args, str(out), engine=ToneEngine())
    natural.stage_manifest(args, str(out))
    stats = json.loads((out / "stats.json").read_text())
    voices = {r["voice"]: r for r in rows(out / "voices.tsv")}
    for split, target in (("train", 0.004 * 3600), ("dev", 0.15 * 60)):
        utts = read_manifest(out / f"{split}.tsv", check_audio=True)
        assert utts and sum(u.seconds for u in utts) >= target
        assert all(voices[u.speaker]["split"] == split for u in utts)
        for u in utts[:3]:
            info = sf.info(u.path)
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    assert stats["train"]["utterances"] > 0 and stats["quality"]["clipped_samples_total"] == 0
    # re-running is a no-op: every stage is marked done
    natural.stage_plan(args, str(out), ["kokoro", "rhvoice"])
    assert (out / ".done.synth").is_file()
