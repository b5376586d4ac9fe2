#!/usr/bin/env python3
"""Streaming real-time factor on one CPU thread, and peak memory transcribing a 1-hour file.

    python benchmarks/streaming.py [--model PATH] [--chunk-ms 100] [--seconds 60] [--hour-minutes 60]

Without --model it uses the bundled default model, or, if none is bundled, a randomly
initialised model of the default configuration (the same cost). Targets (issue: core
pipeline): streaming RTF <= 0.02 now (0.01 later) with 100 ms chunks; peak RSS <= 500 MB
for a 1-hour file.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from common import REPO, get_model, speech  # puts the repository on sys.path too

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.export import runtime_form  # noqa: E402
from asr.runtime import write_model_file  # noqa: E402
from asr.streaming import Recognizer  # noqa: E402





def streaming_rtf(model, seconds: float, chunk_ms: float) -> dict:
    x = speech(seconds)
    chunk = int(SAMPLE_RATE * chunk_ms / 1000)
    rec = Recognizer(model)
    stream = rec.stream()
    stream.accept(x[:chunk])  # warm-up outside the timing
    stream = rec.stream()
    latencies = []
    start = time.perf_counter()
    for i in range(0, len(x), chunk):
        t = time.perf_counter()
        stream.accept(x[i:i + chunk])
        latencies.append(time.perf_counter() - t)
    stream.finish()
    elapsed = time.perf_counter() - start
    return {"rtf": elapsed / seconds, "chunk_p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "chunk_p95_ms": 1000 * float(np.percentile(latencies, 95))}


def hour_rss(model, minutes: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "long.flac")
        block = speech(60)
        with sf.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC") as f:
            for _ in range(int(minutes)):
                f.write(block)
        model_path = os.path.join(tmp, "model.npz")  # the runtime's form: the command imports no torch
        write_model_file(model_path, *runtime_form(model, half=True))
        env = dict(os.environ, PYTHONPATH=REPO)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "asr", "transcribe", path, "--model", model_path, "--threads", "1",
                              "--no-progress", "-f", "json"], capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - start
        if out.returncode:
            raise SystemExit(out.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {"minutes": minutes, "peak_rss_mb": peak_mb, "wall_s": elapsed, "rtf_with_startup": elapsed / (60 * minutes)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--chunk-ms", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio streamed for the RTF")
    ap.add_argument("--hour-minutes", type=float, default=60.0, help="length of the long file (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, name = get_model(args.model)
    print(f"model: {name}; {model.num_parameters() / 1e6:.2f} M parameters; torch threads: {torch.get_num_threads()}")
    r = streaming_rtf(model, args.seconds, args.chunk_ms)
    print(f"streaming RTF ({args.chunk_ms:.0f} ms chunks, 1 thread, {args.seconds:.0f} s of speech): {r['rtf']:.4f} "
          f"(per chunk p50 {r['chunk_p50_ms']:.2f} ms, p95 {r['chunk_p95_ms']:.2f} ms)  target <= 0.02")
    if args.hour_minutes:
        h = hour_rss(model, args.hour_minutes)
        print(f"{h['minutes']:.0f}-minute file, `asr transcribe --threads 1`: peak RSS {h['peak_rss_mb']:.0f} MB "
              f"(target <= 500), wall {h['wall_s']:.1f} s, RTF incl. start-up {h['rtf_with_startup']:.4f}")


if __name__ == "__main__":
    main()
