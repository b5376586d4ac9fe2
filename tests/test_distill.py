"""Distillation (asr/distill.py, issue 26): a tiny log-mel model regressed onto teacher features that
a small cache in tmp_path holds (a fixed random function of the audio, no Whisper): the loss falls,
resume is bit-exact with the projection heads and their optimiser state, distill_weight=0 is the
plain CTC run, untranscribed audio trains the regression alone, and the exported model has no
trace of the heads."""
import numpy as np
import pytest
import torch

from asr.checkpoint import read_payload
from asr.data import read_manifest, write_manifest
from asr.distill import DistillDataset, dev_scores, stretch
from asr.encoder_cache import EncoderCache
from asr.features import log_mel
from asr.train import Trainer, load_config

TEACHER_DIM = 16
TINY = ["model.hidden_size=32", "model.num_layers=2", "model.conv_channels=32", "model.lookahead=2",
        "model.dropout=0.1", "max_batch_seconds=8", "num_workers=0", "warmup_steps=3", "dev_every=0",
        "checkpoint_every=0", "epochs=1000", "stats_utterances=8", "half_export=false", "threads=1", "seed=5",
        "augment.speeds=[0.9,1.0,1.1]", "augment.noise_prob=0.5", "augment.time_masks=1", "augment.freq_masks=1"]


def fake_teacher(samples: np.ndarray) -> np.ndarray:
    """A stand-in for Whisper's encoder: (ceil((n // 160) / 2), 16) frames at 20 ms, a fixed random
    function of the log-mel (so a student can learn it), Whisper's frame count."""
    n = (len(samples) // 160 + 1) // 2
    mel = log_mel(samples).numpy()[::2]  # (about n, 80)
    w = np.random.default_rng(0).standard_normal((80, TEACHER_DIM)) / 9
    out = np.zeros((n, TEACHER_DIM), np.float32)
    k = min(n, len(mel))
    out[:k] = np.tanh((mel[:k] - mel.mean(0)) @ w)
    return out


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory, cathy_manifest):
    folder = tmp_path_factory.mktemp("teacher")
    EncoderCache(folder).fill([u.path for u in read_manifest(cathy_manifest)], fake_teacher, 0, progress=False)
    return folder


def run(tmp_path, name, *overrides, resume=False):
    trainer = Trainer(load_config(None, TINY + [f"out_dir={tmp_path / name}", *overrides]), resume=resume,
                      progress=False)
    return trainer, trainer.fit()


def distilling(cathy_manifest, teacher_cache, *more):
    return [f"train={cathy_manifest}", f"teacher_cache={teacher_cache}", "distill_weight=1.0", *more]


def assert_same_training(a, b):
    pa, pb = read_payload(a), read_payload(b)
    assert pa["state_dict"].keys() == pb["state_dict"].keys()
    for k in pa["state_dict"]:
        assert torch.equal(pa["state_dict"][k], pb["state_dict"][k]), k
    ta, tb = pa["training"], pb["training"]
    assert ta.keys() == tb.keys()
    for k in ta.get("distill", {}):
        assert torch.equal(ta["distill"][k], tb["distill"][k]), k
    sa, sb = ta["optimizer"]["state"], tb["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
    assert ta["scheduler"] == tb["scheduler"]


def test_stretch_resamples_teacher_frames_in_time():
    frames = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    assert stretch(frames, 1.0) is frames
    assert np.array_equal(stretch(frames, 2.0)[:, 0], [0, 2, 4, 6, 8])  # twice as fast: half the frames
    slow = stretch(frames, 0.5)[:, 0]  # half as fast: every other frame halfway between two
    assert len(slow) == 19 and np.allclose(slow, np.arange(19) / 2)
    fast = stretch(frames, 1.1)[:, 0]
    assert len(fast) == 9 and np.allclose(fast, np.arange(9) * 1.1) and fast[-1] <= 9


def test_dataset_pairs_augmented_input_with_clean_teacher_frames_at_its_speed(cathy_manifest, teacher_cache):
    """Every speed gives teacher frames as many as the student's output frames (within Whisper's
    one or two extra at the end), taken from the clean audio's cached outputs."""
    from asr.data import AugmentConfig
    utts = read_manifest(cathy_manifest)
    cache = EncoderCache(teacher_cache)
    for speed in (0.85, 1.0, 1.15):
        ds = DistillDataset(utts, cache, AugmentConfig(speeds=(speed,), noise_prob=0.0, gain_db=(0.0, 0.0)), seed=1)
        feats, tokens, index, teacher = ds[(2, 0)]
        assert index == 2 and len(tokens) == len(utts[2].text)
        assert 0 <= len(teacher) - len(feats) // 2 <= 2, (speed, len(teacher), len(feats))
        clean = np.asarray(cache.get(utts[2].path, 0), np.float32)
        assert len(clean) / len(teacher) == pytest.approx(speed, abs=0.02)
        if speed == 1.0:
            assert np.array_equal(teacher.numpy(), clean)


def test_distillation_trains(cathy_manifest, teacher_cache, tmp_path):
    """The regression onto the teacher falls on the training clips (clean, eval mode) and the
    student's cosine to it rises; CTC trains beside it."""
    cfg = load_config(None, TINY + distilling(cathy_manifest, teacher_cache, "max_steps=60", "lr=3e-3",
                                              f"out_dir={tmp_path / 'run'}"))
    trainer = Trainer(cfg, progress=False)
    before = dev_scores(trainer.model, trainer.distiller, trainer.utts, trainer.teacher_cache)
    summary = trainer.fit()
    assert summary["step"] == 60 and summary["skipped_nonfinite_loss"] == 0
    after = dev_scores(trainer.model, trainer.distiller, trainer.utts, trainer.teacher_cache)
    assert after["distill"] < 0.75 * before["distill"], (before, after)
    assert after["cos"] > before["cos"] + 0.2, (before, after)
    assert trainer.history == [] and trainer.step == 60


def test_resume_is_bit_exact_with_the_heads_and_their_optimiser_state(cathy_manifest, teacher_cache, tmp_path):
    """N steps straight == N/2, a resume, N/2 more: the model, the projection heads, the teacher's
    statistics, the optimiser state of every parameter and the schedule."""
    common = distilling(cathy_manifest, teacher_cache, "max_steps=8", "distill_layers=[0,-1]", "distill_weight=0.5")
    run(tmp_path, "whole", *common)
    half, _ = run(tmp_path, "split", *common, "stop_step=4")
    assert half.step == 4 and "distill" in read_payload(tmp_path / "split" / "last.pt")["training"]
    resumed, summary = run(tmp_path, "split", *common, resume=True)
    assert resumed.step == summary["step"] == 8
    assert_same_training(tmp_path / "whole" / "last.pt", tmp_path / "split" / "last.pt")
    assert len(resumed.distiller.proj) == 2


def test_weight_zero_is_the_plain_ctc_run(cathy_manifest, teacher_cache, tmp_path):
    common = [f"train={cathy_manifest}", "max_steps=5"]
    run(tmp_path, "plain", *common)
    trainer, _ = run(tmp_path, "zero", *common, "distill_weight=0", "distill_layers=[0]",
                     f"teacher_cache={teacher_cache}")
    assert trainer.distiller is None
    assert_same_training(tmp_path / "plain" / "last.pt", tmp_path / "zero" / "last.pt")


def test_exported_model_has_no_heads_and_is_a_plain_model(cathy_manifest, teacher_cache, tmp_path):
    """model.pt (and its runtime export) of a distilled run has exactly the keys and shapes of a
    plain run's; the heads are in the training checkpoint only."""
    from asr.export import export
    from asr.runtime import read_model_file
    run(tmp_path, "plain", f"train={cathy_manifest}", "max_steps=2")
    run(tmp_path, "distilled", *distilling(cathy_manifest, teacher_cache, "max_steps=2", "distill_layers=[0,1]"))
    plain, distilled = read_payload(tmp_path / "plain" / "model.pt"), read_payload(tmp_path / "distilled" / "model.pt")
    assert "training" not in distilled and distilled["config"] == plain["config"]
    assert {k: v.shape for k, v in distilled["state_dict"].items()} == {k: v.shape for k, v in plain["state_dict"].items()}
    last = read_payload(tmp_path / "distilled" / "last.pt")
    assert last["state_dict"].keys() == plain["state_dict"].keys()
    assert last["training"]["distill"]["proj.1.weight"].shape == (TEACHER_DIM, 32)
    for name in ("plain", "distilled"):
        export(tmp_path / name / "model.pt", tmp_path / f"{name}.npz")
    (meta_a, arrays_a), (meta_b, arrays_b) = read_model_file(tmp_path / "plain.npz"), read_model_file(tmp_path / "distilled.npz")
    assert meta_a["parameters"] == meta_b["parameters"] and arrays_a.keys() == arrays_b.keys()
    assert meta_a["config"] == meta_b["config"]


def test_untranscribed_audio_trains_the_regression_only(cathy_manifest, teacher_cache, tmp_path):
    """Rows without text are kept when distilling (skipped otherwise); on them CTC is skipped: the
    CTC head gets no gradient, the GRUs and the heads learn."""
    utts = read_manifest(cathy_manifest)
    for u in utts:
        u.text = ""
    manifest = tmp_path / "untranscribed.tsv"
    write_manifest(utts, manifest)
    trainer = Trainer(load_config(None, TINY + distilling(manifest, teacher_cache, "max_steps=3",
                                                          f"out_dir={tmp_path / 'run'}")), progress=False)
    head = trainer.model.head.weight.detach().clone()
    gru = trainer.model.grus[0].weight_hh_l0.detach().clone()
    stats = [trainer.train_step(b) for b, _ in list(trainer._loader())[:3]]
    assert all(s["ctc"] == 0.0 and s["distill"] > 0 and s["tokens"] == 0 for s in stats)
    assert torch.equal(trainer.model.head.weight, head)
    assert not torch.equal(trainer.model.grus[0].weight_hh_l0, gru)
    with pytest.raises(ValueError, match="no training utterances"):  # plain CTC training skips them all
        Trainer(load_config(None, TINY + [f"train={manifest}", f"out_dir={tmp_path / 'plain'}"]), progress=False)


def test_regression_alone_keeps_the_best_by_its_dev_loss(cathy_manifest, teacher_cache, tmp_path):
    """ctc_weight=0 (regression first, as the pilot): dev reports the cosine and loss to the teacher,
    no WER, and best.pt is the lowest dev distillation loss."""
    trainer, _ = run(tmp_path, "reg", *distilling(cathy_manifest, teacher_cache, "ctc_weight=0", "max_steps=4",
                                                  f"dev={{a: {cathy_manifest}}}", "dev_every=2"))
    h = trainer.history
    assert [e["step"] for e in h] == [2, 4] and all("a_cos" in e and "mean_wer" not in e for e in h)
    best = min(h, key=lambda e: e["mean_distill"])
    assert read_payload(tmp_path / "reg" / "best.pt")["training"]["step"] == best["step"]


@pytest.mark.parametrize("overrides, message", [
    (["distill_weight=1", "distill_layers=[4]"], "config distill_layers: GRU layer numbers 0 to 3"),
    (["distill_weight=1", "distill_layers=[3,-1]"], "a layer named twice"),
    (["distill_weight=-1"], "must be >= 0"),
    (["ctc_weight=0"], "config ctc_weight: scales CTC against distill_weight, which is 0"),
    (["distill_weight=1", "model.frontend=whisper", "model.bidirectional=true", "model.lookahead=0",
      "model.encoder_dims=[80,1500,384,6,4]"], "a whisper frontend has the teacher's encoder itself"),
])
def test_distill_config_errors_are_one_line(overrides, message):
    with pytest.raises(ValueError) as err:
        load_config(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_resuming_across_a_distillation_change_is_refused(cathy_manifest, teacher_cache, tmp_path):
    run(tmp_path, "plain", f"train={cathy_manifest}", "max_steps=1")
    with pytest.raises(ValueError, match="written without distillation"):
        Trainer(load_config(None, TINY + distilling(cathy_manifest, teacher_cache, "max_steps=2",
                                                    f"out_dir={tmp_path / 'plain'}")), resume=True, progress=False)
