"""`asr serve`'s HTTP API beside live streams: the upload's real-time factor, and the partial
latency of live Vosk clients without and with a concurrent upload.

    python benchmarks/serve_http.py                     # the bundled model + LM, 20 live clients
    python benchmarks/serve_http.py --clients 50 --model PATH

The server runs as `asr serve` (one thread). Live clients stream the test clips in
real time (a 100 ms chunk every 100 ms); a chunk's latency is from its sending to its reply.
Phase 1: the live clients alone. Phase 2: the same while a long file (the test clips with
pauses, repeated to --upload-seconds) is transcribed through POST /v1/audio/transcriptions.
Phase 3: the upload alone (its RTF without live streams).
"""
import argparse
import asyncio
import csv
import io
import os
import sys
import time

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from serving import start_server  # noqa: E402


def clips() -> list[np.ndarray]:
    from asr.audio import load_audio
    data = os.path.join(REPO, "tests", "data", "cathy")
    with open(os.path.join(data, "manifest.tsv"), newline="") as f:
        return [load_audio(os.path.join(data, r["path"])) for r in csv.DictReader(f, delimiter="\t")]


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


async def live(url, pcm, stop, lat):
    from websockets.asyncio.client import connect
    async with connect(url, open_timeout=120) as ws:
        await ws.send('{"config": {"sample_rate": 16000}}')
        i = 0
        while not stop.is_set():
            sent = time.perf_counter()
            await ws.send(pcm[i % len(pcm): i % len(pcm) + 3200] or b"\0\0")
            await ws.recv()
            lat.append((sent, time.perf_counter() - sent))
            i += 3200
            await asyncio.sleep(max(0.0, sent + 0.1 - time.perf_counter()))
        await ws.send('{"eof" : 1}')
        await ws.recv()


async def upload(http_url, wav: bytes) -> tuple[float, float, float]:
    from aiohttp import ClientSession, ClientTimeout, FormData
    form = FormData()
    form.add_field("file", wav, filename="long.wav")
    async with ClientSession(timeout=ClientTimeout(total=3600)) as s:
        t0 = time.perf_counter()
        async with s.post(http_url + "/v1/audio/transcriptions", data=form) as r:
            body = await r.json()
        t1 = time.perf_counter()
    assert r.status == 200, body
    return t0, t1, t1 - t0


def summary(lat: list[float]) -> str:
    ms = 1000 * np.array(lat)
    return f"p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms ({len(ms)} replies)"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--model", help="model file (default: the bundled model, with its LM)")
    p.add_argument("--upload-seconds", type=float, default=120.0)
    p.add_argument("--baseline-seconds", type=float, default=15.0)
    args = p.parse_args()
    xs = clips()
    pcms = [pcm16(x) for x in xs]
    gap = np.zeros(8000, np.float32)
    one = np.concatenate([np.concatenate([x, gap]) for x in xs])
    long = np.tile(one, int(np.ceil(args.upload_seconds * 16000 / len(one))))[: int(args.upload_seconds * 16000)]
    buf = io.BytesIO()
    sf.write(buf, long, 16000, subtype="PCM_16", format="WAV")
    wav = buf.getvalue()
    proc, url = start_server(["--threads", "1", "--max-connections", str(args.clients + 10),
                              "--max-per-client", str(args.clients + 10)]
                             + (["--model", args.model] if args.model else []))
    try:
        http_url = url.replace("ws://", "http://")

        async def run():
            stop, lat = asyncio.Event(), []
            tasks = [asyncio.create_task(live(url, pcms[i % len(pcms)], stop, lat)) for i in range(args.clients)]
            await asyncio.sleep(3.0)  # warm up
            t0 = time.perf_counter()
            await asyncio.sleep(args.baseline_seconds)
            base = [l for s, l in lat if s >= t0]
            u0, u1, with_live = await upload(http_url, wav)
            during = [l for s, l in lat if u0 <= s <= u1]
            stop.set()
            await asyncio.gather(*tasks)
            _, _, alone = await upload(http_url, wav)
            return base, during, with_live, alone
        base, during, with_live, alone = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(f"{args.clients} live clients, 100 ms chunks in real time; upload of {args.upload_seconds:g} s of speech "
          f"({'the bundled model + LM' if not args.model else args.model}); server: 1 thread")
    print(f"partial latency, live clients alone:      {summary(base)}")
    print(f"partial latency, during the upload:       {summary(during)}")
    print(f"upload RTF beside the live clients: {with_live / args.upload_seconds:.3f} ({with_live:.1f} s); "
          f"alone: {alone / args.upload_seconds:.3f} ({alone:.1f} s)")


if __name__ == "__main__":
    main()
