"""Memory soak of `asr serve`: rounds of many concurrent Vosk clients; the server's RSS after
each round. Memory is bounded when RSS levels off instead of growing round after round.

    python benchmarks/server_soak.py                      # 10 rounds of 200 clients, the bundled model + LM
    python benchmarks/server_soak.py --rounds 20 --clients 100 --model tests/data/tiny_uni.pt

Each client streams a real clip (the test clips, a different one per client) in 100 ms
chunks as fast as the replies come, then eof; a round ends when all have their final result.
"""
import argparse
import asyncio
import csv
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from serving import start_server  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def clips() -> list[bytes]:
    from asr.audio import load_audio
    data = os.path.join(REPO, "tests", "data", "cathy")
    with open(os.path.join(data, "manifest.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        x = load_audio(os.path.join(data, r["path"]))
        out.append((np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
    return out


async def client(url: str, pcm: bytes) -> str:
    from websockets.asyncio.client import connect
    async with connect(url, open_timeout=120) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i:i + 3200])
            await ws.recv()
        await ws.send('{"eof" : 1}')
        return json.loads(await ws.recv()).get("text", "")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--model", help="model file (default: the bundled model, with its LM)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    pcms = clips()
    proc, url = start_server(["--threads", str(args.threads), "--max-connections", str(args.clients + 10),
                              "--max-per-client", str(args.clients + 10)]
                             + (["--model", args.model] if args.model else []))
    try:
        print(f"server pid {proc.pid}: RSS {rss_mb(proc.pid):.0f} MB after start; "
              f"{args.rounds} rounds of {args.clients} clients", flush=True)
        for r in range(1, args.rounds + 1):
            t0 = time.perf_counter()

            async def round_():
                return await asyncio.gather(*(client(url, pcms[i % len(pcms)]) for i in range(args.clients)),
                                            return_exceptions=True)
            results = asyncio.run(round_())
            failed = sum(isinstance(x, BaseException) for x in results)
            time.sleep(6.0)  # idle: the server returns freed memory after 5 s (asr/server.py)
            print(f"round {r:3d}: RSS {rss_mb(proc.pid):6.0f} MB  ({time.perf_counter() - t0:5.1f} s, "
                  f"{failed} clients failed)", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
