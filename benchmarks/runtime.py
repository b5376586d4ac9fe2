#!/usr/bin/env python3
"""The inference engine, chosen by measurement: torch (today's path), ONNX Runtime (asr/runtime.py)
and numpy (benchmarks/numpy_engine.py) side by side in one run, on one pinned core and thread.

    python benchmarks/runtime.py [--model PATH] [--seconds 30] [--chunk-ms 100] [--streams 1,16,64,256] [--rounds 3]

For each engine: agreement with torch on the sample clip (max |log-prob difference|, same
greedy text); model load time; streaming RTF of one stream fed chunk-ms chunks of real speech
(features, model and greedy decoding, as `Recognizer.step` does them); and batched throughput:
N streams fed a chunk each per tick and stepped together in one batched call, as the server
does, as real-time streams per core. Times are thread CPU time (what the engine costs on a
dedicated core; the wall time, which other work on a shared machine inflates, is shown
beside), the best of --rounds rounds, engines interleaved so that load changes hit all alike.
Targets (issue 13): RTF <= 0.01 for one stream at 100 ms chunks; >= 300 real-time streams.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's BLAS on one thread, set before numpy loads
import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import REPO, speech  # noqa: E402  (puts the repository on sys.path)
from numpy_engine import NumpyModel  # noqa: E402

from asr import runtime  # noqa: E402
from asr.audio import SAMPLE_RATE, load_audio  # noqa: E402
from asr.checkpoint import default_model_path, load_model  # noqa: E402
from asr.decoding import GreedyDecoder, greedy_text  # noqa: E402
from asr.export import runtime_form  # noqa: E402
from asr.logmel import StreamingLogMel, log_mel  # noqa: E402
from asr.streaming import Recognizer  # noqa: E402

SAMPLE = os.path.join(REPO, "asr", "samples", "cathy_a0046.flac")


class RuntimeStreams:
    """What streaming.Recognizer does per tick, for a runtime (numpy-state) model: each stream's
    analysis windows -> features in one call, its pending frames in multiples of the
    subsampling factor, one batched infer, each stream's log-probs to its greedy decoder."""

    def __init__(self, model, n: int):
        self.model = model
        self.sub = model.cfg.subsampling
        self.features = [StreamingLogMel(model.fbank) for _ in range(n)]
        self.pending = [np.zeros((0, model.cfg.n_mels), np.float32) for _ in range(n)]
        self.states = [model.init_state(1) for _ in range(n)]
        self.decoders = [GreedyDecoder(0.02) for _ in range(n)]

    def step(self, chunks: list[np.ndarray]) -> list[str]:
        windows = [f.take(c) for f, c in zip(self.features, chunks)]
        feats = self.model.log_mel_frames(np.concatenate(windows))
        i, work = 0, []
        for s, w in enumerate(windows):
            self.pending[s] = np.concatenate([self.pending[s], feats[i:i + len(w)]])
            i += len(w)
            n = len(self.pending[s]) - len(self.pending[s]) % self.sub
            if n:
                work.append((s, n))
        if work:
            T = max(n for _, n in work)
            batch = np.zeros((len(work), T, self.model.cfg.n_mels), np.float32)
            for b, (s, n) in enumerate(work):
                batch[b, :n] = self.pending[s][:n]
            state = self.states[work[0][0]] if len(work) == 1 else runtime.StreamState.stack(
                [self.states[s] for s, _ in work])
            log_probs, counts, state = self.model.infer(batch, np.array([n for _, n in work]), state)
            states = [state] if len(work) == 1 else state.unbind()
            for b, (s, n) in enumerate(work):
                self.pending[s] = self.pending[s][n:]
                self.states[s] = states[b]
                self.decoders[s].update(torch.from_numpy(log_probs[b, :counts[b]]))
        return [d.partial() for d in self.decoders]


class TorchStreams:
    """Today's path: streaming.Recognizer with the torch model."""

    def __init__(self, model, n: int):
        self.rec = Recognizer(model)
        self.streams = [self.rec.stream() for _ in range(n)]

    def step(self, chunks: list[np.ndarray]) -> list[str]:
        for s, c in zip(self.streams, chunks):
            s.feed(c)
        self.rec.step(self.streams)
        return [s.partial() for s in self.streams]


def run(make, model, audio: np.ndarray, n: int, chunk: int, seconds: float) -> tuple[float, float]:
    """(thread CPU seconds, wall seconds) per second of audio per stream, streaming `seconds`
    of audio through each of n streams."""
    streams = make(model, n)
    offsets = [(i * 7919 * chunk) % (len(audio) - int(seconds * SAMPLE_RATE)) for i in range(n)]
    streams.step([audio[o:o + chunk] for o in offsets])  # warm-up: the first step allocates
    ticks = int(seconds * SAMPLE_RATE / chunk)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for k in range(1, ticks):
        streams.step([audio[o + k * chunk:o + (k + 1) * chunk] for o in offsets])
    audio_s = (ticks - 1) * chunk / SAMPLE_RATE
    return (time.thread_time() - cpu0) / audio_s, (time.perf_counter() - wall0) / audio_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a .pt model file (default: the bundled default model)")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per stream")
    ap.add_argument("--chunk-ms", type=float, default=100.0)
    ap.add_argument("--streams", default="1,16,64,256", help="batch sizes to measure")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    path = args.model or str(default_model_path(torch_file=True))  # the torch reference; its runtime form is made below

    t = time.perf_counter()
    torch_model = load_model(path)
    load_torch = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        runtime.write_model_file(os.path.join(tmp, "model.npz"), *runtime_form(torch_model))
        t = time.perf_counter()
        ort_model = runtime.load(os.path.join(tmp, "model.npz"), threads=1)
        load_ort = time.perf_counter() - t
    weights = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    numpy_model = NumpyModel(torch_model.cfg, weights, ort_model.fbank)
    engines = {"torch": (TorchStreams, torch_model), "onnxruntime": (RuntimeStreams, ort_model),
               "numpy": (RuntimeStreams, numpy_model)}
    print(f"model: {path}; {torch_model.num_parameters() / 1e6:.2f} M parameters; cpu {core}, 1 thread; "
          f"onnxruntime {__import__('onnxruntime').__version__}, numpy {np.__version__}, torch {torch.__version__}")
    print(f"load: torch .pt {load_torch:.2f} s; onnxruntime session from the runtime file {load_ort:.2f} s (wall)")

    x = load_audio(SAMPLE)
    feats = log_mel(x, ort_model.fbank)
    with torch.inference_mode():
        ref, _ = torch_model(torch.from_numpy(feats)[None], torch.tensor([len(feats)]))
    ref_text = greedy_text(ref[0])
    for name in ("onnxruntime", "numpy"):
        lp, _ = engines[name][1](feats[None], np.array([len(feats)]))
        same = greedy_text(torch.from_numpy(lp[0])) == ref_text
        print(f"{name} vs torch on {os.path.basename(SAMPLE)}: max |log-prob difference| "
              f"{np.abs(lp - ref.numpy()).max():.2e}, greedy text {'identical' if same else 'DIFFERENT'}")

    chunk = int(SAMPLE_RATE * args.chunk_ms / 1000)
    sizes = [int(n) for n in args.streams.split(",")]
    audio = speech(args.seconds * 2 + 60)
    best = {}
    for _ in range(args.rounds):
        for n in sizes:
            for name, (make, model) in engines.items():
                cpu, wall = run(make, model, audio, n, chunk, args.seconds)
                old = best.get((name, n))
                best[(name, n)] = (min(cpu, old[0]), min(wall, old[1])) if old else (cpu, wall)
    for n in sizes:
        what = (f"one stream, {args.chunk_ms:g} ms chunks: RTF" if n == 1 else
                f"{n} streams stepped together, {args.chunk_ms:g} ms chunks: real-time streams per core")
        print(what)
        for name in engines:
            cpu, wall = best[(name, n)]  # seconds per second of audio of each stream
            if n == 1:
                print(f"  {name:12s} {cpu:.4f} (wall {wall:.4f})")
            else:
                print(f"  {name:12s} {n / cpu:6.0f} (wall {n / wall:6.0f})")


if __name__ == "__main__":
    main()
