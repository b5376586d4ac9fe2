"""Recipes of the corpora kept as `manifest.tsv` + `audio/` (the layout of ../shared/data): AN4's
training part, speechocean762, Allison, LJ Speech prompts and samples, wake words. Run on small
corpora made here in that layout (Ogg Opus, as the real ones are): the manifests they write,
their text normalisation and their dev splits."""
import csv
import importlib.util

import numpy as np
import pytest
import soundfile as sf

from asr.data import read_manifest

from conftest import REPO


def recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / name / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus(folder, rows, extra_columns=None, fmt="OGG", subtype="OPUS"):
    """A corpus in ../shared/data's layout: rows of (id, seconds, speaker, text) as audio/<id>.opus."""
    (folder / "audio").mkdir(parents=True)
    with open(folder / "manifest.tsv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "path", "seconds", "speaker", "text"])
        for n, (uid, seconds, speaker, text) in enumerate(rows):
            t = np.arange(round(seconds * 16000)) / 16000
            x = (0.3 * np.sin(2 * np.pi * (200 + 7 * n) * t)).astype(np.float32)
            sf.write(folder / "audio" / f"{uid}.opus", x, 16000, format=fmt, subtype=subtype)
            w.writerow([uid, f"audio/{uid}.opus", f"{seconds:.3f}", speaker, text])
    return folder


def manifest(path) -> dict:
    return {u.id: u for u in read_manifest(path, check_audio=True)}


def test_an4_from_the_manifest_layout_same_dev_speakers_as_cmus(tmp_path):
    """AN4 as ../shared/data holds it: capitals spelling letters become one-letter words, and the
    dev speakers are the ones the CMU layout gives (names without the an4_ prefix), half women."""
    prepare = recipe("an4")
    names = [f"{g}{c}{d}" for g in "fm" for c in "abcd" for d in "xy"]  # 16 speakers, 8 women
    rows = [(f"an4_an{i}-{n}-b", 0.5, f"an4_{n}", "X I SIXTY ONE" if i % 2 else "RUBOUT G M E F THREE NINE")
            for i, n in enumerate(names)]
    src = corpus(tmp_path / "an4", rows)
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(src), str(out), "--dev-speakers", "4"]) == 0
    train, dev = manifest(out / "train.tsv"), manifest(out / "dev.tsv")
    assert len(train) == 12 and len(dev) == 4 and not (out / "test.tsv").exists()
    dev_names = {u.speaker.removeprefix("an4_") for u in dev.values()}
    assert dev_names == prepare.dev_speakers(names, 4)
    assert sorted(n[0] for n in dev_names) == ["f", "f", "m", "m"]
    assert {u.text for u in train.values()} == {"x i sixty one", "rubout g m e f three nine"}
    assert all(u.path.endswith(".opus") and u.path.startswith("/") for u in train.values())


def test_speechocean762_dev_speakers_spread_over_gender_and_age(tmp_path):
    prepare = recipe("speechocean762")
    speakers = {f"so_{i:04d}": ("m" if i % 2 else "f", 8 if i < 10 else 30) for i in range(20)}
    rows = [(f"{s}_{k}", 0.4, s, "WE CALL IT BEAR" if k else "ZERO THREE FIVE ONE")
            for s in speakers for k in range(2)]
    src = corpus(tmp_path / "so", rows)
    with open(src / "speakers.tsv", "w") as f:
        f.write("speaker\tgender\tage\n" + "".join(f"{s}\t{g}\t{a}\n" for s, (g, a) in speakers.items()))
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(src), str(out), "--dev-speakers", "4"]) == 0
    train, dev = manifest(out / "train.tsv"), manifest(out / "dev.tsv")
    dev_speakers = {u.speaker for u in dev.values()}
    assert len(dev_speakers) == 4 and not dev_speakers & {u.speaker for u in train.values()}
    groups = {(speakers[s][0], speakers[s][1] < 16) for s in dev_speakers}
    assert len(groups) == 4  # one woman, man, girl and boy
    assert len(train) + len(dev) == 40
    assert {u.text for u in dev.values()} == {"we call it bear", "zero three five one"}


def test_allison_text_is_what_she_says():
    prepare = recipe("allison")
    assert prepare.allison_text("Please press 1 to mute, or # to exit.") == "please press one to mute or pound to exit"
    assert prepare.allison_text("press * to toggle pause") == "press star to toggle pause"
    assert prepare.allison_text("at [@]") == "at"
    assert prepare.allison_text("exclaimation-point [!]") == "exclamation point"
    assert prepare.allison_text("3D audio enabled") == "three d audio enabled"
    assert prepare.allison_text("H.323") == ""  # not guessed: skipped


def test_allison_prepare_splits_by_prompt_and_skips_unclear_text(tmp_path):
    prepare = recipe("allison")
    rows = [(f"allison_p{i}", 0.3, "allison", f"Press {i} now.") for i in range(30)]
    rows.append(("allison_h323", 0.3, "allison", "H.323"))
    src = corpus(tmp_path / "allison", rows)
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(src), str(out), "--dev-fraction", "0.3"]) == 0
    train, dev = manifest(out / "train.tsv"), manifest(out / "dev.tsv")
    assert len(train) + len(dev) == 30 and dev and train
    assert set(dev) == {f"allison_p{i}" for i in range(30) if prepare.in_share(f"allison_p{i}", 0.3)}
    assert train["allison_p7" if "allison_p7" in train else next(iter(train))].text.startswith("press ")


def test_lj_prompts_are_dev_for_every_reader(tmp_path):
    """Another reader of LJ Speech's prompts and LJ's own samples share one dev list of prompts,
    so no dev prompt is trained on through the other corpus."""
    ljprompts, ljspeech = recipe("ljprompts"), recipe("ljspeech")
    clips = [f"LJ001-{i:04d}" for i in range(1, 41)]
    assert any(ljprompts.is_dev_prompt(c) for c in clips) and not all(ljprompts.is_dev_prompt(c) for c in clips)
    reader = corpus(tmp_path / "matthes", [(f"pm_{c}", 0.3, "pm", f"Printing, clip {c[-2:]}.") for c in clips])
    lj = corpus(tmp_path / "ljs", [(f"lj_{c}", 0.3, "lj", f"Printing, clip {c[-2:]}.") for c in clips])
    assert ljprompts.run_main(ljprompts.main, [str(reader), str(tmp_path / "o1")]) == 0
    assert ljspeech.run_main(ljspeech.main, [str(lj), str(tmp_path / "o2")]) == 0
    dev1 = {u.id.split("_")[1] for u in manifest(tmp_path / "o1" / "dev.tsv").values()}
    dev2 = {u.id.split("_")[1] for u in manifest(tmp_path / "o2" / "dev.tsv").values()}
    train2 = {u.id.split("_")[1] for u in manifest(tmp_path / "o2" / "train.tsv").values()}
    assert dev1 == dev2 == {c for c in clips if ljprompts.is_dev_prompt(c)}
    assert not dev1 & train2
    assert manifest(tmp_path / "o1" / "dev.tsv")[f"pm_{min(dev1)}"].text == f"printing clip {normalize_two(min(dev1))}"


def normalize_two(clip: str) -> str:
    from asr.text import normalize
    return normalize(clip[-2:])


def test_keywords_and_a_missing_corpus(tmp_path, capsys):
    prepare = recipe("keywords")
    src = corpus(tmp_path / "kw", [(f"pv_alexa_{i}", 0.5, "unknown", "alexa") for i in range(40)])
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(src), str(out), "--dev-fraction", "0.2"]) == 0
    train, dev = manifest(out / "train.tsv"), manifest(out / "dev.tsv")
    assert len(train) + len(dev) == 40 and dev and train
    assert prepare.run_main(prepare.main, [str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("prepare.py: error: ") and "manifest.tsv: no such file" in err[-1]


def test_speech_commands_is_all_dev_or_split_by_speaker(tmp_path):
    prepare = recipe("speech_commands")
    rows = [(f"sc1_{w}_{s:08x}_nohash_0", 1.0, f"sc_{s:08x}", w) for s in range(12) for w in ("bed", "yes")]
    src = corpus(tmp_path / "sc", rows)
    assert prepare.run_main(prepare.main, [str(src), str(tmp_path / "all")]) == 0
    assert len(manifest(tmp_path / "all" / "dev.tsv")) == 24 and not manifest(tmp_path / "all" / "train.tsv")
    assert prepare.run_main(prepare.main, [str(src), str(tmp_path / "half"), "--dev-fraction", "0.5"]) == 0
    train, dev = manifest(tmp_path / "half" / "train.tsv"), manifest(tmp_path / "half" / "dev.tsv")
    assert train and dev and not {u.speaker for u in train.values()} & {u.speaker for u in dev.values()}


@pytest.mark.parametrize("name", ["speechocean762", "allison", "ljprompts", "keywords"])
def test_rows_without_audio_or_text_are_skipped_and_counted(tmp_path, capsys, name):
    prepare = recipe(name)
    src = corpus(tmp_path / "c", [("a_LJ001-0001", 0.4, "s1", "ONE TWO"), ("b_LJ001-0002", 0.4, "s2", "...")])
    with open(src / "manifest.tsv", "a") as f:
        f.write("c_LJ001-0003\taudio/missing.opus\t1.0\ts3\tTHREE\n")
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(src), str(out)]) == 0
    found = {**manifest(out / "train.tsv"), **manifest(out / "dev.tsv")}
    assert list(found) == ["a_LJ001-0001"]
    printed = capsys.readouterr().out
    assert "audio file missing" in printed and "empty or unusable transcript" in printed


def test_default_recipe_configs_load():
    """The default recipe's configs are valid for `asr train` and name manifests its stages write."""
    from asr.train import load_config
    run_sh = (REPO / "recipes" / "default" / "run.sh").read_text()
    for name in ("uni.yaml", "bi.yaml", "finetune.yaml", "whisper.yaml"):
        cfg = load_config(str(REPO / "recipes" / "default" / name))
        assert cfg.train and cfg.dev
        for entry in list(cfg.train) + list(cfg.dev.values()):
            path = entry if isinstance(entry, str) else entry["manifest"]
            corpus_dir = path.split("/")[0]
            assert f"$data/{corpus_dir}" in run_sh, f"{name}: run.sh does not prepare {path}"
    ft = load_config(str(REPO / "recipes" / "default" / "finetune.yaml"))
    assert {"an4", "so762", "cathy", "fsdd"} <= set(ft.dev)


def test_speechocean762_from_its_own_kaldi_layout(tmp_path, capsys):
    """A clone of the corpus (train/wav.scp, text, utt2spk, spk2gender, spk2age, WAVE/): the same
    manifests, durations from the headers, a row without audio skipped and counted."""
    prepare = recipe("speechocean762")
    root, rows = tmp_path / "so", []
    for i in range(8):
        spk, uid = f"{i:04d}", f"{i:04d}0001"
        path = root / "WAVE" / f"SPEAKER{spk}" / f"{uid}.WAV"
        path.parent.mkdir(parents=True)
        sf.write(path, np.zeros(round((0.5 + 0.1 * i) * 16000), np.float32) + 0.01, 16000, subtype="PCM_16")
        rows.append((uid, f"WAVE/SPEAKER{spk}/{uid}.WAV", spk, "m" if i % 2 else "f", 8 if i < 4 else 30))
    rows.append(("00990001", "WAVE/SPEAKER0099/00990001.WAV", "0099", "f", 9))  # no such file
    (root / "train").mkdir()
    for name, line in [("wav.scp", "{0} {1}"), ("text", "{0} WE CALL IT BEAR"), ("utt2spk", "{0} {2}"),
                       ("spk2gender", "{2} {3}"), ("spk2age", "{2} {4}")]:
        (root / "train" / name).write_text("".join(line.format(*r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert prepare.run_main(prepare.main, [str(root), str(out), "--dev-speakers", "4"]) == 0
    train, dev = manifest(out / "train.tsv"), manifest(out / "dev.tsv")
    assert len(train) == 4 and len(dev) == 4
    group = {r[2]: (r[3], r[4] < 16) for r in rows}
    assert {group[u.speaker] for u in dev.values()} == {("f", True), ("m", True), ("f", False), ("m", False)}
    assert all(abs(u.seconds - (0.5 + 0.1 * int(u.speaker))) < 0.002 for u in {**train, **dev}.values())
    assert {u.text for u in train.values()} == {"we call it bear"}
    assert "unreadable audio" in capsys.readouterr().out
