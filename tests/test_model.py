"""asr.model beyond streaming: a streaming model seeds a bidirectional one."""
import pytest
import torch

from asr.model import AcousticModel, ModelConfig, bidirectional_from_streaming


def _streaming(layer_norm: bool, seed: int = 0) -> AcousticModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(conv_channels=16, hidden_size=12, num_layers=3, lookahead=0, layer_norm=layer_norm, dropout=0.0)
    model = AcousticModel(cfg).eval()
    with torch.no_grad():  # a head and norms that are not at their initial values
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _bidirectional_from(uni: AcousticModel) -> AcousticModel:
    cfg = ModelConfig(**{**uni.cfg.__dict__, "bidirectional": True})
    bi = AcousticModel(cfg).eval()
    bi.load_state_dict(bidirectional_from_streaming(uni.state_dict(), cfg))
    return bi


def assert_same_outputs(a: AcousticModel, b: AcousticModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Both models give the same outputs (up to float error) on a batch of two random inputs; returns it."""
    feats, lengths = torch.randn(2, 60, 80), torch.tensor([60, 41])
    with torch.no_grad():
        (x, lx), (y, ly) = a(feats, lengths), b(feats, lengths)
    assert torch.equal(lx, ly)
    for i, n in enumerate(lx.tolist()):
        torch.testing.assert_close(y[i, :n], x[i, :n], atol=1e-5, rtol=1e-5)
    return feats, lengths


def test_the_widened_model_starts_as_the_streaming_model():
    """Without LayerNorm (which sees both halves) the forward half is the streaming model exactly:
    the backward half does not reach the forward half or the head until training moves it."""
    uni = _streaming(layer_norm=False)
    bi = _bidirectional_from(uni)
    assert_same_outputs(uni, bi)


def test_with_layer_norm_it_starts_close_and_the_backward_half_is_live():
    uni = _streaming(layer_norm=True)
    bi = _bidirectional_from(uni)
    feats, lengths = torch.randn(1, 80, 80), torch.tensor([80])
    with torch.no_grad():
        a, b = uni(feats, lengths)[0], bi(feats, lengths)[0]
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.5
    # training can move the backward half: the loss reaches its weights through the head
    bi.train()
    out, _ = bi(feats, lengths)
    out.logsumexp(-1).sum().backward()  # any function of all outputs
    assert bi.grus[2].weight_hh_l0_reverse.grad is not None
    assert bi.head.weight.grad[:, 12:].abs().sum() > 0


def test_it_refuses_models_of_another_shape():
    uni = _streaming(layer_norm=True)
    cfg = ModelConfig(conv_channels=16, hidden_size=24, num_layers=3, bidirectional=True, lookahead=0)
    with pytest.raises(ValueError, match="hidden size"):
        bidirectional_from_streaming(uni.state_dict(), cfg)


def _wider(model: AcousticModel, hidden: int) -> AcousticModel:
    from asr.model import widened
    cfg = ModelConfig(**{**model.cfg.__dict__, "hidden_size": hidden})
    wide = AcousticModel(cfg).eval()
    wide.load_state_dict(widened(model.state_dict(), model.cfg.__dict__, cfg, seed=1))
    return wide


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_widened_model_starts_as_the_smaller_one_and_can_use_its_new_units(bidirectional):
    small = _streaming(layer_norm=False)
    if bidirectional:
        small = _bidirectional_from(small)
    wide = _wider(small, 20)
    assert wide.grus[1].weight_hh_l0.shape == (60, 20)
    feats, lengths = assert_same_outputs(small, wide)
    wide.train()
    out, _ = wide(feats, lengths)
    out.logsumexp(-1).sum().backward()
    new = slice(12, 20)
    assert wide.head.weight.grad[:, new].abs().sum() > 0  # the head can learn to read the new units
    assert wide.grus[1].weight_ih_l0.grad[:, new].abs().sum() > 0  # and so can the layer above


def test_with_layer_norm_the_widened_model_gives_nearly_the_same_outputs():
    small = _streaming(layer_norm=True)
    wide = _wider(small, 24)
    feats, lengths = torch.randn(1, 80, 80), torch.tensor([80])
    with torch.no_grad():
        a, b = small(feats, lengths)[0], wide(feats, lengths)[0]
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9


def test_widening_refuses_another_depth_or_a_narrower_model():
    from asr.model import widened
    small = _streaming(layer_norm=True)
    for change in ({"num_layers": 2, "hidden_size": 20}, {"hidden_size": 8}):
        cfg = ModelConfig(**{**small.cfg.__dict__, **change})
        with pytest.raises(ValueError, match="widening needs"):
            widened(small.state_dict(), small.cfg.__dict__, cfg)
