"""Abuse of a live `asr serve`: upload bombs, WebSocket memory amplification and floods from
one client, while another client makes normal requests (issue 23). For each attack: the
server's RSS before, at its peak and after, and the latency of the normal requests made
during it; at the end, what is left in the server's temporary folder and how long SIGTERM
takes during an upload.

    python benchmarks/abuse.py                           # the bundled models (as `asr serve` runs)
    python benchmarks/abuse.py --model tests/data/tiny_uni.pt --seconds 10

The attacker's requests come from 127.0.0.2 and the normal client's from 127.0.0.1, two
addresses to the server (as two machines would be). Goal: every normal request answered
within 2 s during every attack, RSS under 400 MB, nothing left behind.

The attacks:
  bomb       uploads, over and over, 4 at a time: a 105 KB WAV whose header says 1 Hz
             (14.6 h), 3 h of FLAC silence (under 1 MB), 30 min of FLAC silence sent by a
             client that waits for it, and the same from one that hangs up after 1 s
  amplify    32 WebSocket connections (the most one client may hold) each sending one
             1 MiB message: 16 at 1000 Hz (8.7 min of audio each), 16 at 16 kHz (33 s),
             then eof, again and again
  flood      260 uploads that send half their body and then nothing (they hold their
             connection until the stall timeout), and from a third address one form of
             50,000 4 KB text fields and 1000 requests with broken request lines (the log flood)

And `memory`: the memory a WebSocket connection costs, 16 connections each sending one 1 MiB
message (at 16 kHz, then at 1 kHz) and staying open: RSS before, at the peak, once all are
answered (they hold their state), and after they have closed.

Everything runs where the benchmark runs (pin it: `taskset -c 1 python benchmarks/abuse.py`
puts the server, the attacker and the normal client on one core). The attacker runs in a
thread of its own, so that its writes do not hold up the normal client's event loop.
"""
import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from server_soak import rss_mb  # noqa: E402

NORMAL = os.path.join(REPO, "asr", "samples", "cathy_a0046.flac")  # 3.7 s of speech
ATTACKER, CLIENT = "127.0.0.2", "127.0.0.1"
ATTACKER2 = "127.0.0.3"  # the flood's form and broken requests (127.0.0.2 holds its share of slow uploads)


def start(options: list[str], tmp: str, log_path: str) -> tuple[subprocess.Popen, str]:
    """`asr serve --port 0 OPTIONS` with TMPDIR=tmp and its log in log_path; returns it and its http:// URL."""
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--port", "0", *options], stderr=log,
                            env=dict(os.environ, PYTHONPATH=REPO, TMPDIR=tmp))
    for _ in range(1200):
        with open(log_path) as f:
            for line in f:
                if "serving on" in line:
                    return proc, "http://" + line.split("serving on ws://")[1].split()[0]
        if proc.poll() is not None:
            raise SystemExit(f"the server did not start (exit status {proc.returncode}); see {log_path}")
        time.sleep(0.1)
    raise SystemExit("the server did not start in 120 s")


def make_files(folder: str) -> dict[str, str]:
    files = {"one_hz": os.path.join(folder, "one_hz.wav"), "three_hours": os.path.join(folder, "three_hours.flac"),
             "half_hour": os.path.join(folder, "half_hour.flac")}
    sf.write(files["one_hz"], np.random.default_rng(0).integers(-3000, 3000, 52500).astype(np.int16), 1,
             subtype="PCM_16")
    for name, minutes, rate in (("three_hours", 180, 8000), ("half_hour", 30, 16000)):
        with sf.SoundFile(files[name], "w", rate, 1, subtype="PCM_16") as f:
            for _ in range(minutes):
                f.write(np.zeros(rate * 60, np.int16))
    return files


def session(address: str, limit: int = 100):
    from aiohttp import ClientSession, ClientTimeout, TCPConnector
    return ClientSession(connector=TCPConnector(local_addr=(address, 0), limit=limit, force_close=True),
                         timeout=ClientTimeout(total=600))


def form(path: str, **fields):
    from aiohttp import FormData
    f = FormData(default_to_multipart=True)
    for k, v in fields.items():
        f.add_field(k, v)
    with open(path, "rb") as fh:
        f.add_field("file", fh.read(), filename=os.path.basename(path))
    return f


async def upload(s, url: str, path: str) -> int:
    async with s.post(url + "/v1/audio/transcriptions", data=form(path)) as r:
        await r.read()
        return r.status


async def hang_up(url: str, path: str, after: float) -> str:
    """Send the whole upload, wait `after` s, hang up without reading the answer."""
    port = int(url.rsplit(":", 1)[1])
    body = multipart_file(path)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    writer.write(head(port, len(body)) + body)
    await writer.drain()
    await asyncio.sleep(after)
    writer.transport.abort()
    return "hung up"


def multipart_file(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return (b'--bb\r\nContent-Disposition: form-data; name="file"; filename="x.flac"\r\n\r\n' + data
            + b"\r\n--bb--\r\n")


def head(port: int, length: int | None) -> bytes:
    """A multipart POST's head; length None: a chunked body."""
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{size}\r\n"
            "Content-Type: multipart/form-data; boundary=bb\r\n\r\n").encode()


# ---------------------------------------------------------------- the attacks
async def bomb(url: str, files: dict, until: float, tally: dict) -> None:
    async with session(ATTACKER) as s:
        async def loop(make):
            while time.monotonic() < until:
                try:
                    status = await make()
                except Exception as err:  # noqa: BLE001 - the attack goes on whatever happens
                    status = type(err).__name__
                tally[status] = tally.get(status, 0) + 1
        await asyncio.gather(loop(lambda: upload(s, url, files["one_hz"])),
                             loop(lambda: upload(s, url, files["three_hours"])),
                             loop(lambda: asyncio.wait_for(upload(s, url, files["half_hour"]),
                                                           max(0.1, until - time.monotonic()))),
                             loop(lambda: hang_up(url, files["half_hour"], 1.0)))


async def amplify(url: str, until: float, tally: dict) -> None:
    from websockets.asyncio.client import connect
    ws_url = url.replace("http", "ws")
    message = np.random.default_rng(1).integers(-3000, 3000, (1 << 19) - 1024).astype("<i2").tobytes()  # 1 MiB - 2 KiB

    async def connection(rate: int):
        while time.monotonic() < until:
            try:
                async with connect(ws_url, max_size=None, open_timeout=60, ping_interval=None,
                                   local_addr=(ATTACKER, 0)) as ws:  # no keepalive: a 1 kHz message takes a while
                    await ws.send('{"config": {"sample_rate": %d}}' % rate)
                    await ws.send(message)
                    await ws.recv()
                    await ws.send('{"eof" : 1}')
                    await ws.recv()
                status = "answered"
            except Exception as err:  # noqa: BLE001
                status = type(err).__name__
            tally[status] = tally.get(status, 0) + 1
    await asyncio.gather(*(connection(rate) for rate in [1000] * 16 + [16000] * 16))


async def flood(url: str, files: dict, until: float, tally: dict) -> None:
    port = int(url.rsplit(":", 1)[1])
    body = multipart_file(NORMAL)
    writers = []
    for _ in range(260):  # half a body each, then silence
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
            writer.write(head(port, len(body)) + body[:len(body) // 2])
            await writer.drain()
            writers.append(writer)
        except OSError as err:
            tally[type(err).__name__] = tally.get(type(err).__name__, 0) + 1
    tally["slow uploads open"] = len(writers)
    fields = b"".join(b'--bb\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % i + b"x" * 4096 + b"\r\n"
                      for i in range(50000)) + b"--bb--\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER2, 0))
    # chunked, without a Content-Length that would be refused at once (413): the fields themselves are read
    writer.write(head(port, None))
    try:
        for i in range(0, len(fields), 1 << 16):
            piece = fields[i:i + (1 << 16)]
            writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            await asyncio.wait_for(writer.drain(), 30)
        writer.write(b"0\r\n\r\n")
    except (OSError, asyncio.TimeoutError):
        pass
    answer = await asyncio.wait_for(reader.read(200), 30)
    tally["50,000 fields: " + (answer.split(b"\r\n")[0].decode(errors="replace") or "no answer")] = 1
    writer.close()
    for i in range(1000):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER2, 0))
            w.write(b"GET /" + b"a" * (10000 if i % 2 else 10) + b" HTTP/1.1 junk\r\n\r\n")
            await w.drain()
            await r.read(100)
            w.close()
        except OSError:
            pass
    tally["broken request lines sent"] = 1000
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    for w in writers:
        w.close()


async def normal_requests(url: str, until: float) -> list[tuple[float, int]]:
    """The other client: an upload of a 3.7 s clip, one after another (0.3 s apart)."""
    out = []
    async with session(CLIENT) as s:
        while time.monotonic() < until:
            t0 = time.monotonic()
            try:
                status = await asyncio.wait_for(upload(s, url, NORMAL), 30)
            except Exception as err:  # noqa: BLE001
                status = type(err).__name__
            out.append((time.monotonic() - t0, status))
            await asyncio.sleep(0.3)
    return out


def run_attack(name: str, proc, url: str, files: dict, seconds: float) -> dict:
    attack = {"bomb": lambda u, t, tl: bomb(u, files, t, tl), "amplify": amplify,
              "flood": lambda u, t, tl: flood(u, files, t, tl)}[name]
    before = rss_mb(proc.pid)
    peak = [before]
    tally: dict = {}

    async def main():
        until = time.monotonic() + seconds

        async def watch():
            while time.monotonic() < until + 1:
                peak[0] = max(peak[0], rss_mb(proc.pid))
                await asyncio.sleep(0.1)
        watcher = asyncio.create_task(watch())
        attacker = threading.Thread(target=asyncio.run, args=(attack(url, until, tally),))
        attacker.start()
        await asyncio.sleep(1.0)  # the attack is under way
        normal = await normal_requests(url, until)
        await asyncio.to_thread(attacker.join, 120)
        await watcher
        return normal
    normal = asyncio.run(main())
    time.sleep(6.0)  # idle: the server hands freed memory back after 5 s
    lat = [t for t, _ in normal]
    return {"attack": name, "rss_before": before, "rss_peak": peak[0], "rss_after": rss_mb(proc.pid),
            "normal": len(normal), "ok": sum(s == 200 for _, s in normal),
            "p50": statistics.median(lat) if lat else float("nan"), "max": max(lat) if lat else float("nan"),
            "attacker": tally}


def ws_memory(proc, url: str, rate: int, n: int = 16) -> str:
    from websockets.asyncio.client import connect
    message = np.random.default_rng(2).integers(-3000, 3000, (1 << 19) - 1024).astype("<i2").tobytes()

    async def main():
        answered, hold = [0], asyncio.Event()

        async def one():
            async with connect(url.replace("http", "ws"), max_size=None, ping_interval=None,
                               local_addr=(ATTACKER, 0)) as ws:
                await ws.send('{"config": {"sample_rate": %d}}' % rate)
                await ws.send(message)
                await ws.recv()
                answered[0] += 1
                await hold.wait()
                await ws.send('{"eof" : 1}')
                await ws.recv()
        before = peak = rss_mb(proc.pid)
        t0 = time.monotonic()
        clients = asyncio.gather(*(one() for _ in range(n)))
        while answered[0] < n:
            peak = max(peak, rss_mb(proc.pid))
            await asyncio.sleep(0.05)
        held, took = rss_mb(proc.pid), time.monotonic() - t0
        hold.set()
        await clients
        await asyncio.sleep(6.0)
        return (f"{n} connections x 1 MiB at {rate} Hz: RSS {before:.0f} MB before, peak {peak:.0f} "
                f"(+{(peak - before) / n:.1f} MB a connection), {held:.0f} all answered and open, "
                f"{rss_mb(proc.pid):.0f} after they closed; answered in {took:.1f} s")
    return asyncio.run(main())


def sigterm_during_upload(proc, url: str, files: dict) -> float:
    """Seconds from SIGTERM to the process's end, with a half-hour upload in work."""
    port = int(url.rsplit(":", 1)[1])

    async def send():
        body = multipart_file(files["half_hour"])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head(port, len(body)) + body)
        await writer.drain()
        await asyncio.sleep(1.5)  # in work
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() - t0 < 60:
            await asyncio.sleep(0.02)
        writer.close()
        return time.monotonic() - t0
    return asyncio.run(send())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model file (default: the bundled models, as `asr serve` runs)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long each attack lasts (default: 20)")
    p.add_argument("--attacks", default="bomb,amplify,flood,memory")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="asr-abuse-") as work:
        tmp = os.path.join(work, "server-tmp")
        os.mkdir(tmp)
        files = make_files(work)
        log_path = os.path.join(work, "server.log")
        proc, url = start(["--model", args.model] if args.model else [], tmp, log_path)
        try:
            print(f"server pid {proc.pid} at {url}: RSS {rss_mb(proc.pid):.0f} MB after start; "
                  f"each attack {args.seconds:g} s", flush=True)
            print(f"{'attack':8s} {'RSS before':>10s} {'peak':>6s} {'after':>6s}   normal requests: "
                  f"{'ok/sent':>8s} {'p50 s':>6s} {'max s':>6s}   attacker's answers")
            names = args.attacks.split(",")
            for name in [n for n in names if n != "memory"]:
                r = run_attack(name, proc, url, files, args.seconds)
                print(f"{r['attack']:8s} {r['rss_before']:8.0f} MB {r['rss_peak']:6.0f} {r['rss_after']:6.0f}"
                      f"{'':19s}{r['ok']:>4d}/{r['normal']:<4d}{r['p50']:6.2f} {r['max']:6.2f}   {r['attacker']}",
                      flush=True)
            if "memory" in names:
                for rate in (16000, 1000):
                    print(ws_memory(proc, url, rate), flush=True)
            with open(log_path) as f:
                lines = f.read().splitlines()
            print(f"server log: {len(lines)} lines, {sum(' ERROR ' in x for x in lines)} at ERROR, "
                  f"{sum(x.startswith('Traceback') for x in lines)} tracebacks")
            took = sigterm_during_upload(proc, url, files)
            left = [name for name in os.listdir(tmp) if name.startswith("asr-")]
            others = [name for name in os.listdir(tmp) if not name.startswith("asr-")]
            print(f"SIGTERM during an upload: exited in {took:.2f} s with status {proc.returncode}; "
                  f"upload folders left in its TMPDIR: {left or 'none'}"
                  + (f" (other files there, not the server's: {others})" if others else ""))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
