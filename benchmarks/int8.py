#!/usr/bin/env python3
"""Float and int8 runtime forms side by side (issue 25), on one pinned core and one thread.

    python benchmarks/int8.py compare [--seconds 20] [--rounds 3] [--file-minutes 10]
    python benchmarks/int8.py sizes [--widths 256,384,512] [--layers 4,5] [--seconds 10]
    python benchmarks/int8.py products

compare: the bundled models' torch files exported in memory both ways (`asr export` and
`asr export --int8`), rounds interleaved so that a busy machine's load hits both alike:
  - one stream, 100 ms chunks of real speech: `Stream.accept` (features, model, greedy), RTF;
  - 64 and 256 streams stepped together each tick (`Recognizer.step`, endpointing on, as
    `asr serve` does): real-time streams per core = streams x chunk / mean tick;
  - the offline model with its LM (beam search, as `asr transcribe` by default) on a
    --file-minutes file of real speech: RTF;
  - max |log-prob difference| and greedy text on the sample clip.
sizes: streaming models of random weights (the cost of a trained one) of each width x layers,
int8 and float: one-stream RTF and streams per core at 256 streams; the size the next
streaming model may use keeps RTF <= 0.01 and >= 300 streams per core.

products: one (256 x 256) by (256 x 768) product, a GRU layer's for 256 streams, on ONNX Runtime
in float32, float16, bfloat16 and int8 (quantize.py, per-row scales included).

Times are thread CPU time (what a dedicated core gives; wall time on a shared machine is
inflated by others' work), the best of --rounds rounds.
"""
import argparse
import os
import time

import numpy as np
import torch

from common import REPO, speech  # noqa: E402  (puts the repository on sys.path)

from asr import runtime  # noqa: E402
from asr.audio import SAMPLE_RATE, load_audio  # noqa: E402
from asr.beam import decoder_for  # noqa: E402
from asr.checkpoint import bundled_model_path, load_model  # noqa: E402
from asr.decoding import greedy_text  # noqa: E402
from asr.endpoint import EndpointConfig  # noqa: E402
from asr.export import runtime_form  # noqa: E402
from asr.logmel import log_mel  # noqa: E402
from asr.model import AcousticModel, ModelConfig  # noqa: E402
from asr.streaming import Recognizer  # noqa: E402
from asr.transcribe import transcribe  # noqa: E402

SAMPLE = os.path.join(REPO, "asr", "samples", "cathy_a0046.flac")
CHUNK = SAMPLE_RATE // 10  # 100 ms


def both_forms(model) -> dict[str, runtime.Model]:
    """{"float": ..., "int8": ...}: a torch model exported in memory both ways."""
    forms = {}
    for name, int8 in (("float", False), ("int8", True)):
        meta, arrays = runtime_form(model, half=False, int8=int8)
        forms[name] = runtime.from_file_form(meta, arrays, getattr(model, "source", None))
    return forms


def one_stream_rtf(model, audio: np.ndarray) -> float:
    stream = Recognizer(model).stream()
    t = time.thread_time()
    for i in range(0, len(audio), CHUNK):
        stream.accept(audio[i:i + CHUNK])
    stream.finish()
    return (time.thread_time() - t) / (len(audio) / SAMPLE_RATE)


def streams_per_core(model, audio: np.ndarray, n: int, seconds: float) -> float:
    """n streams, a 100 ms chunk each per tick, stepped together with endpointing on."""
    rec = Recognizer(model, endpoint=EndpointConfig())
    streams = [rec.stream() for _ in range(n)]
    ticks = int(seconds * 10)
    offsets = [(i * 7919 * CHUNK) % (len(audio) - (ticks + 1) * CHUNK) for i in range(n)]
    took = []
    for k in range(ticks):
        t = time.thread_time()
        for s, off in zip(streams, offsets):
            s.feed(audio[off + k * CHUNK: off + (k + 1) * CHUNK])
        rec.step(streams)
        for s in streams:
            if s.endpoint() is None:
                s.partial()
        took.append(time.thread_time() - t)
    return n * 0.1 / float(np.mean(took[2:]))  # the first ticks allocate


def file_rtf(model, audio: np.ndarray) -> float:
    decoder = decoder_for(model)  # the card's LM, beam search: `asr transcribe`'s default
    t = time.thread_time()
    transcribe(model, audio, decoder)
    return (time.thread_time() - t) / (len(audio) / SAMPLE_RATE)


def compare(args) -> None:
    streaming = both_forms(load_model(bundled_model_path("streaming", torch_file=True)))
    offline = both_forms(load_model(bundled_model_path("offline", torch_file=True)))
    audio = speech(max(args.seconds, 30) + 60)
    one = audio[: int(args.seconds * SAMPLE_RATE)]
    long = speech(args.file_minutes * 60) if args.file_minutes else None
    x = load_audio(SAMPLE)
    for kind, forms in (("streaming", streaming), ("offline", offline)):
        feats = log_mel(x, forms["float"].fbank)
        a, b = (m(feats[None], np.array([len(feats)]))[0][0] for m in forms.values())
        print(f"{kind}: sample clip max |log-prob float - int8| {np.abs(a - b).max():.3f}; greedy text "
              f"{'the same' if greedy_text(a) == greedy_text(b) else 'differs'}", flush=True)
    best: dict[tuple, float] = {}
    for r in range(args.rounds):
        for name in ("float", "int8"):
            figures = {("one-stream RTF", name): one_stream_rtf(streaming[name], one)}
            for n in (64, 256):
                figures[(f"{n} streams: streams per core", name)] = streams_per_core(streaming[name], audio, n,
                                                                                     args.batch_seconds)
            if long is not None:
                figures[(f"offline model + LM, {args.file_minutes:g}-min file RTF", name)] = file_rtf(offline[name], long)
            for key, value in figures.items():
                better = max if "per core" in key[0] else min
                best[key] = better(best.get(key, value), value)
            print(f"round {r + 1} {name}: " + ", ".join(f"{k[0]} {v:.4g}" for k, v in figures.items()), flush=True)
    print("\nbest of rounds (thread CPU time, one pinned core, one thread):")
    print(f"| figure | float | int8 | int8 / float |\n|---|---|---|---|")
    for figure in dict.fromkeys(k[0] for k in best):
        f, q = best[(figure, "float")], best[(figure, "int8")]
        print(f"| {figure} | {f:.4g} | {q:.4g} | {q / f:.2f} |")


def sizes(args) -> None:
    audio = speech(args.seconds + 60)
    one = audio[: int(args.seconds * SAMPLE_RATE)]
    print("| width x layers | parameters | form | one-stream RTF | streams per core (256) |\n|---|---|---|---|---|")
    for layers in map(int, args.layers.split(",")):
        for width in map(int, args.widths.split(",")):
            torch.manual_seed(0)
            model = AcousticModel(ModelConfig(hidden_size=width, num_layers=layers, conv_channels=256)).eval()
            for name, m in both_forms(model).items():
                if name not in args.forms.split(","):
                    continue
                rtf = min(one_stream_rtf(m, one) for _ in range(args.rounds))
                spc = max(streams_per_core(m, audio, 256, args.batch_seconds) for _ in range(args.rounds))
                print(f"| {width} x {layers} | {model.num_parameters() / 1e6:.2f} M | {name} | {rtf:.4f} | {spc:.0f} |",
                      flush=True)


def products(args) -> None:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from asr.quantize import quantize
    K, N, M = 256, 768, 256
    rng = np.random.default_rng(0)
    w, a = rng.normal(0, 0.1, (K, N)).astype(np.float32), rng.normal(0, 1, (M, K)).astype(np.float32)

    def graph(dtype=None) -> bytes:
        if dtype is None:
            nodes = [helper.make_node("MatMul", ["a", "w"], ["y"])]
        else:  # the product in dtype, float32 in and out
            nodes = [helper.make_node("Cast", ["a"], ["a2"], to=dtype), helper.make_node("Cast", ["w"], ["w2"], to=dtype),
                     helper.make_node("MatMul", ["a2", "w2"], ["y2"]),
                     helper.make_node("Cast", ["y2"], ["y"], to=TensorProto.FLOAT)]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["M", K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])],
                              [numpy_helper.from_array(w, "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for name, g in (("float32", graph()), ("float16", graph(TensorProto.FLOAT16)),
                    ("bfloat16", graph(TensorProto.BFLOAT16)), ("int8", quantize(graph()))):
        try:
            s = ort.InferenceSession(g, options, providers=["CPUExecutionProvider"])
            s.run(None, {"a": a})
        except Exception as err:  # onnxruntime's own kinds: NOT_IMPLEMENTED for bfloat16 on CPU
            print(f"{name}: does not run: {str(err).splitlines()[0]}")
            continue
        best = 1e9
        for _ in range(args.rounds):
            t = time.thread_time()
            for _ in range(50):
                s.run(None, {"a": a})
            best = min(best, (time.thread_time() - t) / 50)
        print(f"{name}: {best * 1e6:.0f} us, {2 * M * K * N / best / 1e9:.0f} GFLOP/s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("compare", "sizes", "products"))
    p.add_argument("--seconds", type=float, default=20.0, help="audio for the one-stream RTF")
    p.add_argument("--batch-seconds", type=float, default=5.0, help="audio per stream for streams per core")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--file-minutes", type=float, default=10.0, help="compare: the file's length (0: skip)")
    p.add_argument("--widths", default="256,320,384,448,512")
    p.add_argument("--layers", default="4,5")
    p.add_argument("--forms", default="float,int8", help="sizes: which forms")
    args = p.parse_args()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    {"compare": compare, "sizes": sizes, "products": products}[args.mode](args)


if __name__ == "__main__":
    main()
