"""quantize.py on graphs of its own: int8 products close to the float ones, each row's result
its own whatever else is in the batch, Loop bodies and outer-graph weights, fixed scales for
bounded tensors, small products left float."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from asr.quantize import quantize

RNG = np.random.default_rng(0)
K, N = 96, 200


def session(graph: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def op_types(g) -> list[str]:
    out = []
    for node in g.node:
        out.append(node.op_type)
        for attr in node.attribute:
            if attr.HasField("g"):
                out += op_types(attr.g)
    return out


def matmul_graph(w: np.ndarray, small: np.ndarray) -> bytes:
    """y = x @ w (x (..., K)); z = x[..., :4] @ small."""
    x4 = helper.make_node("Slice", ["x", "s0", "s4", "sax"], ["x4"])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), x4, helper.make_node("MatMul", ["x4", "small"], ["z"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(small, "small")] + [
        numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("s0", 0), ("s4", 4), ("sax", -1))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", K])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", N]),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", "T", 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()


def test_products_are_close_to_float_and_each_row_is_its_own():
    w = RNG.normal(0, 0.1, (K, N)).astype(np.float32)
    small = RNG.normal(0, 1, (4, 3)).astype(np.float32)
    graph = matmul_graph(w, small)
    q = quantize(graph, min_weights=1000)
    model = onnx.load_from_string(q)
    assert op_types(model.graph).count("MatMulIntegerToFloat") == 1
    assert op_types(model.graph).count("MatMul") == 1  # 4 x 3 stays float
    assert "w" not in {t.name for t in model.graph.initializer}  # the float weights are gone
    assert len(q) < 0.4 * len(graph)
    x = RNG.normal(0, 1, (3, 7, K)).astype(np.float32)
    x[1, 2] *= 1000  # one loud frame: a per-call scale would coarsen every other row
    y, z = session(q).run(None, {"x": x})
    ref = x @ w
    scale = np.abs(ref).max(-1, keepdims=True)
    assert (np.abs(y - ref) / scale).max() < 0.02  # every row within 2 % of its own range
    assert np.array_equal(z, x[..., :4] @ small)
    sess = session(q)
    for b in range(3):  # any split of the batch and of time: the same rows, bit for bit
        for t0, t1 in ((0, 7), (0, 1), (2, 5), (6, 7)):
            got = sess.run(None, {"x": x[b:b + 1, t0:t1]})[0]
            assert np.array_equal(got[0], y[b, t0:t1])


def test_loop_bodies_and_bounded_tensors():
    """h_t = tanh(h_{t-1} @ r + x_t) in a Loop; r lives in the outer graph; h is within [-1, 1]."""
    H = 128
    r = RNG.normal(0, 0.1, (H, H)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("Gather", ["x", "t"], ["xt"], axis=0), helper.make_node("MatMul", ["h", "r"], ["hr"]),
         helper.make_node("Add", ["hr", "xt"], ["pre"]), helper.make_node("Tanh", ["pre"], ["h_out"])],
        "body", [helper.make_tensor_value_info("t", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", H])],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["B", H])])
    g = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "h0"], ["h_last"], body=body)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", H]),
         helper.make_tensor_value_info("steps", TensorProto.INT64, []),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["B", H])],
        [helper.make_tensor_value_info("h_last", TensorProto.FLOAT, ["B", H])], [numpy_helper.from_array(r, "r")])
    graph = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()
    q = quantize(graph, bounded={"h": 1.0})
    types = op_types(onnx.load_from_string(q).graph)
    assert "MatMulIntegerToFloat" in types and "QuantizeLinear" in types and "ReduceMax" not in types
    x = RNG.normal(0, 0.5, (20, 4, H)).astype(np.float32)
    h0 = np.zeros((4, H), np.float32)
    h = h0
    for t in range(20):
        h = np.tanh(h @ r + x[t])
    feeds = {"x": x, "steps": np.array(20, np.int64), "h0": h0}
    got = session(q).run(None, feeds)[0]
    assert np.abs(got - h).max() < 0.03
    assert np.abs(session(graph).run(None, feeds)[0] - h).max() < 1e-5
    one = session(q).run(None, {"x": x[:, 1:2], "steps": np.array(20, np.int64), "h0": h0[1:2]})[0]
    assert np.array_equal(one[0], got[1])
