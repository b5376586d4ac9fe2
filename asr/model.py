"""The acoustic model: conv front-end -> stacked GRU -> optional lookahead -> CTC head.

Shapes: B batch, T feature frames (10 ms), U = T // subsampling output frames, C channels,
H GRU hidden size, V vocabulary size.

One code path serves training and streaming. `forward(feats, lengths)` is the whole-utterance
pass. `infer(feats, lengths, state, final)` takes and returns an explicit `StreamState`, and a
chain of infer calls over any split of the features (in multiples of the subsampling factor)
gives the log-probs of the whole-utterance pass. Nothing is kept on the module between calls.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .runtime import ModelConfig  # the config is shared with the torch-free runtime
from .whisper import N_FREQS, output_frames


@dataclass
class StreamState:
    """Everything a unidirectional model carries from one chunk to the next.

    conv:       per conv layer, the pending input frames (B, kernel - stride, C_in)
    gru:        GRU hidden state (num_layers, B, H)
    ahead:      GRU outputs waiting for their future context (B, lookahead, H), right-aligned
    ahead_fill: how many of `ahead` are real (B,), < lookahead only at the stream's start
    """
    conv: list[Tensor]
    gru: Tensor
    ahead: Tensor
    ahead_fill: Tensor

    @property
    def batch_size(self) -> int:
        return self.gru.shape[1]

    def unbind(self) -> list["StreamState"]:
        """Split a batch state into B single-stream states."""
        return [StreamState([c[i:i + 1] for c in self.conv], self.gru[:, i:i + 1],
                            self.ahead[i:i + 1], self.ahead_fill[i:i + 1]) for i in range(self.batch_size)]

    @staticmethod
    def stack(states: list["StreamState"]) -> "StreamState":
        """Join single- or multi-stream states into one batch state."""
        return StreamState([torch.cat(cs, 0) for cs in zip(*(s.conv for s in states))],
                           torch.cat([s.gru for s in states], 1),
                           torch.cat([s.ahead for s in states], 0),
                           torch.cat([s.ahead_fill for s in states], 0))


def _gather_rows(x: Tensor, start: Tensor, count: int) -> Tensor:
    """x (B, T, C), start (B,) -> x[b, start[b] : start[b] + count] as (B, count, C)."""
    if x.shape[0] == 1:  # one stream (the common streaming case): a plain slice
        s = int(start[0])
        if 0 <= s and s + count <= x.shape[1]:
            return x[:, s:s + count]
    idx = start[:, None] + torch.arange(count, device=x.device)[None]
    idx = idx.clamp_(0, x.shape[1] - 1)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))


def _per_layer_gru_keys(state_dict, prefix, *args):
    """Files written when the GRU stack was one nn.GRU name its layers gru.weight_ih_l{i}...;
    the stack is now one nn.GRU per layer (grus.{i}.weight_ih_l0...)."""
    for key in [k for k in state_dict if k.startswith(prefix + "gru.")]:
        name = key[len(prefix) + 4:]  # weight_ih_l2_reverse
        base, _, rest = name.partition("_l")
        layer, _, suffix = rest.partition("_")
        state_dict[f"{prefix}grus.{layer}.{base}_l0{'_' + suffix if suffix else ''}"] = state_dict.pop(key)


class AcousticModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # Global feature normalisation, stored with the weights (never per utterance).
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        if cfg.whisper:  # Whisper's encoder (frozen), then LayerNorm and a Linear into the GRUs
            self.encoder = WhisperEncoder(cfg.encoder_dims).requires_grad_(False)
            self.register_buffer("whisper_fbank", torch.zeros(N_FREQS, cfg.encoder_dims[0]))
            self.in_norm = nn.LayerNorm(cfg.encoder_dims[2])
            self.in_proj = nn.Linear(cfg.encoder_dims[2], cfg.conv_channels)
            self.convs = nn.ModuleList()
        else:
            chans = [cfg.n_mels] + [cfg.conv_channels] * len(cfg.conv_strides)
            self.convs = nn.ModuleList(
                nn.Conv1d(cin, cout, cfg.conv_kernel, stride=s) for cin, cout, s in zip(chans, chans[1:], cfg.conv_strides))
        out_size = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        self.grus = nn.ModuleList(
            nn.GRU(cfg.conv_channels if i == 0 else out_size, cfg.hidden_size, batch_first=True,
                   bidirectional=cfg.bidirectional) for i in range(cfg.num_layers))
        self.norms = nn.ModuleList(
            nn.LayerNorm(out_size) if cfg.layer_norm else nn.Identity() for _ in range(cfg.num_layers))
        self._register_load_state_dict_pre_hook(_per_layer_gru_keys)
        if cfg.lookahead:
            # Row convolution (Deep Speech 2): out_t = sum_j w_j * h_{t+j}, j = 0..lookahead, per channel.
            self.row_conv = nn.Parameter(torch.zeros(out_size, cfg.lookahead + 1))
            with torch.no_grad():
                self.row_conv[:, 0] = 1.0  # starts as the identity
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(out_size, cfg.vocab_size)

    # ------------------------------------------------------------------ state
    def init_state(self, batch_size: int = 1, device: torch.device | str | None = None) -> StreamState:
        cfg = self.cfg
        device = device or self.head.weight.device
        chans = [cfg.n_mels] + [cfg.conv_channels] * len(cfg.conv_strides)
        conv = [torch.zeros(batch_size, cfg.conv_kernel - s, c, device=device) for s, c in zip(cfg.conv_strides, chans)
                ] if not cfg.whisper else []
        dirs = 2 if cfg.bidirectional else 1
        gru = torch.zeros(cfg.num_layers * dirs, batch_size, cfg.hidden_size, device=device)
        ahead = torch.zeros(batch_size, cfg.lookahead, cfg.hidden_size * dirs, device=device)
        return StreamState(conv, gru, ahead, torch.zeros(batch_size, dtype=torch.long, device=device))

    # ------------------------------------------------------------------ passes
    def forward(self, feats: Tensor, lengths: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """Whole utterances. feats (B, T, 80) log-mel (Whisper's for a whisper frontend), lengths
        (B,) -> log-probs (B, U, V), lengths (B,). encoded=True (whisper frontend): feats are the
        encoder's outputs (B, U, d_model) already, as training reads them from its cache."""
        if self.cfg.whisper and not encoded:
            feats, lengths = self.encoder(feats, lengths)
        state = self.init_state(feats.shape[0], feats.device)
        log_probs, out_lengths, _ = self._step(feats, lengths, state, True, need_state=False)
        return log_probs, out_lengths

    def infer(self, feats: Tensor, lengths: Tensor, state: StreamState, final: bool = False
              ) -> tuple[Tensor, Tensor, StreamState]:
        """One streaming step. feats (B, T, 80) with lengths (B,) new frames per stream, each a
        multiple of `cfg.subsampling` unless final; -> (log-probs (B, U', V) of the newly
        emitted output frames, their counts (B,), the next state). With final=True the
        remaining lookahead is flushed, as at the end of the whole-utterance pass.
        """
        if not self.cfg.streaming:
            raise ValueError("a bidirectional model cannot stream; use a unidirectional model")
        return self._step(feats, lengths, state, final)

    def _step(self, feats: Tensor, lengths: Tensor, state: StreamState, final: bool, need_state: bool = True):
        lengths = lengths.to(feats.device)
        if self.cfg.whisper:  # feats: the encoder's outputs (B, U, d_model)
            x, conv_state = self.in_proj(self.in_norm(feats)), state.conv
        else:
            x = (feats - self.feat_mean) / self.feat_std  # (B, T, 80)
            x, lengths, conv_state = self._frontend(x, lengths, state.conv)  # (B, U, C)
        x = self.drop(x)
        if need_state or self.cfg.bidirectional:
            h, gru_state = self._rnn(x, lengths, state.gru)  # (B, U, H*dirs)
        else:  # causal: padding after a stream's end cannot reach its outputs, so skip packing
            h, gru_state = self._layers(x, state.gru)
        h, out_lengths, ahead, fill = self._lookahead(h, lengths, state.ahead, state.ahead_fill, final)
        logits = self.head(self.drop(h))  # (B, U', V)
        return logits.log_softmax(-1), out_lengths, StreamState(conv_state, gru_state, ahead, fill)

    def _frontend(self, x: Tensor, lengths: Tensor, conv_state: list[Tensor]):
        """Strided convs, each left-padded by its pending frames: output j of a layer sees inputs
        up to j*s + s - 1, so a layer of stride s turns T frames into T // s."""
        new_state = []
        for conv, pending in zip(self.convs, conv_state):
            s, keep = conv.stride[0], pending.shape[1]
            x = torch.cat([pending.to(x.dtype), x], 1)  # (B, keep + T, C)
            lengths = torch.div(lengths, s, rounding_mode="floor")
            new_state.append(_gather_rows(x, lengths * s, keep) if keep else pending)
            k = conv.kernel_size[0]
            if x.shape[1] < k:  # too short for one window: nothing valid comes out
                x = F.pad(x, (0, 0, 0, k - x.shape[1]))
            # The convolution as one matrix product over unfolded windows: the same numbers as
            # conv1d, several times faster on the few frames of a streaming chunk.
            windows = x.unfold(1, k, s).flatten(2)  # (B, T // s, C_in * k)
            x = F.gelu(F.linear(windows, conv.weight.flatten(1), conv.bias))  # (B, T // s, C_out)
        return x, lengths, new_state

    def _layers(self, x: Tensor, h0: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The GRU stack over x (B, U, C) from h0 (L*dirs, B, H) -> (B, U, H*dirs), (L*dirs, B, H).
        With lengths, each sequence is packed to its length (exact final states, and exact
        outputs both ways for bidirectional layers); padded positions come out as zeros."""
        dirs = 2 if self.cfg.bidirectional else 1
        U = x.shape[1]
        states = []
        for i, (gru, norm) in enumerate(zip(self.grus, self.norms)):
            h = h0[i * dirs:(i + 1) * dirs].contiguous()
            if lengths is None:
                y, h = gru(x, h)
            else:
                packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
                y, h = gru(packed, h)
                y = pad_packed_sequence(y, batch_first=True, total_length=U)[0]
            states.append(h)
            x = norm(y)
            if i < len(self.grus) - 1:
                x = self.drop(x)
        return x, torch.cat(states, 0)

    def _rnn(self, x: Tensor, lengths: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """GRU stack over each stream's first lengths[b] frames from h0 (L*dirs, B, H); streams
        with no new frames keep their state."""
        B, U, _ = x.shape
        if B == 1:
            n = int(lengths[0])
            if n == 0:
                return x.new_zeros(1, U, self.head.in_features), h0
            out, h = self._layers(x[:, :n], h0)
            return F.pad(out, (0, 0, 0, U - n)), h
        active = (lengths > 0).nonzero().flatten()
        out = x.new_zeros(B, U, self.head.in_features)
        h = h0.clone()
        if len(active):
            out_a, h_a = self._layers(x[active], h0[:, active], lengths[active])
            out[active] = out_a
            h[:, active] = h_a
        return out, h

    def _lookahead(self, h: Tensor, lengths: Tensor, ahead: Tensor, fill: Tensor, final: bool):
        """Row convolution over [pending outputs, new outputs, zeros if final].

        Emits, per stream, the outputs whose future context is complete (or all of them when
        final), and keeps the last `lookahead` GRU outputs for the next call.
        """
        k = self.cfg.lookahead
        if k == 0:
            return h, lengths, ahead, fill
        B, U, D = h.shape
        valid = torch.arange(U, device=h.device)[None] < lengths[:, None]
        h = h * valid[..., None]  # zeros past each stream's end: the right padding when final
        seq = torch.cat([ahead.to(h.dtype), h, h.new_zeros(B, k, D)], 1)  # (B, k + U + k, D)
        windows = seq.unfold(1, k + 1, 1)  # (B, U + k, D, k + 1): windows[:, p] = seq[:, p : p + k + 1]
        y = (windows * self.row_conv).sum(-1)  # (B, U + k, D)
        start = k - fill
        end = lengths + k if final else lengths
        counts = (end - start).clamp_min(0)
        out = _gather_rows(y, start, int(counts.max()) if B else 0)
        new_ahead = _gather_rows(seq, lengths, k)
        new_fill = (fill + lengths).clamp_max(k)
        return out, counts, new_ahead, new_fill

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Whole-utterance output frames for feature lengths (B,)."""
        if self.cfg.whisper:
            return self.encoder.output_lengths(lengths)
        for s in self.cfg.conv_strides:
            lengths = torch.div(lengths, s, rounding_mode="floor")
        return lengths

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What training updates: everything but a frozen encoder."""
        return [p for p in self.parameters() if p.requires_grad]


def bidirectional_from_streaming(src: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """A bidirectional model's initial weights from a unidirectional (streaming) model's state dict.

    The forward half of every layer is the streaming model's layer, reading only the forward half of
    the layer below; the backward half is a copy of it (same weights, run in reverse), reading only
    the backward half below; the head starts from the forward half alone, with zeros for the
    backward half. So the new model starts as the streaming model without its lookahead (up to the
    LayerNorms, which now see both halves) and learns from there how to use the future.
    Both models must have the same conv front-end, hidden size and depth.
    """
    if not cfg.bidirectional:
        raise ValueError("bidirectional_from_streaming makes bidirectional weights")
    src = dict(src)
    _per_layer_gru_keys(src, "")
    H = cfg.hidden_size
    if src["grus.0.weight_hh_l0"].shape != (3 * H, H) or f"grus.{cfg.num_layers - 1}.weight_hh_l0" not in src \
            or f"grus.{cfg.num_layers}.weight_hh_l0" in src:
        raise ValueError("the streaming model must have the same hidden size and number of layers")
    out = {k: v.clone() for k, v in src.items() if k.startswith(("feat_", "convs."))}
    for i in range(cfg.num_layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            w = src[f"grus.{i}.{name}_l0"]
            fwd, bwd = w.clone(), w.clone()
            if name == "weight_ih" and i > 0:  # input is now [forward half, backward half] of the layer below
                zeros = torch.zeros_like(w)
                fwd, bwd = torch.cat([w, zeros], 1), torch.cat([zeros, w], 1)
            out[f"grus.{i}.{name}_l0"], out[f"grus.{i}.{name}_l0_reverse"] = fwd, bwd
        for name in ("weight", "bias"):
            key = f"norms.{i}.{name}"
            if key in src:
                out[key] = torch.cat([src[key], src[key]])
    out["head.weight"] = torch.cat([src["head.weight"], torch.zeros_like(src["head.weight"])], 1)
    out["head.bias"] = src["head.bias"].clone()
    return out


def widened(src: dict[str, Tensor], src_cfg: dict, cfg: ModelConfig, seed: int = 0,
            scale: float = 1e-3) -> dict[str, Tensor]:
    """A wider model's initial weights from a trained model's state dict (Net2Net-style growth).

    Each GRU gets cfg.hidden_size - H new units per direction. Their input and recurrent weights are
    small random numbers (scale; distinct, so that they do not learn alike), and every weight that
    reads them (the old units' recurrent weights, the layer above, the head) starts at zero: the new
    units sit near zero and the old ones compute what they did. The LayerNorms, which average over the
    new units too, get their old gains scaled by sqrt(H / new H), which keeps the old features' scale
    when the new ones are near zero. Everything else (front-end, depth, direction, lookahead) must
    match. Training then has the extra width to use.
    """
    src = dict(src)
    _per_layer_gru_keys(src, "")
    H, H2 = int(src["grus.0.weight_hh_l0"].shape[1]), cfg.hidden_size
    same = ("conv_channels", "conv_kernel", "conv_strides", "num_layers", "bidirectional", "lookahead", "layer_norm")
    differ = [k for k in same if k in src_cfg and _as_tuple(src_cfg[k]) != _as_tuple(getattr(cfg, k))]
    if differ or H2 <= H or f"grus.{cfg.num_layers - 1}.weight_hh_l0" not in src:
        raise ValueError("widening needs a larger hidden size and the same front-end, depth, direction and "
                         f"lookahead (they differ in: {', '.join(differ) or 'hidden size'})")
    gen = torch.Generator().manual_seed(seed)
    dirs = 2 if cfg.bidirectional else 1
    suffixes = ["_l0", "_l0_reverse"][:dirs]

    def rand(*shape: int) -> Tensor:
        return scale * torch.randn(*shape, generator=gen)

    def spread(w: Tensor, dim: int) -> Tensor:
        """Features laid out [H per direction] -> [H2 per direction], zeros in the new places."""
        parts = w.split(H, dim)
        shape = list(w.shape)
        shape[dim] = H2 - H
        return torch.cat([t for p in parts for t in (p, w.new_zeros(shape))], dim)

    out = {k: v.clone() for k, v in src.items() if k.startswith(("feat_", "convs."))}
    for i in range(cfg.num_layers):
        for s in suffixes:
            w_ih, w_hh = src[f"grus.{i}.weight_ih{s}"], src[f"grus.{i}.weight_hh{s}"]
            if i > 0:
                w_ih = spread(w_ih, 1)  # the layer below is wider: its new features are not read yet
            new_ih, new_hh = [], []
            for g in range(3):  # gates r, z, n: old rows, then the new units' rows
                new_ih += [w_ih[g * H:(g + 1) * H], rand(H2 - H, w_ih.shape[1])]
                old = torch.cat([w_hh[g * H:(g + 1) * H], w_hh.new_zeros(H, H2 - H)], 1)
                new_hh += [old, rand(H2 - H, H2)]
            out[f"grus.{i}.weight_ih{s}"] = torch.cat(new_ih)
            out[f"grus.{i}.weight_hh{s}"] = torch.cat(new_hh)
            for name in ("bias_ih", "bias_hh"):
                b = src[f"grus.{i}.{name}{s}"]
                out[f"grus.{i}.{name}{s}"] = torch.cat([t for g in range(3) for t in (b[g * H:(g + 1) * H], b.new_zeros(H2 - H))])
        if f"norms.{i}.weight" in src:
            gain = (H / H2) ** 0.5
            out[f"norms.{i}.weight"] = spread(src[f"norms.{i}.weight"] * gain, 0)
            out[f"norms.{i}.weight"][torch.cat([torch.arange(d * H2 + H, (d + 1) * H2) for d in range(dirs)])] = 1.0
            out[f"norms.{i}.bias"] = spread(src[f"norms.{i}.bias"], 0)
    if "row_conv" in src:
        rc = spread(src["row_conv"], 0)
        rc[torch.cat([torch.arange(d * H2 + H, (d + 1) * H2) for d in range(dirs)]), 0] = 1.0  # identity
        out["row_conv"] = rc
    out["head.weight"] = spread(src["head.weight"], 1)
    out["head.bias"] = src["head.bias"].clone()
    return out


def _as_tuple(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder (openai/whisper's AudioEncoder) on inputs of any length up to its
    context, with a batch of lengths: mel (B, T, n_mels) -> (B, ceil(T / 2), d_model), 20 ms frames.

    Padding past a sequence's length reaches nothing: the frames past it are zeroed before each
    conv (what the convs' own zero padding gives an unpadded sequence) and masked out of attention,
    so a batch gives each sequence what it gets alone. Frozen in training (its weights come from a
    Whisper checkpoint, asr/whisper.py); its outputs are cached once per utterance.
    """

    def __init__(self, dims: tuple[int, int, int, int, int]):
        super().__init__()
        n_mels, n_ctx, d, self.n_heads, n_layers = dims
        self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positional", torch.zeros(n_ctx, d))
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "attn_ln": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d), "out": nn.Linear(d, d),
            "mlp_ln": nn.LayerNorm(d), "mlp0": nn.Linear(d, 4 * d), "mlp2": nn.Linear(4 * d, d)}) for _ in range(n_layers))
        self.ln_post = nn.LayerNorm(d)

    def load_whisper(self, weights: dict) -> None:
        """Weights in asr.whisper's canonical names (numpy arrays)."""
        def t(name):
            return torch.as_tensor(np.asarray(weights[name], np.float32))
        with torch.no_grad():
            for conv in ("conv1", "conv2"):
                getattr(self, conv).weight.copy_(t(f"{conv}.weight"))
                getattr(self, conv).bias.copy_(t(f"{conv}.bias"))
            self.positional.copy_(t("positional"))
            for i, b in enumerate(self.blocks):
                for ours, theirs in (("attn_ln", "attn_ln"), ("qkv", "attn.qkv"), ("out", "attn.out"),
                                     ("mlp_ln", "mlp_ln"), ("mlp0", "mlp.0"), ("mlp2", "mlp.2")):
                    b[ours].weight.copy_(t(f"blocks.{i}.{theirs}.weight"))
                    b[ours].bias.copy_(t(f"blocks.{i}.{theirs}.bias"))
            self.ln_post.weight.copy_(t("ln_post.weight"))
            self.ln_post.bias.copy_(t("ln_post.bias"))

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return output_frames(lengths)

    def forward(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, T, _ = mel.shape
        lengths = lengths.to(mel.device)
        out_lengths = self.output_lengths(lengths)
        U = (T + 1) // 2
        if U > self.positional.shape[0]:
            raise ValueError(f"{T} mel frames exceed the encoder's context of {2 * self.positional.shape[0]}")
        keep_in = (torch.arange(T, device=mel.device)[None] < lengths[:, None])  # (B, T)
        keep = (torch.arange(U, device=mel.device)[None] < out_lengths[:, None])  # (B, U)
        x = (mel * keep_in[..., None]).transpose(1, 2)  # (B, n_mels, T)
        x = F.gelu(self.conv1(x)) * keep_in[:, None]
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, U, d)
        x = x + self.positional[:U]
        mask = keep[:, None, None, :]  # (B, 1, 1, U): keys past a sequence's end are not attended to
        d = x.shape[-1]
        for b in self.blocks:
            q, k, v = b["qkv"](b["attn_ln"](x)).view(B, U, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, U, d / heads)
            x = x + b["out"](a.transpose(1, 2).reshape(B, U, d))
            x = x + b["mlp2"](F.gelu(b["mlp0"](b["mlp_ln"](x))))
        return self.ln_post(x) * keep[..., None], out_lengths
