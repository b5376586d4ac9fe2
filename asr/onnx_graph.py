"""The acoustic model as an ONNX graph, built from its weights (needs the `onnx` package: it
runs at export time, beside torch, never at run time).

One graph serves every call, streaming or whole-utterance, any batch: it is model.py's
`_step` with the state as explicit inputs and outputs, as sherpa-onnx's streaming models are.

    inputs   feats (B, T, 80) log-mel, T >= the subsampling factor (pad with frames past
             lengths); lengths (B,) int64 new frames per stream; conv_i (B, C_i, kernel -
             stride_i) pending frames of each conv layer, channels first; gru (L * dirs, B, H);
             ahead (B, lookahead, D)
    outputs  log_probs (B, U + lookahead, V): the row convolution's output at every position of
             [ahead, new outputs] (the caller picks each stream's emitted rows by its fill);
             conv_i_out, gru_out, ahead_out: the next state's tensors (ahead_out: the
             `lookahead` GRU outputs after each stream's last, zeros past its end)

The GRU layers are ONNX GRU with linear_before_reset=1 (torch's formula), gates reordered
from torch's (r, z, n) to ONNX's (z, r, h), with sequence_lens: padding past a stream's
length neither reaches its outputs nor its final state. Weights keep their stored dtype
(float16 stays float16, cast to float32 once when the session is made).

`build_int8` writes the convolutions (strided slices side by side, times the kernel as a
matrix) and each GRU layer as products that can run in int8 instead (the ONNX GRU op has no
integer form): the input projection of every time step as one MatMul, then an ONNX Loop
over the steps, each a MatMul of the hidden state and the gates as elementwise ops (a stream's
state is held past its length); a bidirectional layer runs its backward Loop over each
stream's own frames reversed (ReverseSequence). quantize.py then turns those MatMuls into int8
ones: per-row scales for the layer inputs, the fixed scale 1/127 for the hidden state (a GRU's
state stays within [-1, 1]). Measured against the float GRU op in docs/runtime.md.
"""
from __future__ import annotations

import numpy as np

OPSET = 20  # Gelu is an ONNX op from opset 20
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


def build_int8(cfg, weights: dict[str, np.ndarray], min_weights: int | None = None) -> bytes:
    """build's graph with the GRU layers as Loops of products (module docstring) and every
    product of at least min_weights weights (quantize.MIN_WEIGHTS) in int8 (quantize.py)."""
    from .quantize import MIN_WEIGHTS, quantize
    dirs = 2 if cfg.bidirectional else 1
    return quantize(build(cfg, weights, matmuls=True),
                    bounded={_state_name(i, d): 1.0 for i in range(cfg.num_layers) for d in range(dirs)},
                    min_weights=MIN_WEIGHTS if min_weights is None else min_weights)


def _state_name(layer: int, direction: int) -> str:
    """The hidden state's name inside a Loop GRU's body."""
    return f"gru_{layer}_{direction}_h"


def build(cfg, weights: dict[str, np.ndarray], matmuls: bool = False) -> bytes:
    """The serialized ONNX model of a ModelConfig and its torch state dict's arrays; matmuls:
    the convolutions and GRU layers as MatMuls (and Loops), not ONNX Conv and GRU ops (build_int8)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("building the runtime's ONNX graph needs the onnx package: pip install 'asr[train]'") from None

    nodes, inits = [], []
    counter = iter(range(10 ** 6))

    def op(kind: str, *inputs: str, **attrs) -> str:
        out = f"{kind.lower()}_{next(counter)}"
        nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def const(value, name: str | None = None, cast: bool = True) -> str:
        """An initializer; float16 weights come with a Cast to float32 (folded at load)."""
        name = name or f"const_{next(counter)}"
        value = np.asarray(value)
        inits.append(numpy_helper.from_array(value, name))
        if cast and value.dtype == np.float16:
            return op("Cast", name, to=TensorProto.FLOAT)
        return name

    def ints(*values) -> str:
        return const(np.array(values, np.int64))

    dirs = 2 if cfg.bidirectional else 1
    H, D, k = cfg.hidden_size, cfg.hidden_size * dirs, cfg.lookahead
    chans = [cfg.n_mels] + [cfg.conv_channels] * len(cfg.conv_strides)
    inputs = [helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["B", "T", cfg.input_dim]),
              helper.make_tensor_value_info("lengths", TensorProto.INT64, ["B"])]
    outputs = []
    batch = op("Shape", "feats", start=0, end=1)  # [B]

    def gather(x: str, start: str, count: int, width: int, axis: int) -> str:
        """x[b, start[b] : start[b] + count] along axis 1 of x (B, L, width), or of x (B, width,
        L) along axis 2."""
        span = np.arange(count, dtype=np.int64).reshape((1, count, 1) if axis == 1 else (1, 1, count))
        idx = op("Add", op("Unsqueeze", start, ints(1, 2)), const(span))
        shape = ints(count, width) if axis == 1 else ints(width, count)
        return op("GatherElements", x, op("Expand", idx, op("Concat", batch, shape, axis=0)), axis=axis)

    def output(name: str, value: str, shape: list) -> None:
        nodes.append(helper.make_node("Identity", [value], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))

    def loop_layer(x: str, lengths: str, layer: int, direction: int, w: dict[str, np.ndarray], h0: str
                   ) -> tuple[str, str]:
        """One direction of a GRU layer as a Loop over x (U, B, C) from h0 (B, H), torch's
        formula: r, z = sigmoid(W_ir x + b_ir + W_hr h + b_hr), ...; n = tanh(W_in x + b_in +
        r * (W_hn h + b_hn)); h' = n + z * (h - n); lengths (B,) int64 frames per stream.
        -> (outputs (U, B, H), final state (B, H))."""
        w = {k: np.asarray(v, np.float32) for k, v in w.items()}  # float16 is stored float32 here: int8 comes next
        reverse = direction == 1
        if reverse:  # each stream's own frames, last first
            x = op("ReverseSequence", x, lengths, batch_axis=1, time_axis=0)
        xp = op("Add", op("MatMul", x, const(np.ascontiguousarray(w["weight_ih"].T))), const(w["bias_ih"]))  # (U, B, 3H)
        steps = op("Squeeze", op("Shape", x, start=0, end=1), ints(0))
        live_t = op("Unsqueeze", op("Less", op("Unsqueeze", op("Range", const(np.array(0)), steps, const(np.array(1))),
                                                  ints(1)), op("Unsqueeze", lengths, ints(0))), ints(2))  # (U, B, 1)
        h = _state_name(layer, direction)
        body: list = []

        def bop(kind: str, *inputs: str, n_out: int = 1, **attrs):
            outs = [f"{kind.lower()}_{next(counter)}" for _ in range(n_out)]
            body.append(helper.make_node(kind, list(inputs), outs, **attrs))
            return outs[0] if n_out == 1 else outs
        t = f"gru_{layer}_{direction}_t"
        xt = bop("Gather", xp, t, axis=0)  # (B, 3H)
        hp = bop("Add", bop("MatMul", h, const(np.ascontiguousarray(w["weight_hh"].T))), const(w["bias_hh"]))
        split = const(np.array([H, H, H], np.int64))
        xr, xz, xn = bop("Split", xt, split, axis=1, n_out=3)
        hr, hz, hn = bop("Split", hp, split, axis=1, n_out=3)
        r, z = bop("Sigmoid", bop("Add", xr, hr)), bop("Sigmoid", bop("Add", xz, hz))
        n = bop("Tanh", bop("Add", xn, bop("Mul", r, hn)))
        new = bop("Where", bop("Gather", live_t, t, axis=0), bop("Add", n, bop("Mul", z, bop("Sub", h, n))), h)
        state_out = "h_out" + t
        body[-1].output[0] = state_out  # the new state, also the step's output (no Identity: a node a step counts)
        f = TensorProto.FLOAT
        graph = helper.make_graph(
            body, f"gru_{layer}_{direction}",
            [helper.make_tensor_value_info(t, TensorProto.INT64, []), helper.make_tensor_value_info("cond" + t, TensorProto.BOOL, []),
             helper.make_tensor_value_info(h, f, ["B", H])],
            [helper.make_tensor_value_info("cond" + t, TensorProto.BOOL, []), helper.make_tensor_value_info(state_out, f, ["B", H]),
             helper.make_tensor_value_info(state_out, f, ["B", H])])
        final, y = f"loop_{next(counter)}_h", f"loop_{next(counter)}_y"
        nodes.append(helper.make_node("Loop", [steps, "", h0], [final, y], body=graph))
        if reverse:
            y = op("ReverseSequence", y, lengths, batch_axis=1, time_axis=0)
        return y, final

    def conv_matmul(x: str, w: np.ndarray, b: np.ndarray, stride: int) -> str:
        """A valid strided Conv1d as one MatMul: x (B, L, C_in), w (C_out, C_in, k) ->
        (B, (L - k) // stride + 1, C_out): the k strided slices side by side, (B, T', k * C_in),
        times w as a (k * C_in, C_out) matrix."""
        k = w.shape[2]
        cols = [op("Slice", x, ints(j), ints(j - (k - 1) if j < k - 1 else np.iinfo(np.int64).max), ints(1), ints(stride))
                for j in range(k)]
        w2 = np.ascontiguousarray(np.asarray(w, np.float32).transpose(2, 1, 0).reshape(k * w.shape[1], w.shape[0]))
        return op("Add", op("MatMul", op("Concat", *cols, axis=2), const(w2)), const(b))

    if cfg.whisper:  # Whisper's encoder, then LayerNorm and the Linear into the GRUs: (B, C, U)
        x, lengths = _whisper_encoder(cfg, weights, op, const, ints)
        x = op("LayerNormalization", x, const(weights["in_norm.weight"]), const(weights["in_norm.bias"]), axis=-1,
               epsilon=LAYER_NORM_EPS)
        x = op("Transpose", op("Add", op("MatMul", x, const(np.ascontiguousarray(weights["in_proj.weight"].T))),
                               const(weights["in_proj.bias"])), perm=[0, 2, 1])
    else:
        # Normalisation, then the strided GELU convs, each left-padded by its pending frames;
        # channels first (B, C, T), as Conv wants them.
        x = op("Transpose", "feats", perm=[0, 2, 1])
        x = op("Div", op("Sub", x, const(weights["feat_mean"][:, None], cast=False)), const(weights["feat_std"][:, None], cast=False))
        lengths = "lengths"
        for i, (s, cin) in enumerate(zip(cfg.conv_strides, chans)):
            keep = cfg.conv_kernel - s
            inputs.append(helper.make_tensor_value_info(f"conv_{i}", TensorProto.FLOAT, ["B", cin, keep]))
            x = op("Concat", f"conv_{i}", x, axis=2)  # (B, C_in, keep + T_i)
            lengths = op("Div", lengths, ints(s))
            output(f"conv_{i}_out", gather(x, op("Mul", lengths, ints(s)), keep, cin, 2) if keep else f"conv_{i}",
                   ["B", cin, keep])
            if matmuls:
                x = op("Transpose", conv_matmul(op("Transpose", x, perm=[0, 2, 1]), weights[f"convs.{i}.weight"],
                                                weights[f"convs.{i}.bias"], s), perm=[0, 2, 1])
            else:
                x = op("Conv", x, const(weights[f"convs.{i}.weight"]), const(weights[f"convs.{i}.bias"]), strides=[s])
            x = op("Gelu", x)  # (B, C_out, T_i // s)

    # The GRU stack, time-major as ONNX's GRU wants it: (U, B, C).
    inputs.append(helper.make_tensor_value_info("gru", TensorProto.FLOAT, [cfg.num_layers * dirs, "B", H]))
    seq_lens = op("Cast", lengths, to=TensorProto.INT32)
    live = op("Unsqueeze", op("Greater", lengths, ints(0)), ints(0, 2))  # (1, B, 1): streams with new frames
    x = op("Transpose", x, perm=[2, 0, 1])
    states = []
    for i in range(cfg.num_layers):
        suffixes = ["", "_reverse"][:dirs]

        def stacked(name: str) -> np.ndarray:  # (dirs, 3H, ...) in ONNX gate order z, r, h
            r, z, n = np.split(np.stack([weights[f"grus.{i}.{name}_l0{sfx}"] for sfx in suffixes]), 3, axis=1)
            return np.concatenate([z, r, n], axis=1)
        h0 = op("Slice", "gru", ints(i * dirs), ints((i + 1) * dirs), ints(0))
        if matmuls:
            ys, hs = [], []
            for d, sfx in enumerate(suffixes):
                y_d, h_d = loop_layer(x, lengths, i, d, {name: weights[f"grus.{i}.{name}_l0{sfx}"] for name in
                                                ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
                                      op("Squeeze", op("Slice", h0, ints(d), ints(d + 1), ints(0)), ints(0)))
                ys.append(y_d)
                hs.append(op("Unsqueeze", h_d, ints(0)))
            y = ys[0] if dirs == 1 else op("Concat", *ys, axis=2)  # (U, B, D)
            states.append(hs[0] if dirs == 1 else op("Concat", *hs, axis=0))
            x = op("LayerNormalization", y, const(weights[f"norms.{i}.weight"]), const(weights[f"norms.{i}.bias"]),
                   axis=-1, epsilon=LAYER_NORM_EPS) if cfg.layer_norm else y
            continue
        y = op("GRU", x, const(stacked("weight_ih")), const(stacked("weight_hh")),
               const(np.concatenate([stacked("bias_ih"), stacked("bias_hh")], axis=1)), seq_lens, h0,
               hidden_size=H, linear_before_reset=1, direction="bidirectional" if dirs == 2 else "forward")
        y_h = y + "_h"
        nodes[-1].output.append(y_h)
        states.append(op("Where", live, y_h, h0))  # a stream without new frames keeps its state
        if dirs == 1:
            y = op("Squeeze", y, ints(1))  # (U, 1, B, H) -> (U, B, H)
        else:
            y = op("Reshape", op("Transpose", y, perm=[0, 2, 1, 3]), ints(0, 0, D))  # (U, B, 2, H) -> (U, B, D)
        x = op("LayerNormalization", y, const(weights[f"norms.{i}.weight"]), const(weights[f"norms.{i}.bias"]),
               axis=-1, epsilon=LAYER_NORM_EPS) if cfg.layer_norm else y
    nodes.append(helper.make_node("Concat", states, ["gru_out"], axis=0))
    outputs.append(helper.make_tensor_value_info("gru_out", TensorProto.FLOAT, [cfg.num_layers * dirs, "B", H]))
    h = op("Transpose", x, perm=[1, 0, 2])  # (B, U, D)

    if k:  # the row convolution over [pending outputs, new outputs, k zeros]
        inputs.append(helper.make_tensor_value_info("ahead", TensorProto.FLOAT, ["B", k, D]))
        U = op("Squeeze", op("Shape", h, start=1, end=2))
        valid = op("Less", op("Range", const(np.array(0)), U, const(np.array(1))), op("Unsqueeze", lengths, ints(1)))
        h = op("Mul", h, op("Unsqueeze", op("Cast", valid, to=TensorProto.FLOAT), ints(2)))  # zeros past the end
        zeros = op("ConstantOfShape", op("Concat", batch, ints(k, D), axis=0),
                   value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
        seq = op("Concat", "ahead", h, zeros, axis=1)  # (B, k + U + k, D)
        output("ahead_out", gather(seq, lengths, k, D, 1), ["B", k, D])
        # y[:, p] = sum_j w_j * seq[:, p + j] for p < U + k: slices, cheaper than a depthwise Conv
        row = weights["row_conv"]  # (D, k + 1)
        h = op("Sum", *(op("Mul", op("Slice", seq, ints(j), ints(j - k if j < k else np.iinfo(np.int64).max), ints(1)),
                           const(np.ascontiguousarray(row[:, j]))) for j in range(k + 1)))
    logits = op("Add", op("MatMul", h, const(np.ascontiguousarray(weights["head.weight"].T))), const(weights["head.bias"]))
    nodes.append(helper.make_node("LogSoftmax", [logits], ["log_probs"], axis=-1))
    outputs.insert(0, helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["B", "U", cfg.vocab_size]))
    model = helper.make_model(helper.make_graph(nodes, "asr_gru_ctc", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="asr export")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _whisper_encoder(cfg, weights, op, const, ints):
    """Whisper's audio encoder on feats (B, T, n_mels) with lengths (B,) -> (B, U, d_model),
    U = ceil(T / 2), and the output lengths: model.WhisperEncoder's computation (frames past a
    sequence's length zeroed before each conv and masked out of attention)."""
    from onnx import TensorProto
    n_mels, n_ctx, d, heads, layers = cfg.encoder_dims
    w = lambda name: weights["encoder." + name]  # noqa: E731

    def mask(x, lengths):  # (B, frames of x (B, frames, ...)) float: 1 where the frame is within the sequence
        size = op("Squeeze", op("Shape", x, start=1, end=2))
        return op("Cast", op("Less", op("Range", const(np.array(0)), size, const(np.array(1))),
                             op("Unsqueeze", lengths, ints(1))), to=TensorProto.FLOAT)

    keep_in = mask("feats", "lengths")  # (B, T)
    lengths = op("Div", op("Add", "lengths", ints(1)), ints(2))
    x = op("Transpose", op("Mul", "feats", op("Unsqueeze", keep_in, ints(2))), perm=[0, 2, 1])  # (B, n_mels, T)
    x = op("Mul", op("Gelu", op("Conv", x, const(w("conv1.weight")), const(w("conv1.bias")), pads=[1, 1])),
           op("Unsqueeze", keep_in, ints(1)))
    x = op("Transpose", op("Gelu", op("Conv", x, const(w("conv2.weight")), const(w("conv2.bias")), pads=[1, 1],
                                      strides=[2])), perm=[0, 2, 1])  # (B, U, d)
    keep = mask(x, lengths)  # (B, U)
    U = op("Shape", x, start=1, end=2)
    x = op("Add", x, op("Slice", const(w("positional")), ints(0), U, ints(0)))
    bias = op("Unsqueeze", op("Mul", op("Sub", const(np.float32(1.0)), keep), const(np.float32(-1e9))), ints(1, 2))
    dh = d // heads

    def linear(x, name):
        return op("Add", op("MatMul", x, const(np.ascontiguousarray(w(name + ".weight").T))), const(w(name + ".bias")))

    def norm(x, name):
        return op("LayerNormalization", x, const(w(name + ".weight")), const(w(name + ".bias")), axis=-1,
                  epsilon=LAYER_NORM_EPS)
    for i in range(layers):
        b = f"blocks.{i}."
        qkv = op("Transpose", op("Reshape", linear(norm(x, b + "attn_ln"), b + "qkv"), ints(0, 0, 3, heads, dh)),
                 perm=[2, 0, 3, 1, 4])  # (3, B, heads, U, dh)
        q, k, v = (op("Gather", qkv, const(np.array(j)), axis=0) for j in range(3))
        scores = op("Add", op("Mul", op("MatMul", q, op("Transpose", k, perm=[0, 1, 3, 2])),
                              const(np.float32(dh ** -0.5))), bias)  # (B, heads, U, U)
        a = op("MatMul", op("Softmax", scores, axis=-1), v)  # (B, heads, U, dh)
        x = op("Add", x, linear(op("Reshape", op("Transpose", a, perm=[0, 2, 1, 3]), ints(0, 0, d)), b + "out"))
        x = op("Add", x, linear(op("Gelu", linear(norm(x, b + "mlp_ln"), b + "mlp0")), b + "mlp2"))
    return op("Mul", norm(x, "ln_post"), op("Unsqueeze", keep, ints(2))), lengths
