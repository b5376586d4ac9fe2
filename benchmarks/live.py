#!/usr/bin/env python3
"""Live transcription: concurrent real-time streams on one CPU core, and partial-result latency.

    python benchmarks/live.py capacity [--model PATH] [--chunk-ms 100] [--seconds 10] [--clock wall|cpu] [--int8]
    python benchmarks/live.py latency  [--model PATH] [--chunk-ms 100] [--seconds 10] [--clients 100]
    python benchmarks/live.py latency-sim [--model PATH] [--chunk-ms 100] [--seconds 10] [--clients 25,50,100,150]

capacity: N streams, each given one chunk of real speech per tick in real time (a tick every
chunk-ms), all stepped together by one `Recognizer.step` per tick with endpointing on, on one
pinned core with one torch thread. A stream falls behind when a tick ends later than the
audio of the next chunk has arrived; the figure is the largest N where none ever does
(target >= 100 for the default model).

latency: `asr serve` in a subprocess pinned to one core (one torch thread); N WebSocket
clients on the other cores each send chunk-ms of 16-bit PCM in real time, vosk-style (one
reply per chunk). Latency of a partial = reply received - first sample of its chunk, i.e.
the chunk's own duration plus transport, queueing and compute (target p95 <= chunk + 50 ms).

latency-sim: the same batching as the server's, for 25-150 clients, on a simulated dedicated
core: real ticks timed by their CPU time on a virtual clock, so that a shared machine's other
work does not count (on a quiet machine, `latency` measures the real thing).

Without --model: the bundled default model if there is one, else a randomly initialised
model of the default configuration `ModelConfig()` (the same cost as a trained one); from its
torch file, exported in memory, float or with --int8 (`asr export --int8`).
"""
import argparse
import asyncio
import json
import os
import tempfile
import time

import numpy as np
import torch

from common import get_model, speech  # puts the repository on sys.path too
from serving import start_server

from asr import runtime  # noqa: E402
from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.checkpoint import save_model  # noqa: E402
from asr.endpoint import EndpointConfig  # noqa: E402
from asr.export import runtime_form  # noqa: E402
from asr.streaming import Recognizer  # noqa: E402





def pin_one_core() -> int:
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    return core


# ----------------------------------------------------------------------------- capacity
def run_streams(rec: Recognizer, audio: np.ndarray, n: int, chunk: int, seconds: float, clock: str) -> dict:
    """n streams in real time for `seconds`; per-tick compute times and the worst lag.

    clock "wall": ticks wait for their audio's arrival and are timed by the wall clock (what
    a dedicated core gives). clock "cpu": each tick lasts its thread CPU time on a simulated
    timeline (start = max(previous end, arrival)), so that other processes sharing the core
    do not count against the recogniser.
    """
    streams = [rec.stream() for _ in range(n)]
    offsets = [(i * 7919 * chunk) % (len(audio) - int(seconds * SAMPLE_RATE) - chunk) for i in range(n)]
    ticks = int(seconds * SAMPLE_RATE / chunk)
    period = chunk / SAMPLE_RATE
    times, lag, end = [], 0.0, 0.0
    start = time.perf_counter()
    read = time.perf_counter if clock == "wall" else time.thread_time
    for k in range(ticks):
        due = (k + 1) * period  # when chunk k has fully arrived, from the start
        if clock == "wall":
            wait = start + due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        t0 = read()
        for s, off in zip(streams, offsets):
            s.feed(audio[off + k * chunk: off + (k + 1) * chunk])
        rec.step(streams)
        for s in streams:
            if s.endpoint() is None:
                s.partial()
        took = read() - t0
        times.append(took)
        end = (time.perf_counter() - start) if clock == "wall" else max(end, due) + took
        lag = max(lag, end - due)  # how long after its chunk arrived this tick's answers were out
    return {"n": n, "tick_p50_ms": 1000 * float(np.median(times)), "tick_p95_ms": 1000 * float(np.percentile(times, 95)),
            "tick_max_ms": 1000 * max(times), "max_lag_ms": 1000 * lag, "behind": lag > period}


def capacity(model, chunk_ms: float, seconds: float, start_n: int, clock: str) -> None:
    core = pin_one_core()
    chunk = int(SAMPLE_RATE * chunk_ms / 1000)
    audio = speech(seconds + 240)
    rec = Recognizer(model, endpoint=EndpointConfig())
    run_streams(rec, audio, start_n, chunk, 2.0, clock)  # warm-up: allocations of that batch size
    print(f"one core (cpu {core}), 1 torch thread, {chunk_ms:g} ms chunks, {seconds:g} s per trial, endpointing on, "
          f"{clock} clock")
    best, n, step = None, start_n, 1.25
    while True:
        r = run_streams(rec, audio, n, chunk, seconds, clock)
        print(f"  {r['n']:4d} streams: tick p50 {r['tick_p50_ms']:6.1f} ms, p95 {r['tick_p95_ms']:6.1f} ms, "
              f"max {r['tick_max_ms']:6.1f} ms; worst lag {r['max_lag_ms']:6.1f} ms "
              f"{'-> falls behind' if r['behind'] else '(real time)'}", flush=True)
        if r["behind"]:
            if best is None and n > 4:
                n = max(4, int(n / step))
                continue
            break
        best = n
        n = int(n * step) + 1
    print(f"concurrent real-time streams on one core: {best} ({clock} clock; a tick must end before the next "
          f"chunk has arrived)")


# ----------------------------------------------------------------------------- latency on a simulated core
def simulate(rec: Recognizer, audio: np.ndarray, n: int, chunk: int, seconds: float) -> dict:
    """What `asr serve` does for n vosk-style clients, on a dedicated core: clients' chunks
    complete at phases spread over the chunk period; each client sends its next chunk when
    it is complete and the previous reply has come; the worker takes every chunk waiting when
    it starts a tick and steps them together. Ticks are real (the same calls as the server's
    worker) and last their thread CPU time on a virtual clock. Latency of a partial = tick
    end - first sample of its chunk."""
    period = chunk / SAMPLE_RATE
    streams = [rec.stream() for _ in range(n)]
    offsets = [(i * 7919 * chunk) % (len(audio) - int(seconds * SAMPLE_RATE) - chunk) for i in range(n)]
    ticks = int(seconds / period)
    captured = [[(i / n + k + 1) * period for k in range(ticks)] for i in range(n)]  # chunk k complete
    ready = [captured[i][0] for i in range(n)]  # when client i's next chunk reaches the server
    nxt = [0] * n
    clock, latencies, batches, behind = 0.0, [], [], 0
    while True:
        live = [i for i in range(n) if nxt[i] < ticks]
        if not live:
            break
        clock = max(clock, min(ready[i] for i in live))
        batch = [i for i in live if ready[i] <= clock]
        t0 = time.thread_time()
        for i in batch:
            k = nxt[i]
            streams[i].feed(audio[offsets[i] + k * chunk: offsets[i] + (k + 1) * chunk])
        rec.step([streams[i] for i in batch])
        for i in batch:
            if streams[i].endpoint() is None:
                streams[i].partial()
        clock += time.thread_time() - t0
        batches.append(len(batch))
        for i in batch:
            k = nxt[i]
            latencies.append(clock - (captured[i][k] - period))
            if k + 1 < ticks and clock > captured[i][k + 1]:
                behind += 1  # the next chunk was complete before this reply: the client waits
            nxt[i] = k + 1
            if k + 1 < ticks:
                ready[i] = max(captured[i][k + 1], clock)
    ms = 1000 * np.array(latencies)
    return {"n": n, "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "max": float(ms.max()),
            "batch": float(np.mean(batches)), "behind": behind / len(latencies)}


def latency_sim(model, chunk_ms: float, seconds: float, counts: list[int]) -> None:
    core = pin_one_core()
    chunk = int(SAMPLE_RATE * chunk_ms / 1000)
    audio = speech(seconds + 240)
    rec = Recognizer(model, endpoint=EndpointConfig())
    simulate(rec, audio, 8, chunk, 1.0)  # warm-up
    print(f"simulated dedicated core (cpu {core}, CPU time), 1 torch thread, {chunk_ms:g} ms chunks, {seconds:g} s "
          f"per client, arrivals spread over the chunk, batching as in asr serve")
    for n in counts:
        r = simulate(rec, audio, n, chunk, seconds)
        print(f"  {n:4d} clients: partial latency p50 {r['p50']:6.1f} ms, p95 {r['p95']:6.1f} ms, max {r['max']:6.1f} ms; "
              f"mean batch {r['batch']:5.1f}; replies after the next chunk was ready: {100 * r['behind']:.1f}%",
              flush=True)
    print(f"target: p95 <= chunk + 50 ms = {chunk_ms + 50:g} ms")


# ----------------------------------------------------------------------------- latency
async def client(url: str, pcm: bytes, chunk_bytes: int, period: float, start: float, out: list):
    from websockets.asyncio.client import connect
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": SAMPLE_RATE}}))
        for k in range(len(pcm) // chunk_bytes):
            due = start + (k + 1) * period  # the chunk's last sample has been "captured"
            now = time.perf_counter()
            if now < due:
                await asyncio.sleep(due - now)
            await ws.send(pcm[k * chunk_bytes:(k + 1) * chunk_bytes])
            await ws.recv()
            out.append(time.perf_counter() - (due - period))
        await ws.send('{"eof" : 1}')
        await ws.recv()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(model, chunk_ms: float, seconds: float, clients: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_cores = cores[-1], set(cores[:-1]) or {cores[-1]}
    os.sched_setaffinity(0, client_cores)
    audio = speech(seconds + 120)
    chunk = int(SAMPLE_RATE * chunk_ms / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        save_model(model, path)
        proc, url = start_server(["--model", path, "--threads", "1", "--max-connections", str(clients + 10),
                                  "--max-per-client", str(clients + 10)],
                                 prefix=["taskset", "-c", str(server_core)])
        try:
            pcms = []
            for i in range(clients):
                off = (i * 7919 * chunk) % (len(audio) - int(seconds * SAMPLE_RATE))
                x = audio[off: off + int(seconds * SAMPLE_RATE)]
                pcms.append((np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
            lat: list[float] = []
            cpu0, wall0 = cpu_seconds(proc.pid), time.perf_counter()

            async def main():
                start = time.perf_counter() + 0.5
                # clients start spread over one chunk, as independent users would
                await asyncio.gather(*(client(url, p, chunk * 2, chunk_ms / 1000, start + (i / clients) * chunk_ms / 1000,
                                              lat) for i, p in enumerate(pcms)))
            asyncio.run(main())
            cpu = cpu_seconds(proc.pid) - cpu0
            wall = time.perf_counter() - wall0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ms = 1000 * np.array(lat)
    print(f"server on one core (cpu {server_core}), 1 torch thread; {clients} clients on cpu {sorted(client_cores)}, "
          f"{chunk_ms:g} ms chunks, {seconds:g} s each")
    print(f"partial latency (first sample of a chunk -> its reply): p50 {np.percentile(ms, 50):.0f} ms, "
          f"p95 {np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms; target p95 <= {chunk_ms + 50:.0f} ms")
    audio_s = clients * (len(pcms[0]) // (chunk * 2)) * chunk_ms / 1000
    print(f"server CPU time (all its threads: event loop, websockets, model): {cpu:.1f} s for {audio_s:.0f} s of audio "
          f"in {wall:.1f} s wall -> {audio_s / cpu:.0f} real-time streams per core at this load")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("capacity", "latency", "latency-sim"))
    p.add_argument("--model", metavar="PATH")
    p.add_argument("--chunk-ms", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=10.0, help="audio per stream per trial")
    p.add_argument("--streams", type=int, default=64, help="capacity: the first N tried")
    p.add_argument("--clients", help="latency: concurrent clients (default 100); latency-sim: a list (25,50,100,150)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="capacity: time ticks by the wall clock (a dedicated core) or by CPU time (a shared one)")
    p.add_argument("--int8", action="store_true", help="capacity, latency-sim: the model's int8 form")
    args = p.parse_args()
    model, name = get_model(args.model)
    print(f"model: {name}; {model.num_parameters() / 1e6:.2f} M parameters, "
          f"{model.cfg.num_layers} x GRU {model.cfg.hidden_size}, {'int8' if args.int8 else 'float'}")
    if args.int8 and args.mode != "latency":
        model = runtime.from_file_form(*runtime_form(model, int8=True))
    if args.mode == "capacity":
        capacity(model, args.chunk_ms, args.seconds, args.streams, args.clock)
    elif args.mode == "latency-sim":
        latency_sim(model, args.chunk_ms, args.seconds, [int(c) for c in (args.clients or "25,50,100,150").split(",")])
    else:
        latency(model, args.chunk_ms, args.seconds, int(args.clients or 100))


if __name__ == "__main__":
    main()
