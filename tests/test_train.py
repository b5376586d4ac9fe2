"""Training: overfitting real clips, exact resume after a kill, bad data, config errors,
torchrun on CPU, and a bidirectional model on a long file."""
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import load_model, read_payload
from asr.data import Utterance, read_manifest, write_manifest
from asr.train import Trainer, dev_wer, load_config
from asr.transcribe import WINDOW_SECONDS, transcribe, transcribe_array

from conftest import REPO

# A tiny model and no augmentation: what overfits a few clips in a few hundred CPU steps.
OVERFIT = ["model.hidden_size=96", "model.num_layers=2", "model.conv_channels=96", "model.dropout=0.0",
           "augment.speeds=[1.0]", "augment.noise_prob=0", "augment.freq_masks=0", "augment.time_masks=0",
           "augment.gain_db=[0,0]", "max_batch_seconds=60", "epochs=100000", "num_workers=0", "lr=3e-3",
           "warmup_steps=30", "checkpoint_every=0", "dev_every=0", "sorta_grad=false", "seed=1",
           "half_export=false", "threads=1"]
# Smaller still, with dropout and augmentation on, for the tests of the loop's mechanics.
MECHANICS = ["model.hidden_size=32", "model.num_layers=2", "model.conv_channels=32", "model.lookahead=2",
             "model.dropout=0.1", "max_batch_seconds=6", "num_workers=0", "warmup_steps=5", "dev_every=0",
             "stats_utterances=8", "half_export=false", "threads=1", "seed=3"]


def env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def weights(path) -> dict:
    return read_payload(path)["state_dict"]


@pytest.fixture(scope="module")
def three_clips(tmp_path_factory, cathy_manifest):
    utts = read_manifest(cathy_manifest)[:3]
    path = tmp_path_factory.mktemp("three") / "train.tsv"
    write_manifest(utts, path)
    return path, utts


# --------------------------------------------------------------------------- overfitting
def test_overfit_unidirectional_reaches_wer_zero(three_clips, tmp_path):
    """A streaming model trained 200 CPU steps on three real clips transcribes them perfectly."""
    manifest, utts = three_clips
    cfg = load_config(None, OVERFIT + ["model.lookahead=2", "max_steps=200", f"out_dir={tmp_path}",
                                       f"train={manifest}"])
    summary = Trainer(cfg, progress=False).fit()
    assert summary["step"] == 200 and summary["skipped_nonfinite_loss"] == 0
    model = load_model(tmp_path / "model.pt")
    assert model.cfg.streaming
    assert dev_wer(model, utts)["wer"] == 0.0
    assert transcribe(model, utts[0].path, punctuation=False).text == utts[0].text  # the streaming path too


@pytest.fixture(scope="module")
def bidirectional_model(three_clips, tmp_path_factory):
    """A tiny bidirectional model overfitted on three clips, trained with the LibriSpeech bi.yaml
    recipe's model section (so the recipe's settings are known to train)."""
    manifest, utts = three_clips
    out = tmp_path_factory.mktemp("bi")
    cfg = load_config(str(REPO / "recipes" / "librispeech" / "bi.yaml"),
                      OVERFIT + ["max_steps=200", f"out_dir={out}", f"train={manifest}", "dev={}",
                                 "augment.reverb_prob=0", "model.num_layers=2"])
    assert cfg.model.bidirectional and cfg.model.lookahead == 0
    Trainer(cfg, progress=False).fit()
    return out / "model.pt", utts


def test_bidirectional_training_and_long_file(bidirectional_model, tmp_path, monkeypatch, capsys):
    """Bidirectional training reaches WER 0 on its clips; a file longer than two windows goes
    through the windowed path: cut in the pauses, each window recognised on its own (exactly as
    that stretch of audio alone would be), words timed across the whole file; `asr transcribe`
    writes it, and refuses --stream."""
    import importlib
    windows = importlib.import_module("asr.transcribe")  # the module (asr.transcribe is also a function)
    from asr.cli import main
    path, utts = bidirectional_model
    model = load_model(path)
    assert not model.cfg.streaming
    assert dev_wer(model, utts)["wer"] == 0.0

    rng = np.random.default_rng(0)
    pieces, refs, pauses, n = [], [], [], 0
    while n < 2.3 * WINDOW_SECONDS * SAMPLE_RATE:
        for u in utts:
            pause = (1e-4 * rng.standard_normal(int(0.6 * SAMPLE_RATE))).astype(np.float32)
            pieces += [load_audio(u.path), pause]
            refs.append(u.text)
            n += len(pieces[-2])
            pauses.append((n, n + len(pause)))
            n += len(pause)
    long = tmp_path / "long.flac"
    sf.write(long, np.concatenate(pieces), SAMPLE_RATE)
    x = load_audio(long)

    cuts = []
    quietest = windows._quietest_cut
    monkeypatch.setattr(windows, "_quietest_cut", lambda *a: cuts.append(quietest(*a)) or cuts[-1])
    result = transcribe(model, long, punctuation=False)
    bounds = np.cumsum([0] + cuts + [len(x) - sum(cuts)])
    assert len(cuts) >= 2
    assert all(any(a <= c < b for a, b in pauses) for c in bounds[1:-1])  # every cut in a pause
    alone = [transcribe_array(model, x[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert result.text == " ".join(r.text for r in alone if r.text)
    words = [w for s in result.segments for w in s.words]
    expected = [(w.word, round(w.start + a / SAMPLE_RATE, 6)) for r, a in zip(alone, bounds)
                for s in r.segments for w in s.words]
    assert [(w.word, round(w.start, 6)) for w in words] == expected
    assert words[-1].start > result.duration - 10 and abs(result.duration - len(x) / SAMPLE_RATE) < 1e-3
    # A model overfitted on three short clips is no judge of 30 s windows; it still must get most words.
    import jiwer
    assert jiwer.process_words(" ".join(refs), result.text).wer < 0.75

    capsys.readouterr()
    assert main(["transcribe", str(long), "--model", str(path), "--format", "json", "--no-progress", "--no-punctuation"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == result.text
    assert main(["transcribe", str(long), "--model", str(path), "--stream"]) == 2
    assert "cannot stream" in capsys.readouterr().err


# --------------------------------------------------------------------------- resume
def test_resume_after_kill_is_bit_exact(cathy_manifest, tmp_path):
    """A run killed (SIGKILL) after a checkpoint and resumed ends with exactly the weights of an
    uninterrupted run: same data order, augmentation, dropout masks, optimiser and LR schedule."""
    n = 30
    common = MECHANICS + [f"train={cathy_manifest}", f"max_steps={n}", "epochs=1000", "checkpoint_every=3"]
    whole = Trainer(load_config(None, common + [f"out_dir={tmp_path / 'whole'}"]), progress=False)
    assert whole.steps_per_epoch > 3  # checkpoints fall mid-epoch as well as at epoch ends
    whole.fit()

    out = tmp_path / "killed"
    args = [sys.executable, "-m", "asr", "train", "--no-progress", *common, f"out_dir={out}"]
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env())
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    killed_at = read_payload(out / "last.pt")["training"]["step"]
    assert 0 < killed_at < n, f"the run was not killed mid-way (last checkpoint at step {killed_at})"
    assert not (out / "model.pt").exists()

    r = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env(), timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"at step {killed_at}" in r.stderr  # it did resume, from where it was killed
    assert json.loads(r.stdout.splitlines()[-1])["step"] == n
    a, b = weights(tmp_path / "whole" / "last.pt"), weights(out / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ta = read_payload(tmp_path / "whole" / "last.pt")["training"]
    tb = read_payload(out / "last.pt")["training"]
    assert ta["scheduler"] == tb["scheduler"]


def test_stop_step_ends_the_run_part_way_through_its_schedule(cathy_manifest, tmp_path):
    """stop_step=K ends a run at step K with the learning rate where the max_steps schedule has it
    then (not decayed to its end), and exports that step's model: a run that a session had to
    stop part-way is reproducible from the recipe."""
    from asr.train import lr_lambda
    common = MECHANICS + [f"train={cathy_manifest}", "epochs=1000", "checkpoint_every=0", "warmup_steps=2"]
    cfg = load_config(None, common + ["max_steps=8", "stop_step=4", f"out_dir={tmp_path / 'part'}"])
    part = Trainer(cfg, progress=False)
    summary = part.fit()
    assert summary["step"] == part.step == 4
    assert part.scheduler.get_last_lr()[0] == pytest.approx(cfg.lr * lr_lambda(cfg, 8)(4))
    short = Trainer(load_config(None, common + ["max_steps=4", f"out_dir={tmp_path / 'short'}"]), progress=False)
    short.fit()
    assert part.scheduler.get_last_lr()[0] > 2 * short.scheduler.get_last_lr()[0]  # the short run decayed to its end
    assert (tmp_path / "part" / "model.pt").exists()


def test_init_from_fine_tunes_and_counts_all_steps(cathy_manifest, tmp_path):
    """init_from= starts a new run (fresh optimiser and schedule) from a trained model's weights
    and feature statistics; the exported card counts the steps of both runs."""
    common = MECHANICS + [f"train={cathy_manifest}", "epochs=1000", "checkpoint_every=0"]
    Trainer(load_config(None, common + ["max_steps=4", f"out_dir={tmp_path / 'first'}"]), progress=False).fit()
    first = read_payload(tmp_path / "first" / "last.pt")
    tuned = Trainer(load_config(None, common + ["max_steps=3", "lr=1e-4", f"out_dir={tmp_path / 'tuned'}",
                                                f"init_from={tmp_path / 'first' / 'last.pt'}"]), progress=False)
    start = tuned.model.state_dict()
    for k, v in first["state_dict"].items():
        assert torch.equal(start[k], v), k  # weights and feat_mean/feat_std, not recomputed stats
    assert tuned.step == 0 and tuned.scheduler.get_last_lr()[0] < 1e-4  # a new warm-up
    tuned.fit()
    card = read_payload(tmp_path / "tuned" / "model.pt")["card"]
    assert card["trained_steps"] == 7
    assert card["fine_tuned_from"] == "last.pt (4 steps)"
    assert not torch.equal(weights(tmp_path / "tuned" / "last.pt")["head.weight"], first["state_dict"]["head.weight"])


def test_init_from_a_narrower_model_widens_it(bidirectional_model, three_clips, tmp_path):
    """init_from= a model with fewer GRU units than the config asks for grows it (asr.model.widened):
    the wider model starts out transcribing what the narrower one did."""
    path, utts = bidirectional_model
    manifest, _ = three_clips
    cfg = load_config(str(REPO / "recipes" / "librispeech" / "bi.yaml"),
                      OVERFIT + ["max_steps=1", f"out_dir={tmp_path}", f"train={manifest}", "dev={}",
                                 "model.num_layers=2", "model.hidden_size=128", f"init_from={path}"])
    trainer = Trainer(cfg, progress=False)
    assert trainer.model.grus[1].weight_hh_l0.shape == (3 * 128, 128)
    assert dev_wer(trainer.model.eval(), utts)["wer"] == 0.0


@pytest.mark.parametrize("export", ["best", "last"])
def test_export_picks_best_or_last_checkpoint(cathy_manifest, tmp_path, export):
    """model.pt holds best.pt's weights (the lowest dev WER) by default, the last step's with export=last."""
    cfg = load_config(None, MECHANICS + [f"train={cathy_manifest}", f"dev={{a: {cathy_manifest}}}", "dev_every=2",
                                         "dev_max_utterances=2", "max_steps=6", "epochs=1000", "checkpoint_every=0",
                                         f"export={export}", f"out_dir={tmp_path}"])
    trainer = Trainer(cfg, progress=False)
    trainer.evaluate_dev = lambda: {"mean_wer": {2: 0.5}.get(trainer.step, 0.8)}  # step 2 is the best
    trainer.fit()
    assert read_payload(tmp_path / "best.pt")["training"]["step"] == 2
    source = tmp_path / ("best.pt" if export == "best" else "last.pt")
    exported, expected = weights(tmp_path / "model.pt"), weights(source)
    assert all(torch.equal(exported[k], expected[k]) for k in expected)
    assert not torch.equal(weights(tmp_path / "best.pt")["head.weight"], weights(tmp_path / "last.pt")["head.weight"])


def test_dev_history_records_training_hours_and_audio_across_a_resume(cathy_manifest, tmp_path):
    """Each dev entry says how long training had run and on how much audio (the learning curve's
    axes); both keep counting, not restart, when a run resumes."""
    common = MECHANICS + [f"train={cathy_manifest}", f"dev={{a: {cathy_manifest}}}", "dev_every=2",
                          "dev_max_utterances=2", "epochs=1000", "checkpoint_every=2", f"out_dir={tmp_path}"]
    first = Trainer(load_config(None, common + ["max_steps=4"]), progress=False)
    first.fit()
    h = first.history
    assert [e["step"] for e in h][:2] == [2, 4]
    assert 0 < h[0]["train_hours"] < h[1]["train_hours"] and 0 < h[0]["audio_hours"] < h[1]["audio_hours"]
    second = Trainer(load_config(None, common + ["max_steps=6"]), resume=True, progress=False)
    second.fit()
    last = second.history[-1]
    assert last["step"] == 6 and last["train_hours"] > h[-1]["train_hours"] and last["audio_hours"] > h[-1]["audio_hours"]
    assert last["audio_hours"] < 2 * h[-1]["audio_hours"]  # 6 steps of audio, not 4 + 6


# --------------------------------------------------------------------------- bad data
def test_bad_rows_and_audio_are_skipped_and_training_proceeds(cathy_manifest, tmp_path, caplog):
    good = read_manifest(cathy_manifest)[:4]
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + os.urandom(3000))
    short = tmp_path / "short.flac"  # 0.12 s: 3 output frames, far fewer than its label's letters
    sf.write(short, load_audio(good[0].path)[: int(0.12 * SAMPLE_RATE)], SAMPLE_RATE)
    rows = ["id\tpath\tseconds\tspeaker\ttext"]
    rows += [f"{u.id}\t{u.path}\t{u.seconds}\t\t{u.text}" for u in good]
    rows += [f"missing\t{tmp_path / 'nope.flac'}\t2.0\t\thello there",
             f"empty\t{good[0].path}\t{good[0].seconds}\t\t  ...  ",
             f"corrupt_known_length\t{corrupt}\t1.5\t\tsome words",
             f"corrupt_unknown_length\t{corrupt}\t\t\tsome words",
             f"bad_seconds\t{good[1].path}\tabc\t\tsome words",
             f"negative_seconds\t{good[1].path}\t-1\t\tsome words",
             f"short\t{short}\t0.12\t\ta label far longer than three frames"]
    manifest = tmp_path / "train.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    cfg = load_config(None, MECHANICS + [f"train={manifest}", "max_steps=12", "epochs=1000",
                                         "checkpoint_every=0", f"out_dir={tmp_path / 'run'}",
                                         "max_batch_seconds=3.5"])
    with caplog.at_level("WARNING"):
        summary = Trainer(cfg, progress=False).fit()
    skipped = summary["skipped_manifest"]
    assert skipped.pop("audio file missing") == 1
    assert skipped.pop("empty transcript") == 1
    assert skipped.pop("bad duration") == 2
    assert [k for k in skipped if k.startswith("unreadable audio")] and sum(skipped.values()) == 1
    assert summary["train_utterances"] == 6  # 4 good, the corrupt one of known length, the short one
    assert summary["dropped_unreadable"] >= 1 and summary["skipped_label_too_long"] >= 1
    assert summary["skipped_nonfinite_loss"] == 0 and summary["step"] == 12
    assert summary["utterances_trained"] > 0
    assert "corrupt.flac" in caplog.text and "nope.flac" in caplog.text
    # over many epochs, each bad utterance is named once: the unreadable file is read no more
    assert summary["epoch"] >= 2 and summary["dropped_unreadable"] >= 2
    assert caplog.text.count("leaving corrupt_known_length out of training: ") == 1
    assert summary["skipped_label_too_long"] >= 2 and caplog.text.count("skipping short whenever its label") == 1
    for v in weights(tmp_path / "run" / "model.pt").values():
        assert torch.isfinite(v.float()).all()


def test_label_too_long_never_gives_nan(cathy_manifest, tmp_path):
    """A batch of nothing but impossible labels is skipped and counted, with no NaN anywhere."""
    src = read_manifest(cathy_manifest)[0]
    short = tmp_path / "short.flac"
    sf.write(short, load_audio(src.path)[: int(0.2 * SAMPLE_RATE)], SAMPLE_RATE)
    manifest = tmp_path / "m.tsv"
    write_manifest([Utterance("short", str(short), 0.2, src.text), Utterance("ok", src.path, src.seconds, src.text)],
                   manifest)
    cfg = load_config(None, MECHANICS + [f"train={manifest}", "max_steps=6", "epochs=100", "checkpoint_every=0",
                                         f"out_dir={tmp_path / 'run'}", "max_batch_seconds=1", "sorta_grad=false"])
    summary = Trainer(cfg, progress=False).fit()
    assert summary["skipped_label_too_long"] == 3 and summary["utterances_trained"] == 3
    assert summary["skipped_nonfinite_loss"] == 0
    for v in weights(tmp_path / "run" / "last.pt").values():
        assert torch.isfinite(v.float()).all()


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("overrides, message", [
    (["epochz=3"], "unknown config key(s): epochz"),
    (["model.hidden_sise=3"], "unknown config key(s): model.hidden_sise"),
    (["augment.nosie_prob=0"], "augment.nosie_prob"),
    (["epochs=abc"], "config epochs: 'abc' is not a valid int"),
    (["epochs=2.5"], "config epochs: 2.5 is not a valid int"),
    (["lr=-1"], "config lr: must be positive"),
    (["weight_decay=nan"], "config weight_decay: must be a finite number"),
    (["lr=inf"], "config lr: must be a finite number"),
    (["lr=fast"], "config lr: 'fast' is not a valid float"),
    (["sorta_grad=maybe"], "config sorta_grad: 'maybe' is not a valid bool"),
    (["augment.speeds=0.9"], "config augment.speeds: 0.9 is not a valid list"),
    (["augment.speeds=[0.9, x]"], "config augment.speeds: 'x' is not a valid float"),
    (["model=5"], "config model: expected a mapping"),
    (["model.bidirectional=true"], "lookahead is for unidirectional models"),
    (["train=[{manifest: a.tsv, repeats: 2}]"], "config train: each entry is a manifest path"),
    (["dev=[a.tsv]"], "config dev: ['a.tsv'] is not a valid dict"),
    (["min_lr_ratio=2"], "config min_lr_ratio: must be in [0, 1]"),
    (["export=final"], "config export: must be 'best' or 'last'"),
    (["model=5", "model.x=1"], "model is not a section"),
    (["noequals"], "is not key=value"),
])
def test_config_errors_are_clear(overrides, message):
    with pytest.raises(ValueError) as err:
        load_config(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_config_values_are_converted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nmodel:\n  conv_strides: [2, 2]\n  hidden_size: 64\naugment:\n  gain_db: [0, 0]\n"
                    "train: [a.tsv, {manifest: b.tsv, repeat: 2}]\ndev: {x: c.tsv}\n")
    cfg = load_config(str(path), ["model.num_layers=4", "sorta_grad=no", "max_batch_seconds=100"])
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)
    assert cfg.model.hidden_size == 64 and cfg.model.num_layers == 4 and cfg.model.conv_strides == (2, 2)
    assert cfg.augment.gain_db == (0.0, 0.0) and not cfg.sorta_grad and cfg.max_batch_seconds == 100.0
    assert cfg.train == ("a.tsv", {"manifest": "b.tsv", "repeat": 2}) and cfg.dev == {"x": "c.tsv"}


@pytest.mark.parametrize("text, message", [
    ("epochs: [1\n", "not valid YAML"),
    ("- just\n- a list\n", "a config file is a mapping"),
    ("epochs: 3\nbatch_size: 8\n", "unknown config key(s): batch_size"),
    ("train: [does/not/exist.tsv]\n", "no such manifest"),
])
def test_train_command_with_bad_config_gives_one_line(capsys, tmp_path, monkeypatch, text, message):
    from asr.cli import main
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path), f"out_dir={tmp_path / 'run'}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asr: error: ") and message in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_train_process_with_bad_config_exits_non_zero(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hidden_size: big\n")
    r = cli("train", "--config", path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "asr: error: config model.hidden_size: 'big' is not a valid int\n"


def test_train_with_missing_config_file(capsys, tmp_path):
    from asr.cli import main
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("asr: error: ") and "nope.yaml" in err


# --------------------------------------------------------------------------- distributed
def test_torchrun_two_processes_on_cpu(cathy_manifest, tmp_path):
    """torchrun --nproc-per-node 2 on CPU (gloo): the ranks split every epoch's batches between
    them, only rank 0 writes, and a rank whose batch is all unusable still joins the all-reduce."""
    utts = read_manifest(cathy_manifest)
    short = tmp_path / "short.flac"  # alone in its batch, and too short for its label: nothing to train on
    sf.write(short, load_audio(utts[0].path)[: int(0.2 * SAMPLE_RATE)], SAMPLE_RATE)
    manifest = tmp_path / "train.tsv"
    write_manifest(utts + [Utterance("short", str(short), 0.2, utts[0].text)], manifest)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "asr", "train", "--no-progress", *MECHANICS, f"train={manifest}", "epochs=2", "max_batch_seconds=4",
           "checkpoint_every=2", "sorta_grad=true", f"out_dir={out}"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2
    per_rank = summary["utterances_trained_per_rank"]
    assert all(n > 0 for n in per_rank)
    # Each epoch is split between the ranks: together they see the data once per epoch (less the
    # short clip, and less the odd batch out when the batch count is odd), never twice.
    assert sum(per_rank) <= 2 * len(utts) and sum(per_rank) >= 2 * (len(utts) - 3)
    assert summary["skipped_label_too_long"] >= 1  # SortaGrad: the short clip comes first, on rank 0
    assert "rank 1 of 2" in r.stderr
    written = {"config.yaml", "last.pt", "model.pt"} | ({"tb"} if importlib.util.find_spec("tensorboard") else set())
    assert {p.name for p in out.iterdir()} == written
    model = load_model(out / "model.pt")
    assert model.card["trained_steps"] == summary["step"]


# --------------------------------------------------------------------------- the command
def test_resume_without_a_checkpoint_stops_and_resume_if_any_starts_afresh(cathy_manifest, tmp_path, capsys, caplog):
    from asr.cli import main
    args = ["train", "--no-progress", *MECHANICS, f"train={cathy_manifest}", "epochs=1000", "checkpoint_every=0",
            f"out_dir={tmp_path / 'run'}"]
    assert main(args + ["max_steps=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err == (f"asr: error: --resume: no checkpoint to resume from in {tmp_path / 'run'} "
                   f"({tmp_path / 'run' / 'last.pt'} does not exist); without --resume training starts afresh, "
                   f"--resume-if-any resumes only where there is one\n")
    assert not (tmp_path / "run").exists()  # nothing was started
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        Trainer(load_config(None, args[2:] + ["max_steps=2"]), resume=True)
    with caplog.at_level("INFO"):
        assert main(args + ["max_steps=2", "--resume-if-any"]) == 0  # nothing to resume: a fresh start
        assert "resumed from" not in caplog.text
        assert main(args + ["max_steps=3", "--resume-if-any"]) == 0
    assert "at step 2" in caplog.text  # the second run resumed the first
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["step"] == 3


def test_progress_to_a_file_is_plain_log_lines(cathy_manifest, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setattr(Trainer, "PROGRESS_SECONDS", 0.0)  # a line at every step
    cfg = load_config(None, MECHANICS + [f"train={cathy_manifest}", "max_steps=4", "epochs=1000",
                                         "checkpoint_every=0", f"out_dir={tmp_path}"])
    with caplog.at_level("INFO"):
        Trainer(cfg, progress=True).fit()  # stderr is pytest's capture: not a terminal
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split(",")[0] for line in lines] == ["step 1/4 (25%)", "step 2/4 (50%)", "step 3/4 (75%)",
                                                      "step 4/4 (100%)"]
    assert all(" loss " in line and "x real time" in line and "left" in line for line in lines)
    err = capsys.readouterr().err
    assert "step/s" not in err and "\r" not in err  # no bar
