"""The public-corpus recipes, run on small fake corpora laid out exactly like the real ones
(made here with synthetic audio): the manifests they write, and their stages."""
import csv
import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.data import read_manifest

from conftest import REPO

pytest.importorskip("lhotse")


def recipe(name: str):
    """recipes/<name>/prepare.py as a module."""
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / name / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signal(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A tone in a little noise, different for each seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (150 + 10 * seed) * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write(path, seconds, rate=16000, seed=0, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = signal(seconds, rate, seed)
    sf.write(path, x, rate, **kwargs)
    return x


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def check_manifest(path, expected: dict, tolerance: float = 0.002):
    """expected: id -> (text, seconds, speaker). The manifest reads back through asr.data with
    exactly these rows, absolute paths to audio asr can load, and the right durations."""
    found = {r["id"]: r for r in rows(path)}
    assert sorted(found) == sorted(expected)
    utts = {u.id: u for u in read_manifest(path, check_audio=True)}
    assert sorted(utts) == sorted(expected)
    for uid, (text, seconds, speaker) in expected.items():
        u = utts[uid]
        assert u.text == text and found[uid]["text"] == text
        assert found[uid]["path"].startswith("/")
        assert abs(u.seconds - seconds) <= tolerance and abs(float(found[uid]["seconds"]) - seconds) <= tolerance
        assert u.speaker == speaker
        assert abs(len(load_audio(u.path)) / 16000 - seconds) <= tolerance


# --------------------------------------------------------------------------- LibriSpeech
def fake_librispeech(root):
    """Two parts of mini-LibriSpeech: LibriSpeech/<part>/<speaker>/<chapter>/ with FLACs and a
    <speaker>-<chapter>.trans.txt of upper-case transcripts."""
    corpus = {
        "train-clean-5": {("19", "198"): [("0000", "NORTHANGER ABBEY", 1.25), ("0001", "I'M 42 YEARS OLD", 0.8)],
                          ("26", "495"): [("0003", "THE CHILD'S FATHER", 1.1)]},
        "dev-clean-2": {("84", "121123"): [("0000", "GO DO YOU HEAR", 0.6)]},
    }
    expected = {}
    for part, chapters in corpus.items():
        expected[part] = {}
        for (speaker, chapter), utts in chapters.items():
            folder = root / "LibriSpeech" / part / speaker / chapter
            lines = []
            for i, (n, text, seconds) in enumerate(utts):
                uid = f"{speaker}-{chapter}-{n}"
                write(folder / f"{uid}.flac", seconds, seed=i)
                lines.append(f"{uid} {text}\n")
                expected[part][uid] = seconds
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return expected


def test_librispeech_mini(tmp_path, capsys):
    seconds = fake_librispeech(tmp_path / "dl")
    prepare = recipe("librispeech")
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--subset", "mini"]) == 0
    s = seconds["train-clean-5"]
    check_manifest(out / "train-clean-5.tsv", {
        "19-198-0000": ("northanger abbey", s["19-198-0000"], "19"),
        "19-198-0001": ("i'm forty two years old", s["19-198-0001"], "19"),
        "26-495-0003": ("the child's father", s["26-495-0003"], "26")})
    check_manifest(out / "dev-clean-2.tsv", {"84-121123-0000": ("go do you hear", 0.6, "84")})
    assert sorted(p.name for p in (out / ".done").iterdir()) == ["1-lhotse-mini", "2-manifests-mini"]

    # A re-run finds both stages done and rewrites nothing; --force redoes them.
    before = (out / "train-clean-5.tsv").stat().st_mtime_ns
    capsys.readouterr()
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--subset", "mini"]) == 0
    assert (out / "train-clean-5.tsv").stat().st_mtime_ns == before
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--subset", "mini", "--stage", "2",
                                           "--force"]) == 0
    assert (out / "train-clean-5.tsv").stat().st_mtime_ns != before
    assert "train-clean-5.tsv: 3 utterances" in capsys.readouterr().out


def test_librispeech_missing_parts_are_one_line_errors(tmp_path, capsys):
    fake_librispeech(tmp_path / "dl")
    prepare = recipe("librispeech")
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(tmp_path / "out"), "--subset", "100"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing part(s) train-clean-100" in err and "--download" in err
    assert prepare.run_main(prepare.main, [str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no LibriSpeech found" in err


def test_recipe_script_runs_as_a_command(tmp_path):
    """python recipes/<corpus>/prepare.py works from any folder, without asr installed."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(REPO / "recipes" / "librispeech" / "prepare.py"), str(tmp_path),
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("prepare.py: error: ")


# --------------------------------------------------------------------------- Common Voice
CV_COLUMNS = ("client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents "
              "variant locale segment").split()


def fake_commonvoice(root, columns=CV_COLUMNS):
    """cv-corpus-<release>/en/{train,dev,test}.tsv and en/clips/*.mp3 at 48 kHz, as Mozilla ships it."""
    lang = root / "cv-corpus-17.0-2024-03-15" / "en"
    clips = {"train": [("spk_a", 'He said "hello" twice.', 1.5), ("spk_b", "It costs $5, or 5%.", 2.0)],
             "dev": [("spk_c", "Bonjour, café!", 1.2)],
             "test": [("spk_a", "Room 101.", 0.9)]}
    expected = {}
    for split, items in clips.items():
        lines = ["\t".join(columns)]
        for i, (client, sentence, seconds) in enumerate(items):
            name = f"common_voice_en_{split}{i}.mp3"
            write(lang / "clips" / name, seconds, rate=48000, seed=i, format="MP3")
            values = dict(client_id=client, path=name, sentence_id=f"s{i}", sentence=sentence, up_votes="2",
                          down_votes="0", locale="en")
            lines.append("\t".join(values.get(c, "") for c in columns))
            expected.setdefault(split, {})[name[:-4]] = seconds
        (lang / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return lang, expected


class InlinePool(ThreadPoolExecutor):
    """lhotse's Common Voice recipe starts a spawned process pool per split, ~2-5 s of imports
    each; threads run the same lhotse code in a fraction of that."""

    def __init__(self, max_workers=None, mp_context=None):
        super().__init__(max_workers)


def test_commonvoice_mp3(tmp_path, monkeypatch):
    import lhotse.recipes.commonvoice
    monkeypatch.setattr(lhotse.recipes.commonvoice, "ProcessPoolExecutor", InlinePool)
    lang, seconds = fake_commonvoice(tmp_path / "cv")
    prepare = recipe("commonvoice")
    out = tmp_path / "out"
    # The release folder, as unpacked; its en/ folder would do as well.
    assert prepare.run_main(prepare.main, [str(lang.parent), str(out)]) == 0
    tolerance = 0.03  # MP3 frames: libsndfile's count may differ from the encoder's input by a few ms
    check_manifest(out / "train.tsv", {
        "common_voice_en_train0": ("he said hello twice", seconds["train"]["common_voice_en_train0"], "spk_a"),
        "common_voice_en_train1": ("it costs five dollars or five percent", 2.0, "spk_b")}, tolerance)
    check_manifest(out / "dev.tsv", {"common_voice_en_dev0": ("bonjour cafe", 1.2, "spk_c")}, tolerance)
    check_manifest(out / "test.tsv", {"common_voice_en_test0": ("room one hundred and one", 0.9, "spk_a")},
                   tolerance)


def test_commonvoice_old_release_is_a_clear_error(tmp_path, capsys):
    old = [c for c in CV_COLUMNS if c not in ("accents", "variant")] + ["accent"]
    lang, _ = fake_commonvoice(tmp_path / "cv", columns=old)
    prepare = recipe("commonvoice")
    assert prepare.run_main(prepare.main, [str(lang), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "accents, variant" in err and "releases 12 and later" in err


# --------------------------------------------------------------------------- TED-LIUM 3
def fake_tedlium(root):
    """TEDLIUM_release-3/legacy/<split>/{sph,stm}: whole talks in NIST SPHERE, STM segment times."""
    base = root / "TEDLIUM_release-3" / "legacy"
    talks = {"train": {"AlGore_2009": 6.0, "JaneDoe_2012": 4.0}, "dev": {"DevTalk_2010": 3.0},
             "test": {"TestTalk_2011": 3.0}}
    stm = {
        "AlGore_2009": ["AlGore_2009 1 AlGore_2009 0.50 2.25 <o,f0,male> we 've got <unk> a climate crisis",
                        "AlGore_2009 1 inter_segment_gap 2.25 2.80 <o,,unknown> ignore_time_segment_in_scoring",
                        "AlGore_2009 1 AlGore_2009 2.80 5.10 <o,f0,male> {NOISE} it 's time to act"],
        "JaneDoe_2012": ["JaneDoe_2012 1 JaneDoe_2012 0.00 3.50 <o,f0,female> thank you"],
        "DevTalk_2010": ["DevTalk_2010 1 DevTalk_2010 1.00 2.00 <o,f0,male> hello world"],
        "TestTalk_2011": ["TestTalk_2011 1 TestTalk_2011 0.25 2.75 <o,f0,female> 'cause i said so"],
    }
    audio = {}
    for split, items in talks.items():
        for i, (talk, seconds) in enumerate(items.items()):
            audio[talk] = write(base / split / "sph" / f"{talk}.sph", seconds, seed=i, format="NIST",
                                subtype="PCM_16")
            (base / split / "stm").mkdir(parents=True, exist_ok=True)
            (base / split / "stm" / f"{talk}.stm").write_text("\n".join(stm[talk]) + "\n")
    return audio


def test_tedlium_segments_are_cut_to_flac(tmp_path):
    audio = fake_tedlium(tmp_path / "dl")
    prepare = recipe("tedlium")
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out)]) == 0
    check_manifest(out / "train.tsv", {
        "AlGore_2009-0": ("we've got a climate crisis", 1.75, "AlGore_2009"),
        "AlGore_2009-2": ("it's time to act", 2.3, "AlGore_2009"),
        "JaneDoe_2012-0": ("thank you", 3.5, "JaneDoe_2012")})
    check_manifest(out / "dev.tsv", {"DevTalk_2010-0": ("hello world", 1.0, "DevTalk_2010")})
    check_manifest(out / "test.tsv", {"TestTalk_2011-0": ("'cause i said so", 2.5, "TestTalk_2011")})
    # Each segment holds exactly its stretch of the talk.
    utt = {u.id: u for u in read_manifest(out / "train.tsv")}["AlGore_2009-2"]
    assert utt.path == str(out.resolve() / "audio" / "train" / "AlGore_2009" / "AlGore_2009-2.flac")
    np.testing.assert_allclose(load_audio(utt.path), audio["AlGore_2009"][44800:81600], atol=1e-4)


# --------------------------------------------------------------------------- LJ Speech
def test_ljspeech_split_and_spelled_out_text(tmp_path):
    root = tmp_path / "dl" / "LJSpeech-1.1"
    prepare = recipe("ljspeech")
    ids = [f"LJ001-{i:04d}" for i in range(1, 41)]
    splits = {i: prepare.split_of(i) for i in ids}
    assert {"train", "dev", "test"} <= set(splits.values())  # forty ids reach every split
    lines = []
    for n, uid in enumerate(ids):
        write(root / "wavs" / f"{uid}.wav", 0.3 + 0.01 * n, rate=22050, seed=n, subtype="PCM_16")
        lines.append(f"{uid}|In 1834 Mr. Smith, clip {n}.|In eighteen thirty-four Mister Smith, clip {n}.")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out)]) == 0
    from asr.text import normalize
    for split in ("train", "dev", "test"):
        check_manifest(out / f"{split}.tsv", {
            uid: (f"in eighteen thirty four mister smith clip {normalize(str(n))}", round(0.3 + 0.01 * n, 3), "lj")
            for n, uid in enumerate(ids) if splits[uid] == split})


# --------------------------------------------------------------------------- AN4
def test_an4_sphere_raw_and_speaker_split(tmp_path):
    prepare = recipe("an4")
    root = tmp_path / "dl" / "an4"
    names = ["fabc", "mdef", "fghi"]
    dev = next(iter(prepare.dev_speakers(names, 1)))
    train = [n for n in names if n != dev]
    train_lines = [f"<s> RUBOUT G M E F THREE NINE </s> (an251-{train[0]}-b)",
                   f"<s> YES </s> (an252-{train[0]}-b)",
                   f"<s> ENTER FIFTY TWO </s> (cen1-{train[1]}-b)",  # a .raw file: converted to FLAC
                   f"<s> NO </s> (cen2-{dev}-b)",
                   f"<s> GONE </s> (cen3-{train[1]}-b)",  # no audio file: skipped
                   "garbage line"]
    write(root / "wav" / "an4_clstk" / train[0] / f"an251-{train[0]}-b.sph", 2.0, seed=1, format="NIST",
          subtype="PCM_16", endian="BIG")
    write(root / "wav" / "an4_clstk" / train[0] / f"an252-{train[0]}-b.sph", 0.5, seed=2, format="NIST",
          subtype="PCM_16", endian="BIG")
    raw = write(root / "wav" / "an4_clstk" / train[1] / f"cen1-{train[1]}-b.raw", 1.5, seed=3, format="RAW",
                subtype="PCM_16", endian="BIG")
    write(root / "wav" / "an4_clstk" / dev / f"cen2-{dev}-b.sph", 0.75, seed=4, format="NIST", subtype="PCM_16")
    write(root / "wav" / "an4test_clstk" / "fcaw" / "cen1-fcaw-b.sph", 1.0, seed=5, format="NIST",
          subtype="PCM_16")
    (root / "etc").mkdir()
    (root / "etc" / "an4_train.transcription").write_text("\n".join(train_lines) + "\n")
    (root / "etc" / "an4_test.transcription").write_text("<s> H I J </s> (cen1-fcaw-b)\n")
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--dev-speakers", "1"]) == 0
    check_manifest(out / "train.tsv", {f"an251-{train[0]}-b": ("rubout g m e f three nine", 2.0, train[0]),
                                       f"an252-{train[0]}-b": ("yes", 0.5, train[0]),
                                       f"cen1-{train[1]}-b": ("enter fifty two", 1.5, train[1])})
    check_manifest(out / "dev.tsv", {f"cen2-{dev}-b": ("no", 0.75, dev)})
    check_manifest(out / "test.tsv", {"cen1-fcaw-b": ("h i j", 1.0, "fcaw")})
    flac = {u.id: u for u in read_manifest(out / "train.tsv")}[f"cen1-{train[1]}-b"].path
    assert flac.endswith(".flac") and flac.startswith(str(out.resolve() / "audio"))
    np.testing.assert_allclose(load_audio(flac), raw, atol=1e-4)


def test_an4_download_is_only_on_request(tmp_path, capsys, monkeypatch):
    """Without --download nothing is fetched and a missing corpus says how to get it; with it, the
    CMU archive is fetched (stubbed here: nothing in the tests downloads) before preparing."""
    prepare = recipe("an4")
    fetched = []
    monkeypatch.setattr(prepare, "fetch", lambda url, target: fetched.append((url, target)))
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(tmp_path / "out")]) == 1
    assert fetched == [] and "no AN4 found" in capsys.readouterr().err
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(tmp_path / "out"), "--download"]) == 1
    assert fetched == [(prepare.URL, tmp_path / "dl")] and prepare.URL.endswith("an4_sphere.tar.gz")
    assert (tmp_path / "out" / ".done" / "0-download").exists()


@pytest.mark.parametrize("corpus, module, function, expected", [
    ("librispeech", "lhotse.recipes", "download_librispeech", "dataset_parts"),
    ("commonvoice", "lhotse.recipes.commonvoice", "download_commonvoice", "release"),
    ("tedlium", "lhotse.recipes", "download_tedlium", None),
    ("ljspeech", "lhotse.recipes", "download_ljspeech", None),
])
def test_lhotse_download_only_with_flag(tmp_path, monkeypatch, corpus, module, function, expected):
    """Stage 0 calls lhotse's downloader for CORPUS_DIR when --download is given, and never
    otherwise (stubbed: nothing in the tests downloads)."""
    import importlib
    calls = []
    monkeypatch.setattr(importlib.import_module(module), function, lambda *a, **k: calls.append((a, k)))
    prepare = recipe(corpus)
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--stop-stage", "0"]) == 0
    assert calls == []
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--stop-stage", "0", "--download"]) == 0
    assert len(calls) == 1 and calls[0][0][0] == tmp_path / "dl"
    if expected:
        assert expected in calls[0][1]
    assert prepare.run_main(prepare.main, [str(tmp_path / "dl"), str(out), "--stop-stage", "0", "--download"]) == 0
    assert len(calls) == 1  # done-marker: not downloaded twice


# --------------------------------------------------------------------------- configs
PUBLIC = ("librispeech", "commonvoice", "tedlium", "ljspeech", "an4")


@pytest.mark.parametrize("config", sorted(str(p.relative_to(REPO)) for c in PUBLIC
                                          for p in (REPO / "recipes" / c).glob("*.yaml")))
def test_recipe_configs_load(config):
    """Every recipe config is valid for `asr train`, and names manifests its prepare.py writes."""
    from asr.train import load_config
    cfg = load_config(str(REPO / config))
    corpus = (REPO / config).parent.name
    assert cfg.train and cfg.dev
    source = (REPO / "recipes" / corpus / "prepare.py").read_text()
    for entry in list(cfg.train) + list(cfg.dev.values()):
        name = entry if isinstance(entry, str) else entry["manifest"]
        assert name.endswith(".tsv")
        stem = name.rsplit("/", 1)[-1][:-4]
        assert stem in source or stem in ("train", "dev", "test"), name
    if config.endswith("bi.yaml"):
        assert cfg.model.bidirectional and cfg.model.lookahead == 0
    else:
        assert not cfg.model.bidirectional
