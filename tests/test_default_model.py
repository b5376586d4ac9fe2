"""The bundled models: shipped, small, documented, and they hear speech.

These tests run against the model files in the package: asr/models/default.npz (`streaming`,
what live audio and --stream use) and asr/models/default-bi.npz (`offline`, what `asr transcribe`
uses for files when no --model is given), in the runtime's form, each exported from the torch
model file beside it (default.pt, default-bi.pt: what training starts from), which it must equal.
"""
import dataclasses
import json
import os

import jiwer
import numpy as np
import pytest

from asr import export, runtime
from asr.audio import load_audio
from asr.checkpoint import bundled_model_path, default_model_path, load_model as load_torch_model, read_payload
from asr.logmel import log_mel
from asr.runtime import load_model
from asr.text import normalize

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "asr", "samples", "cathy_a0046.flac")
SAMPLE_TEXT = "the girl faced him her eyes shining with sudden fear"

CER_BOUND = 0.4  # the bundled model: 0.17 with its LM, 0.21 greedy (2026-12-02); random weights: about 1

pytestmark = pytest.mark.skipif(default_model_path() is None, reason="no default model in this checkout")


@pytest.mark.parametrize("name", ["streaming", "offline"])
def test_each_is_small_of_its_kind_and_carries_its_card(name):
    path = bundled_model_path(name)
    assert path is not None, f"no bundled {name} model"
    assert os.path.getsize(path) <= 25 * 1024 * 1024
    payload, _ = runtime.read_model_file(path)
    assert "training" not in read_payload(bundled_model_path(name, torch_file=True))  # no optimiser state shipped
    cfg = payload["config"]
    if name == "streaming":
        assert not cfg["bidirectional"] and cfg["lookahead"] > 0
    else:
        assert cfg["bidirectional"] and "offline" in payload["card"]["name"]
    card = payload["card"]
    assert card["trained_on"] and card["poor_at"] and card["training"] and card["data_licences"]
    real = {"an4", "so762", "cathy", "fsdd"}  # the real-speech dev sets with targets, greedy and with the LM
    assert real <= set(card["dev_wer"]) and real <= set(card["dev_wer_lm"])
    for figures in list(card["dev_wer"].values()) + list(card["dev_wer_lm"].values()):
        assert 0.0 <= figures["wer"] and figures["utterances"] > 0
    assert card["lm"]["file"] == "default-lm.bin"
    curve = os.path.join(os.path.dirname(__file__), "..", card["learning_curve"])
    with open(curve, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"  # the learning curve the card names is in the checkout


def test_asr_models_prints_the_card(cli):
    proc = cli("models")
    assert proc.returncode == 0, proc.stderr
    assert "default.npz" in proc.stdout and "trained_on:" in proc.stdout and "dev_wer:" in proc.stdout
    assert "unidirectional, streaming" in proc.stdout
    assert "default-bi.npz" in proc.stdout and "bidirectional (offline only)" in proc.stdout  # both cards


def test_it_transcribes_the_bundled_sample_and_streams_the_same(cli, tmp_path):
    """The README's first command. The sample is a Cathy dev clip (a prompt never trained on);
    random weights give a CER near 1, the trained model far less."""
    offline = cli("transcribe", SAMPLE, "--model", "streaming", "--format", "json", "--output-dir", tmp_path / "off")
    stream = cli("transcribe", SAMPLE, "--stream", "--chunk-ms", "100", "--format", "json", "--output-dir", tmp_path / "on")
    assert offline.returncode == 0 and stream.returncode == 0, offline.stderr + stream.stderr
    off = json.loads((tmp_path / "off" / "cathy_a0046.json").read_text())
    on = json.loads((tmp_path / "on" / "cathy_a0046.json").read_text())
    assert on["text"] == off["text"]
    assert jiwer.cer(SAMPLE_TEXT, normalize(off["text"]) or "-") < CER_BOUND


def test_files_get_the_offline_model_and_it_transcribes_the_sample(cli, tmp_path):
    proc = cli("transcribe", SAMPLE, "--format", "json", "--output-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = json.loads((tmp_path / "cathy_a0046.json").read_text())["text"]
    assert jiwer.cer(SAMPLE_TEXT, normalize(text) or "-") < CER_BOUND
    assert load_model(None, offline=True).source == os.fspath(bundled_model_path("offline"))
    assert load_model(None, offline=True).cfg.bidirectional
    refused = cli("transcribe", SAMPLE, "--model", "offline", "--stream")
    assert refused.returncode == 2 and "cannot stream" in refused.stderr


def test_every_command_uses_it_when_no_model_is_given():
    model = load_model(None)
    assert model.source == os.fspath(default_model_path())
    assert model.cfg.streaming


@pytest.mark.parametrize("name", ["streaming", "offline"])
def test_each_runtime_file_equals_the_torch_model_file_it_was_exported_from(name):
    """The .npz the commands run and the .pt training starts from are one model: the same config,
    card and parameters, and the same log-probs on the sample (the .pt exported afresh in memory,
    in the form the .npz has: int8 or float; docs/runtime.md says which is shipped and why).
    When this fails, a .pt changed without its export: run scripts/export-models.sh."""
    npz, pt = bundled_model_path(name), bundled_model_path(name, torch_file=True)
    assert npz is not None and pt is not None
    meta, _ = runtime.read_model_file(npz)
    payload = read_payload(pt)
    assert meta["card"] == payload["card"], f"{npz} is not {pt}'s export: run scripts/export-models.sh"
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(runtime.ModelConfig.from_dict(payload["config"]))))
    shipped = runtime.load(npz)
    fresh = runtime.from_file_form(*export.runtime_form(load_torch_model(pt), int8=meta.get("int8", False)))
    feats = log_mel(load_audio(SAMPLE), shipped.fbank)
    a, b = shipped(feats[None], np.array([len(feats)]))[0], fresh(feats[None], np.array([len(feats)]))[0]
    assert np.max(np.abs(a - b)) <= 1e-6, f"{npz} is not {pt}'s export: run scripts/export-models.sh"
