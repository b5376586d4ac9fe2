"""`asr listen`: live transcription of a microphone.

End to end through a virtual microphone (a PulseAudio null sink whose monitor is the default
source; /work/shared/VIRTUAL_MIC.md): speech played into it comes out as the text that
transcribing the file gives. Those tests skip, saying why, only where the audio stack cannot
be started. The rest (the live loop, the displays, the microphone's bookkeeping) runs anywhere.
"""
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from asr.audio import load_audio
from asr.endpoint import EndpointConfig
from asr.listen import JsonDisplay, PlainDisplay, TerminalDisplay, transcribe_live
from asr.mic import Microphone, MicError
from asr.streaming import Recognizer
from asr.text import normalize
from asr.transcribe import transcribe

from virtual_mic import VirtualMic, start_virtual_mic

APT = "apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"


def start_vmic() -> VirtualMic:
    mic = start_virtual_mic(APT)
    probe = subprocess.run([sys.executable, "-c", "import sounddevice"], env=mic.env, capture_output=True, text=True)
    if probe.returncode != 0:
        mic.stop()
        pytest.skip(f"sounddevice cannot load PortAudio ({probe.stderr.strip().splitlines()[-1]}; {APT})")
    return mic


@pytest.fixture(scope="module")
def vmic():
    mic = start_vmic()
    yield mic
    mic.stop()


class Listener:
    """`asr listen` in a subprocess with the virtual microphone's environment; its stdout and
    stderr are read by two threads as they come."""

    def __init__(self, vmic, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "asr", "listen", *map(str, args)], env=vmic.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._err_lines = queue.Queue()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stderr, self._err_lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stdout, None), daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, pipe, lines):
        for line in pipe:
            if lines is None:
                self.stdout.append(line)
            else:
                self.stderr.append(line)
                lines.put(line)
        if lines is not None:
            lines.put(None)

    def wait_for(self, text: str, timeout: float = 90) -> bool:
        """Wait until a line on stderr contains text (False if the process ends first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._err_lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return False
            if text in line:
                return True
        return False

    def finish(self, sig=signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
        """Send sig (None: none) and wait for the exit: (exit code, stdout)."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        return self.proc.returncode, "".join(self.stdout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_speech_played_into_the_microphone_is_transcribed(vmic, tiny_live_model, tiny_live_model_path,
                                                          cathy_clips, tmp_path):
    """Two sentences with a pause between, played into the virtual microphone: a final line per
    sentence, the same text `asr transcribe --stream` gives for the sentences' files; the
    saved audio is what was played, and transcribing it gives exactly what was shown live."""
    (a, text_a), (b, text_b) = cathy_clips[4], cathy_clips[7]
    expected = [transcribe(tiny_live_model, p, chunk_ms=100).text for p in (a, b)]  # punctuated, as the lines are
    assert [normalize(e) for e in expected] == [text_a, text_b]
    pause = np.zeros(32000, np.float32)  # 2 s: longer than the 1.2 s that ends an utterance
    played = np.concatenate([pause[:8000], load_audio(a), pause, load_audio(b), pause[:8000]])
    wav = tmp_path / "played.wav"
    sf.write(wav, played, 16000, subtype="PCM_16")
    heard = tmp_path / "heard.wav"
    listener = Listener(vmic, "--model", tiny_live_model_path, "--format", "json", "--save-audio", heard)
    try:
        assert listener.wait_for("listening"), "".join(listener.stderr)
        vmic.play(wav)
        time.sleep(0.5)  # the last of it through PulseAudio's buffers
        code, out = listener.finish(signal.SIGINT)
    finally:
        listener.kill()
    assert code == 0, "".join(listener.stderr)
    events = [json.loads(line) for line in out.splitlines()]
    finals = [e["text"] for e in events if e["type"] == "final"]
    partials = [e["text"] for e in events if e["type"] == "partial"]
    assert " ".join(finals) == " ".join(expected)  # up to endpoint segmentation...
    assert finals == expected  # ...which here falls in the pause
    assert any(p and text_a.startswith(p) and p != text_a for p in partials)  # partials grew while speaking
    for e in events:
        if e["type"] == "final":
            assert [w["word"] for w in e["words"]] == e["text"].split() and e["start"] < e["end"]
    # --save-audio: exactly what was heard, at the device's rate; it holds what was played
    rec, rate = sf.read(heard, dtype="float32")
    got = soxr.resample(rec, rate, 16000) if rate != 16000 else rec
    assert len(got) >= len(played) * 0.9
    corr = np.correlate(got, played, mode="valid") if len(got) >= len(played) else np.correlate(played, got, "valid")
    assert corr.max() / (np.linalg.norm(played) * np.linalg.norm(got)) > 0.95
    assert normalize(transcribe(tiny_live_model, heard, chunk_ms=100).text) == normalize(" ".join(finals))


def test_list_devices_and_a_missing_device(vmic, tiny_live_model_path):
    env = vmic.env
    out = subprocess.run([sys.executable, "-m", "asr", "listen", "--list-devices"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "default" in out.stdout and "Hz" in out.stdout, out.stderr
    bad = subprocess.run([sys.executable, "-m", "asr", "listen", "--device", "no such mic", "--model",
                          str(tiny_live_model_path)], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("asr: error: no such mic: no such input device") and "Traceback" not in bad.stderr


def test_a_lost_device_is_a_clear_error(tiny_live_model_path):
    """The sound server freezes (the device delivers nothing), then dies (the device is gone):
    either way one error line and exit status 1, promptly, with no traceback."""
    mic = start_vmic()  # its own PulseAudio: this test stops it
    try:
        for lose in ("freeze", "kill"):
            listener = Listener(mic, "--model", tiny_live_model_path)
            try:
                assert listener.wait_for("listening"), "".join(listener.stderr)
                if lose == "freeze":
                    mic.pulse.send_signal(signal.SIGSTOP)
                else:
                    mic.kill_pulseaudio()
                started = time.monotonic()
                code, out = listener.finish(None, timeout=30)
                took = time.monotonic() - started
            finally:
                listener.kill()
                if lose == "freeze":
                    mic.pulse.send_signal(signal.SIGCONT)
            errors = [line for line in listener.stderr if line.startswith("asr: error:")]
            assert code == 1 and len(errors) == 1, (lose, "".join(listener.stderr))
            assert "Traceback" not in "".join(listener.stderr)
            assert "lost" in errors[0] or "stopped" in errors[0]
            assert took < 15
    finally:
        mic.stop()


# ----------------------------------------------------------------------------- without an audio stack
def test_the_live_loop_gives_finals_at_endpoints_and_the_rest_at_the_end(tiny_live_model, cathy_clips):
    (a, text_a), (b, text_b) = cathy_clips[1], cathy_clips[3]
    x = np.concatenate([load_audio(a), np.zeros(32000, np.float32), load_audio(b)])
    stream = Recognizer(tiny_live_model, endpoint=EndpointConfig()).stream()
    out = io.StringIO()
    blocks = (x[i:i + 4410] for i in range(0, len(x), 4410))
    result = transcribe_live(stream, blocks, JsonDisplay(out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["text"] for e in events if e["type"] == "final"] == [text_a, text_b]
    assert result.text == f"{text_a} {text_b}"
    shown = [e["text"] for e in events if e["type"] == "partial"]
    assert len(shown) == len(set(zip(shown, shown[1:]))) + 1 or len(shown) > 3  # only changes are written


def test_an_error_from_the_source_still_flushes_the_last_utterance(tiny_live_model, cathy_clips):
    x = load_audio(cathy_clips[5][0])

    def source():
        yield from (x[i:i + 1600] for i in range(0, len(x), 1600))
        raise MicError("test mic: the audio device stopped")
    out = io.StringIO()
    stream = Recognizer(tiny_live_model, endpoint=EndpointConfig()).stream()
    with pytest.raises(MicError):
        transcribe_live(stream, source(), PlainDisplay(out), tail=lambda: np.zeros(100, np.float32))
    assert out.getvalue() == cathy_clips[5][1] + "\n"


def test_terminal_display_redraws_in_place():
    out = io.StringIO()
    d = TerminalDisplay(out)
    d.partial("hel")
    d.partial("hel")  # unchanged: nothing drawn
    d.partial("hello wor")
    d.final(SimpleNamespace(text="hello world"))
    d.final(SimpleNamespace(text=""))  # an empty utterance prints no line
    assert out.getvalue() == "\r\x1b[Khel\r\x1b[Khello wor\r\x1b[Khello world\n\r\x1b[K"


def test_overflows_and_drops_are_reported_and_listening_goes_on():
    warnings = []
    mic = Microphone(on_warning=warnings.append, block_seconds=0.1)
    mic._queue = queue.Queue(maxsize=2)
    mic.name = "test mic"
    ok, overflow = SimpleNamespace(input_overflow=False), SimpleNamespace(input_overflow=True)
    block = np.ones((1600, 1), np.int16)
    mic._callback(block, 1600, None, overflow)
    mic._callback(block, 1600, None, ok)
    mic._callback(block, 1600, None, ok)  # the queue is full: dropped
    mic._stream = SimpleNamespace(active=True)
    got = []
    for b in mic.raw_blocks():
        got.append(b)
        if len(got) == 2:
            mic.stop()
    assert len(got) == 2 and mic.overflows == 1 and mic.dropped == 1
    assert len(warnings) == 1 and "input overflow (1x)" in warnings[0] and "0.1 s dropped" in warnings[0]
    assert "listening goes on" in warnings[0]


def test_a_stream_that_stops_delivering_raises(monkeypatch):
    import asr.mic
    monkeypatch.setattr(asr.mic, "STALL_SECONDS", 0.3)
    mic = Microphone()
    mic.name = "test mic"
    mic._queue = queue.Queue()
    mic._stream = SimpleNamespace(active=True)
    with pytest.raises(MicError, match="test mic: no audio for 0.3 s"):
        next(mic.raw_blocks())
    mic._stream = SimpleNamespace(active=False)
    with pytest.raises(MicError, match="stopped"):
        next(mic.raw_blocks())
