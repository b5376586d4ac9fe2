"""int8 products for any ONNX graph the project builds: every MatMul by a constant weight matrix
becomes an integer product on ONNX Runtime's int8 kernels (AVX512-VNNI / AVX-VNNI where the CPU
has them), with a float in and a float out, so the rest of the graph is unchanged.

    weights      int8, symmetric, one scale per output channel (column of the (K, N) matrix)
    activations  uint8 with zero point 128, one scale per ROW (the last axis's vector: one frame
                 of one stream), max |row| / 127, computed as the graph runs; or, for a tensor the
                 caller names in `bounded` (e.g. a GRU's hidden state, within [-1, 1]), the fixed
                 scale bound / 127

Why per row, not ONNX Runtime's dynamic quantisation (one scale per call for the whole tensor):
a row's integers then depend on that row alone, so a stream cut into any chunks, or stepped in a
batch with others, gets the products the whole-utterance pass gets (the runtime's exactness
contract; a per-call scale would move with the chunk's loudest frame). The integer sums are
exact; what float noise reaches a row before its rounding (a convolution summed in another
order for a shorter chunk) can move one of its integers by one, nothing more.

Loop bodies (subgraphs) are rewritten too; a weight may live in the outer graph. Products too
small to gain (K x N < min_weights) stay float.
"""
from __future__ import annotations

import numpy as np

MS_DOMAIN = "com.microsoft"  # ONNX Runtime's own operators (MatMulIntegerToFloat)
MIN_WEIGHTS = 16384  # K x N below this stays float: a CTC head (256 x 29) gains nothing


def quantize(graph: bytes, bounded: dict[str, float] | None = None, min_weights: int = MIN_WEIGHTS) -> bytes:
    """The serialized ONNX model `graph` with its MatMuls by constant 2-D float weights in int8
    (the module's docstring); bounded: tensor name -> max |value| it can take, for activations
    quantised with that fixed scale instead of a per-row one."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("quantising an ONNX graph needs the onnx package: pip install 'asr[train]'") from None

    model = onnx.load_from_string(graph)
    bounded = dict(bounded or {})
    weights = {t.name: t for t in model.graph.initializer}  # the outer graph's: Loop bodies may use them
    made: dict[str, tuple[str, str]] = {}  # weight name -> (int8 weight, its scales), shared by every use
    counter = iter(range(10 ** 6))

    def rewrite(g, outer: dict) -> None:
        local = {**outer, **{t.name: t for t in g.initializer}}
        uses: dict[str, list] = {}
        for node in g.node:
            for name in node.input:
                uses.setdefault(name, []).append(node)
        nodes, folded = [], set()
        for node in g.node:
            if id(node) in folded:
                continue
            for attr in node.attribute:  # Loop / Scan / If bodies
                if attr.type == onnx.AttributeProto.GRAPH:
                    rewrite(attr.g, local)
            w = local.get(node.input[1]) if node.op_type == "MatMul" and not node.domain else None
            if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT or w.dims[0] * w.dims[1] < min_weights:
                nodes.append(node)
                continue
            out, bias = node.output[0], ""
            add = uses.get(out, [])
            if node.input[0] in bounded and len(add) == 1 and add[0].op_type == "Add" and add[0].input[0] == out:
                b = local.get(add[0].input[1])  # a constant bias (N,) after it: done by the int8 product itself
                if b is not None and list(b.dims) == [w.dims[1]] and b.data_type == TensorProto.FLOAT:
                    out, bias = add[0].output[0], b.name
                    folded.add(id(add[0]))
            nodes += int8_matmul(node.input[0], node.input[1], numpy_helper.to_array(w), out, g, bias)
        del g.node[:]
        g.node.extend(nodes)

    def const(g, value, name: str) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def int8_matmul(x: str, w_name: str, w: np.ndarray, out: str, g, bias: str = "") -> list:
        n = next(counter)
        tag = f"q{n}_{x}"
        if w_name not in made:
            scale = (np.maximum(np.abs(w).max(0), 1e-30) / 127).astype(np.float32)  # (N,): per output channel
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            made[w_name] = (const(model.graph, q, f"{w_name}_int8"), const(model.graph, scale, f"{w_name}_scale"))
        wq, ws = made[w_name]
        zero = const(g, np.uint8(128), f"{tag}_zero")
        mk = helper.make_node
        if x in bounded:  # a fixed scale: quantise and multiply in two nodes
            s = const(g, np.float32(bounded[x] / 127), f"{tag}_s")
            return [mk("QuantizeLinear", [x, s, zero], [f"{tag}_x"]),
                    mk("MatMulIntegerToFloat", [f"{tag}_x", wq, s, ws, zero, "", bias], [out], domain=MS_DOMAIN)]
        # one scale per row: max |x| / 127 over the last axis, (..., 1)
        tiny, inv = const(g, np.float32(1e-30), f"{tag}_tiny"), const(g, np.float32(1 / 127), f"{tag}_inv")
        axes, half = const(g, np.array([-1], np.int64), f"{tag}_axes"), const(g, np.float32(128), f"{tag}_half")
        one = const(g, np.float32(1), f"{tag}_one")
        return [mk("Abs", [x], [f"{tag}_abs"]),
                mk("ReduceMax", [f"{tag}_abs", axes], [f"{tag}_max"], keepdims=1),
                mk("Max", [f"{tag}_max", tiny], [f"{tag}_max1"]),
                mk("Mul", [f"{tag}_max1", inv], [f"{tag}_s"]),
                mk("Div", [x, f"{tag}_s"], [f"{tag}_xs"]),
                mk("Round", [f"{tag}_xs"], [f"{tag}_xr"]),
                mk("Add", [f"{tag}_xr", half], [f"{tag}_xh"]),  # in [1, 255]: no clipping needed
                mk("Cast", [f"{tag}_xh"], [f"{tag}_x"], to=TensorProto.UINT8),
                mk("MatMulIntegerToFloat", [f"{tag}_x", wq, one, ws, zero], [f"{tag}_y"], domain=MS_DOMAIN),
                mk("Mul", [f"{tag}_y", f"{tag}_s"], [out])]

    rewrite(model.graph, weights)
    used = {name for node in _all_nodes(model.graph) for name in node.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)  # the float weights go
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return model.SerializeToString()


def _all_nodes(g):
    for node in g.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_nodes(attr.g)
