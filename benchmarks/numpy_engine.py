"""A numpy implementation of the acoustic model's layers: the engine benchmarks/runtime.py
measures against ONNX Runtime (asr/runtime.py) and torch (asr/model.py), to show why the
runtime is ONNX Runtime. Same contract and state as asr.runtime.Model; log-probs within 1e-4
of torch's (the benchmark checks it before timing).
"""
import math

import numpy as np

from asr.runtime import Model as RuntimeModel, ModelConfig, StreamState, _gather_rows

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26), as numpy has none; computed in float64."""
    a = np.abs(x, dtype=np.float64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.copysign(1.0 - poly * np.exp(-a * a), x)


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU of torch.nn.functional.gelu, float32 in and out."""
    return (0.5 * x * (1.0 + _erf(x * (1 / math.sqrt(2))))).astype(np.float32)


class _GRU:
    """One direction of one torch.nn.GRU layer (gates r, z, n; linear_before_reset):
        r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
    The r and z rows are pre-scaled by 1/2 (exact in binary floating point) so that
    sigmoid(v) = (tanh(v / 2) + 1) / 2 costs one tanh."""

    def __init__(self, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray):
        H = w_hh.shape[1]
        self.H = H
        half = np.ones(3 * H, np.float32)
        half[:2 * H] = 0.5
        self.w_ih = np.ascontiguousarray((w_ih * half[:, None]).T)  # (C, 3H)
        self.b_ih = (b_ih + np.concatenate([b_hh[:2 * H], np.zeros(H, np.float32)])) * half  # b_hr, b_hz folded in
        self.w_hh = np.ascontiguousarray((w_hh * half[:, None]).T)  # (H, 3H)
        self.b_hn = b_hh[2 * H:].copy()  # (H,)

    def __call__(self, x: np.ndarray, lengths: np.ndarray, h: np.ndarray, reverse: bool = False):
        """x (B, U, C) with lengths (B,) valid frames each, h (B, H) -> outputs (B, U, H) (zeros
        past each length), the state after each sequence's last valid frame (B, H). reverse:
        run each sequence from its own last valid frame back to its first."""
        B, U, _ = x.shape
        H = self.H
        xi = (x.reshape(B * U, -1) @ self.w_ih).reshape(B, U, 3 * H) + self.b_ih  # one GEMM
        ragged = bool((lengths != U).any())
        if reverse:  # time-reverse each sequence within its own length (an involution)
            t = np.arange(U)[None]
            order = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, U)
            xi = xi[np.arange(B)[:, None], order]
        y = np.zeros((B, U, H), np.float32)
        for t in range(U):
            g = h @ self.w_hh  # (B, 3H)
            rz = np.tanh(xi[:, t, :2 * H] + g[:, :2 * H])
            rz += 1.0
            rz *= 0.5  # [r, z]
            n = g[:, 2 * H:] + self.b_hn
            n *= rz[:, :H]
            n += xi[:, t, 2 * H:]
            np.tanh(n, out=n)
            h_new = n + rz[:, H:] * (h - n)
            if ragged:
                live = (t < lengths)[:, None]
                h_new = np.where(live, h_new, h)
                y[:, t] = np.where(live, h_new, 0.0)
            else:
                y[:, t] = h_new
            h = h_new
        if reverse:
            y = y[np.arange(B)[:, None], order]
        return y, h


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """torch.nn.LayerNorm over the last axis."""
    mean = x.mean(-1, keepdims=True)
    d = x - mean
    var = (d * d).mean(-1, keepdims=True)
    return d / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


# ---------------------------------------------------------------------------- the model
class NumpyModel(RuntimeModel):
    """asr.runtime.Model's contract with numpy layers. weights: the torch state dict's arrays
    under their names (any float dtype; computed in float32); fbank: the mel filterbank (201, 80)."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], fbank: np.ndarray,
                 card: dict | None = None, source: str | None = None):
        self.cfg = cfg
        self.fbank = np.asarray(fbank, np.float64)
        self.card = dict(card or {})
        self.source = source
        w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        self.feat_mean, self.feat_std = w["feat_mean"], w["feat_std"]
        self.convs = []  # (weight (C_in * kernel, C_out), bias (C_out,), stride)
        for i, s in enumerate(cfg.conv_strides):
            cw = w[f"convs.{i}.weight"]  # (C_out, C_in, kernel)
            self.convs.append((np.ascontiguousarray(cw.reshape(cw.shape[0], -1).T), w[f"convs.{i}.bias"], s))
        suffixes = ["", "_reverse"] if cfg.bidirectional else [""]
        self.grus = [[_GRU(*(w[f"grus.{i}.{name}_l0{sfx}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
                      for sfx in suffixes] for i in range(cfg.num_layers)]
        self.norms = [(w[f"norms.{i}.weight"], w[f"norms.{i}.bias"]) if cfg.layer_norm else None
                      for i in range(cfg.num_layers)]
        self.row_conv = w["row_conv"].T.copy() if cfg.lookahead else None  # (lookahead + 1, D)
        self.head_w, self.head_b = np.ascontiguousarray(w["head.weight"].T), w["head.bias"]  # (D, V), (V,)
        self.dims = cfg.hidden_size * len(suffixes)  # D

    def _step(self, feats: np.ndarray, lengths: np.ndarray, state: StreamState, final: bool):
        feats, lengths = np.asarray(feats, np.float32), np.asarray(lengths, np.int64).reshape(-1)
        x = (feats - self.feat_mean) / self.feat_std  # (B, T, 80)
        x, lengths, conv_state = self._frontend(x, lengths, state.conv)  # (B, U, C)
        h, gru_state = self._rnn(x, lengths, state.gru)  # (B, U, D)
        h, counts, ahead, fill = self._lookahead(h, lengths, state.ahead, state.ahead_fill, final)
        B, U, D = h.shape
        logits = (h.reshape(B * U, D) @ self.head_w).reshape(B, U, self.head_w.shape[1]) + self.head_b  # (B, U', V)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        return log_probs, counts, StreamState(conv_state, gru_state, ahead, fill)

    def _frontend(self, x: np.ndarray, lengths: np.ndarray, conv_state: list[np.ndarray]):
        """Strided GELU convs, each left-padded by its pending frames: output j of a layer sees
        inputs up to j*s + s - 1, so a layer of stride s turns T frames into T // s."""
        k = self.cfg.conv_kernel
        new_state = []
        for (weight, bias, s), pending in zip(self.convs, conv_state):
            pending = pending.transpose(0, 2, 1)  # the runtime's state is channels first
            keep = pending.shape[1]
            x = np.concatenate([pending, x], 1)  # (B, keep + T, C)
            lengths = lengths // s
            new_state.append((_gather_rows(x, lengths * s, keep) if keep else pending).transpose(0, 2, 1))
            if x.shape[1] < k:  # too short for one window: nothing valid comes out
                x = np.pad(x, ((0, 0), (0, k - x.shape[1]), (0, 0)))
            windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=1)[:, ::s]  # (B, T // s, C_in, k)
            B, n = windows.shape[:2]
            x = gelu((windows.reshape(B * n, -1) @ weight).reshape(B, n, -1) + bias)  # (B, T // s, C_out)
        return x, lengths, new_state

    def _rnn(self, x: np.ndarray, lengths: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The GRU stack over each stream's first lengths[b] frames of x (B, U, C) from h0
        (L*dirs, B, H) -> (B, U, D), (L*dirs, B, H); streams with no new frames keep their state."""
        B, U, _ = x.shape
        if B == 1 and U > lengths[0]:  # one stream: only its valid frames
            y, h = self._rnn(x[:, :lengths[0]], lengths, h0)
            return np.pad(y, ((0, 0), (0, U - y.shape[1]), (0, 0))), h
        states = []
        for layer, norm in zip(self.grus, self.norms):
            outs = []
            for d, gru in enumerate(layer):
                y, h = gru(x, lengths, h0[len(states)], reverse=d == 1)
                outs.append(y)
                states.append(h)
            x = outs[0] if len(outs) == 1 else np.concatenate(outs, -1)
            if norm is not None:
                x = _layer_norm(x, *norm)
        return x, np.stack(states) if states else h0

    def _lookahead(self, h: np.ndarray, lengths: np.ndarray, ahead: np.ndarray, fill: np.ndarray, final: bool):
        """Row convolution over [pending outputs, new outputs, zeros if final].

        Emits, per stream, the outputs whose future context is complete (or all of them when
        final), and keeps the last `lookahead` GRU outputs for the next call.
        """
        k = self.cfg.lookahead
        if k == 0:
            return h, lengths, ahead, fill
        B, U, D = h.shape
        h = h * (np.arange(U)[None] < lengths[:, None])[..., None]  # zeros past each stream's end
        seq = np.concatenate([ahead, h, np.zeros((B, k, D), np.float32)], 1)  # (B, k + U + k, D)
        y = seq[:, :U + k] * self.row_conv[0]  # (B, U + k, D): y[:, p] = sum_j w_j * seq[:, p + j]
        for j in range(1, k + 1):
            y += seq[:, j:j + U + k] * self.row_conv[j]
        start = k - fill
        end = lengths + k if final else lengths
        counts = np.maximum(end - start, 0)
        out = _gather_rows(y, start, int(counts.max()) if B else 0)
        new_ahead = _gather_rows(seq, lengths, k)
        new_fill = np.minimum(fill + lengths, k)
        return out, counts, new_ahead, new_fill
