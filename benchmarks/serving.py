"""What the server benchmarks share: `asr serve` started as a process of its own."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_server(options: list[str], prefix: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """Start `asr serve --port 0 OPTIONS` (prefix: e.g. taskset's arguments before it) and wait
    for it to listen; returns the process and its ws:// URL. Its log is drained from then on, so
    that a full pipe never blocks it. Stop it with terminate()."""
    cmd = [*prefix, sys.executable, "-m", "asr", "serve", "--port", "0", *options]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    while True:
        line = proc.stderr.readline()
        if not line:
            proc.wait(timeout=30)
            raise SystemExit(f"the server did not start (exit status {proc.returncode})")
        if "serving on" in line:
            subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)  # drain its log
            return proc, line.split("serving on ")[1].split()[0]
