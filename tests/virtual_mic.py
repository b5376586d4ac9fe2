"""A virtual microphone for the live tests: PulseAudio in user mode with a null sink `vmic` whose
monitor is the default source (/work/shared/VIRTUAL_MIC.md). Whatever records from PulseAudio's
default source with `VirtualMic.env` (`asr listen`, Firefox) hears what `play` plays into it."""
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import REPO

TOOLS = ("pulseaudio", "pactl", "pacat", "paplay", "parec")


# ----------------------------------------------------------------------------- the virtual microphone
class VirtualMic:
    """PulseAudio in user mode with a null sink `vmic` whose monitor is the default source;
    all its state in one temporary folder; stopped by the PIDs it started. rate: the sink's (and
    so the microphone's) sample rate in Hz; PulseAudio resamples what is played at another."""

    def __init__(self, rate: int = 16000):
        self.dir = tempfile.mkdtemp(prefix="vmic-")
        d = self.dir
        self.env = dict(os.environ, HOME=f"{d}/home", XDG_RUNTIME_DIR=f"{d}/xdg", PULSE_SERVER=f"unix:{d}/pulse.sock",
                        PYTHONPATH=str(REPO))
        os.makedirs(f"{d}/home")
        os.makedirs(f"{d}/xdg", mode=0o700)
        with open(f"{d}/vmic.pa", "w") as f:
            f.write(f"load-module module-native-protocol-unix auth-anonymous=1 socket={d}/pulse.sock\n"
                    f"load-module module-null-sink sink_name=vmic rate={rate} channels=1\n"
                    "set-default-sink vmic\nset-default-source vmic.monitor\n")
        self.procs = []

    def _spawn(self, *cmd, **kw):
        proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.pulse = self._spawn("pulseaudio", "-n", "-F", f"{self.dir}/vmic.pa", "--daemonize=no",
                                 "--exit-idle-time=-1", f"--log-target=file:{self.dir}/pa.log",
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode != 0:
            if self.pulse.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PulseAudio did not start: {self.log_tail()}")
            time.sleep(0.05)
        # keep-alive: a silent stream keeps the sink running (else the first 0.6-2 s are lost)
        self._spawn("pacat", "-p", "--device=vmic", "--format=s16le", "--rate=16000", "--channels=1",
                    "--latency-msec=20", "/dev/zero", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # warm-up gate: wait until the monitor really delivers data
        rec = self._spawn("parec", "-d", "vmic.monitor", "--raw", "--format=s16le", "--rate=16000", "--channels=1",
                          "--latency-msec=20", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        got = read_with_timeout(rec.stdout, 640, 10)
        rec.kill()
        rec.wait()
        rec.stdout.close()
        if len(got) < 640:
            raise RuntimeError(f"the virtual microphone delivers no audio: {self.log_tail()}")

    def play(self, path, timeout=60) -> None:
        subprocess.run(["paplay", "--device=vmic", str(path)], env=self.env, timeout=timeout, check=True)

    def kill_pulseaudio(self) -> None:
        self.pulse.terminate()
        self.pulse.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            with open(f"{self.dir}/pa.log") as f:
                return " | ".join(f.read().strip().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_with_timeout(pipe, n: int, timeout: float) -> bytes:
    out = queue.Queue()
    threading.Thread(target=lambda: out.put(pipe.read(n)), daemon=True).start()
    try:
        return out.get(timeout=timeout)
    except queue.Empty:
        return b""


def start_virtual_mic(apt: str, rate: int = 16000) -> VirtualMic:
    """A started VirtualMic at rate Hz; skips the test, saying why, where PulseAudio cannot start
    (apt: the packages to install, for the message)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"no audio stack to test with: {', '.join(missing)} not installed ({apt})")
    mic = VirtualMic(rate)
    try:
        mic.start()
    except (RuntimeError, OSError) as err:
        mic.stop()
        pytest.skip(f"the virtual microphone could not be started: {err}")
    return mic
