"""One file is the whole model: round trip of config, vocabulary, stats, weights and card."""
import pytest
import torch

from asr.checkpoint import ModelError, load_model, read_payload, save_model
from asr.features import log_mel
from asr.model import AcousticModel, ModelConfig


def test_round_trip_keeps_everything(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(conv_channels=32, hidden_size=48, num_layers=2, lookahead=3, conv_strides=(2, 2))
    model = AcousticModel(cfg).eval()
    model.feat_mean.uniform_(-10, 0)
    model.feat_std.uniform_(1, 4)
    path = tmp_path / "m.pt"
    save_model(model, path, card={"trained_on": "nothing"})
    loaded = load_model(path)
    assert loaded.cfg == cfg
    assert loaded.card == {"trained_on": "nothing"}
    assert torch.equal(loaded.feat_mean, model.feat_mean) and torch.equal(loaded.feat_std, model.feat_std)
    feats = log_mel(torch.randn(8000) * 0.1)[None]
    lengths = torch.tensor([feats.shape[1]])
    with torch.no_grad():
        assert torch.equal(model(feats, lengths)[0], loaded(feats, lengths)[0])
    payload = read_payload(path)
    assert payload["features"]["n_mels"] == 80 and payload["vocab"][0] == "<b>"


def test_half_precision_export_is_smaller_and_close(tmp_path):
    torch.manual_seed(1)
    model = AcousticModel(ModelConfig(conv_channels=64, hidden_size=128, num_layers=2)).eval()
    save_model(model, tmp_path / "f32.pt")
    save_model(model, tmp_path / "f16.pt", half=True)
    assert (tmp_path / "f16.pt").stat().st_size < 0.6 * (tmp_path / "f32.pt").stat().st_size
    feats = log_mel(torch.randn(8000) * 0.1)[None]
    lengths = torch.tensor([feats.shape[1]])
    with torch.no_grad():
        a = model(feats, lengths)[0]
        b = load_model(tmp_path / "f16.pt")(feats, lengths)[0]
    assert torch.max(torch.abs(a - b)) < 0.05
    assert (load_model(tmp_path / "f16.pt").head.weight.dtype == torch.float32)


def test_bad_model_files_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="not a model file"):
        load_model(tmp_path / "junk.pt")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not an asr model"):
        load_model(tmp_path / "other.pt")
    model = AcousticModel(ModelConfig(conv_channels=8, hidden_size=8, num_layers=1))
    save_model(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["vocab"] = payload["vocab"][:-1]
    torch.save(payload, tmp_path / "vocab.pt")
    with pytest.raises(ModelError, match="vocabulary"):
        load_model(tmp_path / "vocab.pt")


def test_files_from_before_per_layer_grus_still_load(tiny_model_path, cathy_clips):
    """tiny_uni.pt was written when the GRU stack was a single nn.GRU (keys gru.weight_ih_l1
    ...) and before the layer_norm option: it loads as a model without LayerNorm and still
    transcribes its clips."""
    from asr.transcribe import transcribe
    payload = read_payload(tiny_model_path)
    assert any(k.startswith("gru.") for k in payload["state_dict"]) and "layer_norm" not in payload["config"]
    model = load_model(tiny_model_path)
    assert model.cfg.layer_norm is False and len(model.grus) == model.cfg.num_layers
    path, text = cathy_clips[0]
    assert transcribe(model, path, punctuation=False).text == text


def test_bundled_models_by_name_and_the_default_for_files(monkeypatch, tiny_model_path):
    from asr import checkpoint
    from asr.checkpoint import resolve_model
    if checkpoint.bundled_model_path("streaming") is None:
        pytest.skip("no bundled model in this checkout")
    assert resolve_model("streaming") == checkpoint.bundled_model_path("streaming")
    assert resolve_model(None) == checkpoint.bundled_model_path("streaming")  # live audio: the streaming model
    assert resolve_model(tiny_model_path) == tiny_model_path  # a path is a path
    # files get the offline model where it is bundled, else the streaming one
    monkeypatch.setitem(checkpoint.BUNDLED, "offline", "no-such-model.pt")
    assert resolve_model(None, offline=True) == checkpoint.bundled_model_path("streaming")
    with pytest.raises(ModelError, match="offline: this installation has no bundled offline model"):
        resolve_model("offline")
    with pytest.raises(ModelError, match="no such model file"):
        load_model("streamin")  # a typo of a name is a missing file, named as typed
