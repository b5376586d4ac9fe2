#!/usr/bin/env python3
"""The commands on the runtime, as a user meets them: start-up, a short file, one stream's
real-time factor, and peak memory on a long file; none of it imports torch.

    python benchmarks/runtime_cli.py [--minutes 12] [--stream-seconds 60] [--repeat 3] [--cpu 1]

Figures (issue 13's targets in brackets):
  `asr --help` wall [< 0.3 s]; `asr transcribe` of the 3.7 s sample clip, wall [< 1 s], with the
  defaults (offline model, beam search with its LM) and with --stream; one stream's RTF with
  100 ms chunks on one thread (features, model, greedy decoding: thread CPU time and wall)
  [<= 0.01]; peak RSS of `asr transcribe --threads 1` of a long file made of real clips (Cathy's
  1 489 ARCTIC prompts from ../shared/data, one after another, with 0.3 s pauses) [<= 200 MB
  for 1 hour], with the defaults and with --stream.

Every command runs in a fresh process (wall includes Python's start-up), with --cpu N pinning
it to one core (taskset). Wall times are the best of --repeat runs. Peak RSS is the child's
ru_maxrss (os.wait4), and each command's run is checked to have imported no torch module.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, REPO)

from asr.audio import SAMPLE_RATE, load_audio  # noqa: E402

SAMPLE = os.path.join(REPO, "asr", "samples", "cathy_a0046.flac")
CATHY = os.path.join(REPO, "..", "shared", "data", "cathy", "audio")
# Lists the torch modules a command imported, at its exit (an atexit hook in a sitecustomize).
WATCH = """
import atexit, os, sys
def _report():
    with open(os.environ["ASR_BENCH_TORCH"], "w") as f:
        f.write(" ".join(m for m in sys.modules if m.split(".")[0] in ("torch", "torchaudio")))
atexit.register(_report)
"""


def run(argv: list[str], env: dict, cpu: int | None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS MB, result) of `python -m asr ARGV` in a fresh process; the
    result's `cpu` is its CPU seconds (user + system)."""
    cmd = [sys.executable, "-m", "asr", *argv]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - start
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        out, err = out.read(), err.read()
    if rc:
        raise SystemExit(f"{' '.join(argv)} failed ({rc}): {err.strip()}")
    with open(env["ASR_BENCH_TORCH"]) as f:
        torch_modules = f.read().split()
    if torch_modules:
        raise SystemExit(f"{' '.join(argv)} imported torch: {torch_modules[:5]}")
    result = subprocess.CompletedProcess(argv, rc, out, err)
    result.cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss / 1024, result


def best_wall(argv, env, cpu, repeat) -> tuple[float, float, str]:
    """(best wall, best CPU seconds, output) of `repeat` runs."""
    walls, cpus, text = [], [], ""
    for _ in range(repeat):
        wall, _, r = run(argv, env, cpu)
        walls.append(wall)
        cpus.append(r.cpu)
        text = r.stdout.strip()
    return min(walls), min(cpus), text


def stream_rtf(seconds: float, chunk_ms: float = 100.0) -> dict:
    """One stream through the bundled streaming model in this process, 100 ms chunks, greedy."""
    import asr
    model = asr.load_model("streaming", threads=1)
    clips = sorted(os.listdir(os.path.join(REPO, "tests", "data", "cathy", "audio")))
    x = np.concatenate([load_audio(os.path.join(REPO, "tests", "data", "cathy", "audio", c)) for c in clips])
    x = np.tile(x, int(np.ceil(seconds * SAMPLE_RATE / len(x))))[: int(seconds * SAMPLE_RATE)]
    chunk = int(SAMPLE_RATE * chunk_ms / 1000)
    rec = asr.Recognizer(model)
    rec.stream().accept(x[:chunk])  # warm-up
    stream = rec.stream()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for i in range(0, len(x), chunk):
        stream.accept(x[i:i + chunk])
    stream.finish()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return {"rtf_cpu": cpu / seconds, "rtf_wall": wall / seconds, "torch": "torch" in sys.modules}


def long_file(path: str, minutes: float) -> float:
    """Write Cathy's prompts one after another (0.3 s pauses) up to `minutes`; returns seconds."""
    files = sorted(f for f in os.listdir(CATHY) if f.endswith(".flac"))
    pause = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    total, i = 0, 0
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC") as f:
        while total < minutes * 60 * SAMPLE_RATE:
            x = load_audio(os.path.join(CATHY, files[i % len(files)]))
            f.write(np.concatenate([x, pause]))
            total, i = total + len(x) + len(pause), i + 1
    return total / SAMPLE_RATE


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12.0, help="length of the long file (0: skip)")
    ap.add_argument("--stream-seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="pin the commands to this core (taskset)")
    ap.add_argument("--long-only", action="store_true", help="only the long file")
    ap.add_argument("--modes", default="defaults,stream", help="the long file's runs: defaults, stream or both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "sitecustomize.py"), "w") as f:
            f.write(WATCH)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tmp, REPO]), ASR_BENCH_TORCH=os.path.join(tmp, "torch.txt"),
                   OMP_NUM_THREADS="1")
        if not args.long_only:
            wall, cpu, _ = best_wall(["--help"], env, args.cpu, args.repeat)
            print(f"asr --help: {wall:.3f} s wall, {cpu:.3f} s CPU (best of {args.repeat})  target < 0.3 s")
            for extra, what in (([], "defaults: offline model, beam + LM"),
                                (["--stream"], "--stream: streaming model, beam + LM"),
                                (["--no-lm"], "offline model, greedy")):
                wall, cpu, text = best_wall(["transcribe", SAMPLE, "--no-progress", *extra], env, args.cpu, args.repeat)
                print(f"asr transcribe of the 3.7 s sample ({what}): {wall:.3f} s wall, {cpu:.3f} s CPU  target < 1 s"
                      f"  -> {text!r}")
            r = stream_rtf(args.stream_seconds)
            print(f"one stream, 100 ms chunks, 1 thread, greedy, {args.stream_seconds:.0f} s of speech: RTF "
                  f"{r['rtf_cpu']:.4f} thread CPU ({r['rtf_wall']:.4f} wall)  target <= 0.01  (torch imported: {r['torch']})")
        if args.minutes:
            path = os.path.join(tmp, "long.flac")
            seconds = long_file(path, args.minutes)
            for mode in args.modes.split(","):
                extra = {"defaults": [], "stream": ["--stream"]}[mode]
                wall, rss, r = run(["transcribe", path, "--threads", "1", "--no-progress", "-f", "json", *extra], env,
                                   args.cpu)
                print(f"{seconds / 60:.1f}-minute file, asr transcribe --threads 1 ({mode}): peak RSS {rss:.0f} MB, "
                      f"wall {wall:.1f} s, CPU {r.cpu:.1f} s (RTF {r.cpu / seconds:.4f} CPU with start-up)  "
                      f"target <= 200 MB for 1 hour")


if __name__ == "__main__":
    main()
