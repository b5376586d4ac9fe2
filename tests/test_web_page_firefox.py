"""The page of `asr serve` in headless Firefox (Debian's firefox-esr), driven over WebDriver
BiDi, the W3C protocol Firefox speaks itself (there is no geckodriver to install: `BiDi` below
is the whole client). Its microphone is a PulseAudio virtual microphone (tests/virtual_mic.py):
a real recording is played into it while the page listens, and goes through Firefox's
getUserMedia, the page's AudioWorklet and the Vosk WebSocket protocol to the server.

What is compared, and why it can be compared exactly:
- The microphone runs at 16 kHz, so Firefox's AudioContext does too and the worklet sends its
  samples unchanged: the server receives the played samples bit for bit (measured: normalised
  cross-correlation 1.0000, no sample different), and the page's lines must be word for word
  what `asr transcribe --stream` gives for the recording. (With the device at 44.1 kHz Firefox
  ran its graph at 48 kHz and resampled the microphone with drift correction: on the loaded
  2-core machine a few ms of audio went missing now and then and the text could differ by a
  letter; docs/live.md has the figures.)
- The worklet's resampling (what real microphones at 44.1 and 48 kHz go through) is checked in
  Firefox's own AudioWorklet faster than real time: the recording, upsampled, rendered through
  it in an OfflineAudioContext, must come back as the recording (correlation > 0.999) and
  give the same text.
- A chosen file goes through the HTTP API and its transcript is offered as TXT/SRT/VTT/JSON
  downloads equal to `asr transcribe -f FORMAT`'s; a file that is not audio, audio the page cannot
  use and a connection that fails are said plainly, the last with Retry.

Set ASR_PAGE_SCREENSHOT_FIREFOX=PATH to keep a screenshot of the page in use."""
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack

import numpy as np
import pytest
import soundfile as sf
import soxr

from asr.endpoint import EndpointConfig
from asr.streaming import Recognizer
from asr.transcribe import transcribe

from asr.text import normalize
from test_web_page import ServerThread, check_downloads, punctuated, two_utterance_recording, wait_for
from virtual_mic import start_virtual_mic

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
APT = "apt-get install firefox-esr pulseaudio pulseaudio-utils"
PREFS = {
    "media.navigator.permission.disabled": True,  # getUserMedia without the permission prompt
    "media.autoplay.default": 0,                  # let an AudioContext start
    "media.autoplay.block-webaudio": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,                    # a blank page at start
}


class BiDiError(Exception):
    pass


class BiDi:
    """Headless Firefox and a minimal WebDriver BiDi client: commands over one WebSocket
    (`ws://127.0.0.1:PORT/session`) answered by id; the page's console (log.entryAdded events)
    is kept in `console` for the failure messages."""

    def __init__(self, env: dict, size=(900, 640), timeout: float = 60):
        from websockets.sync.client import connect
        self.dir = tempfile.mkdtemp(prefix="firefox-")
        os.makedirs(f"{self.dir}/profile")
        with open(f"{self.dir}/profile/user.js", "w") as f:
            for name, value in PREFS.items():
                f.write(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n")
        self.log = open(f"{self.dir}/firefox.log", "a+")  # appending: Firefox shares its offset
        self.closing = ExitStack()
        self.ws = None
        self.proc = subprocess.Popen(  # port 0: Firefox picks one and prints it
            [FIREFOX, "--headless", "--no-remote", "--profile", f"{self.dir}/profile", "--remote-debugging-port", "0",
             "about:blank"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            url = None
            deadline = time.monotonic() + timeout
            while url is None:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BiDiError(f"Firefox did not start: {self.log_tail()}")
                time.sleep(0.1)
                found = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log_text())
                url = found and found.group(1)
            self.ws = self.closing.enter_context(connect(url.rstrip("/") + "/session", max_size=None,
                                                         open_timeout=timeout))
            self.next_id = 0
            self.console: list[str] = []
            self.call("session.new", capabilities={})
            self.call("session.subscribe", events=["log.entryAdded"])
            self.context = self.call("browsingContext.getTree")["contexts"][0]["context"]
            self.call("browsingContext.setViewport", context=self.context, viewport={"width": size[0], "height": size[1]})
        except BaseException:
            self.close()
            raise

    def log_text(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def log_tail(self) -> str:
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return " | ".join(lines[-3:]) or "(nothing on its stderr)"

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout))
            if message.get("method") == "log.entryAdded":  # the page's console and its uncaught errors
                self.console.append(f"{message['params']['level']}: {message['params']['text']}")
            elif message.get("id") == self.next_id:
                if message.get("type") == "error":
                    raise BiDiError(f"{method}: {message['error']}: {message.get('message')}")
                return message["result"]

    def navigate(self, url: str) -> None:
        """Load url and wait until it is loaded and painted."""
        self.call("browsingContext.navigate", context=self.context, url=url, wait="complete")
        self.js("new Promise((painted) => requestAnimationFrame(() => requestAnimationFrame(painted)))")

    def js(self, expression: str):
        """The value of a JavaScript expression in the page (awaited; through JSON)."""
        return self.call_js(f"async () => await ({expression})")

    def call_js(self, function: str, *args):
        """function(*args) in the page, awaited; arguments and value through JSON."""
        result = self.call("script.callFunction", awaitPromise=True, target={"context": self.context},
                           functionDeclaration=f"async (...args) => JSON.stringify(await ({function})(...args.map((a) => JSON.parse(a))))",
                           arguments=[{"type": "string", "value": json.dumps(a)} for a in args])
        if result["type"] == "exception":
            raise BiDiError(f"{function[:80]}: {result['exceptionDetails']['text']}")
        value = result["result"]
        return None if value["type"] == "undefined" else json.loads(value["value"])

    def element(self, css: str) -> dict:
        result = self.call("script.evaluate", expression=f"document.querySelector({json.dumps(css)})",
                           awaitPromise=False, target={"context": self.context})
        node = result.get("result", {})
        if node.get("type") != "node":
            raise BiDiError(f"no element {css}")
        return {"sharedId": node["sharedId"]}

    def click(self, css: str) -> None:
        """A real click: the pointer moved to the element's centre, pressed and released. A click
        that the page did not receive (seen by a listener of the test's) is made once more: twice
        in the first ten runs, before `navigate` waited for the first paint, the first click after
        Firefox started never reached the page."""
        seen = "window.testClicks || 0"
        self.js("window.testClicks ?? document.addEventListener('click', () => { window.testClicks++; }, true), "
                "window.testClicks ??= 0")
        before = self.js(seen)
        for _ in range(2):
            self.call("input.performActions", context=self.context, actions=[{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [{"type": "pointerMove", "x": 0, "y": 0, "origin": {"type": "element", "element": self.element(css)}},
                            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}])
            self.call("input.releaseActions", context=self.context)
            if wait_for(lambda: self.js(seen) > before, 5):
                return
        raise BiDiError(f"a click on {css} did not reach the page")

    def set_files(self, css: str, paths: list) -> None:
        """What choosing files in a file picker does (input and change events)."""
        self.call("input.setFiles", context=self.context, element=self.element(css), files=[str(p) for p in paths])

    def screenshot(self, path) -> None:
        data = self.call("browsingContext.captureScreenshot", context=self.context)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.ws is not None:
                try:
                    self.call("browser.close", timeout=10)
                except Exception:
                    pass
            self.closing.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


def firefox(env: dict) -> BiDi:
    """Headless Firefox; skips where it is not installed or cannot start."""
    if not FIREFOX:
        pytest.skip(f"Firefox is not installed ({APT})")
    from websockets.exceptions import WebSocketException
    try:
        return BiDi(env)
    except (BiDiError, OSError, WebSocketException) as err:
        pytest.skip(f"headless Firefox cannot start here: {err}")


# The page's worklet in an OfflineAudioContext at `rate`: float32 samples (base64) in, what the
# worklet posts (16 kHz int16, base64) out, as fast as Firefox renders.
RENDER = """async (samples, rate) => {
  const x = new Float32Array(Uint8Array.from(atob(samples), (c) => c.charCodeAt(0)).buffer);
  const ctx = new OfflineAudioContext(1, x.length, rate);
  await ctx.audioWorklet.addModule("pcm-worklet.js");
  const buffer = ctx.createBuffer(1, x.length, rate);
  buffer.copyToChannel(x, 0);
  const source = new AudioBufferSourceNode(ctx, {buffer});
  const node = new AudioWorkletNode(ctx, "pcm16",
    {numberOfInputs: 1, numberOfOutputs: 0, processorOptions: {targetRate: 16000, chunk: 1600}});
  const chunks = [];
  const flushed = new Promise((resolve) => {
    node.port.onmessage = (e) => (e.data === "flushed" ? resolve() : chunks.push(new Uint8Array(e.data)));
  });
  source.connect(node);
  source.start();
  await ctx.startRendering();
  node.port.postMessage("flush");
  await flushed;
  let bytes = "";
  for (const c of chunks) for (let i = 0; i < c.length; i += 8192) bytes += String.fromCharCode(...c.subarray(i, i + 8192));
  return btoa(bytes);
}"""


def test_the_page_in_firefox_transcribes_its_microphone_and_a_chosen_file(tiny_live_model, cathy_clips, tmp_path):
    played, wav, (text_a, text_b), expected = two_utterance_recording(tiny_live_model, cathy_clips, tmp_path)
    upload, upload_text = cathy_clips[1]

    mic = start_virtual_mic(APT, rate=16000)
    browser = server = None
    try:
        browser = firefox(mic.env)
        server = ServerThread(Recognizer(tiny_live_model, endpoint=EndpointConfig()))
        browser.navigate(f"http://127.0.0.1:{server.port}/")
        state = lambda: browser.js("document.body.dataset.state")  # noqa: E731
        status = lambda: browser.js("document.getElementById('status').textContent")  # noqa: E731
        problem = lambda: browser.js("document.getElementById('problem-text').textContent")  # noqa: E731

        browser.click("#start")
        assert wait_for(lambda: state() == "listening", 30), (state(), status(), problem(), browser.console)
        assert "(16000 Hz," in status()  # the device's rate: the worklet passes the samples on unchanged
        partials = set()
        player = threading.Thread(target=mic.play, args=(wav,))  # returns once played, in real time
        player.start()
        while player.is_alive():
            partials.add(browser.js("document.getElementById('partial').textContent"))
            time.sleep(0.05)
        player.join()
        time.sleep(0.5)  # what is still on its way through PulseAudio and Firefox
        browser.click("#start")  # Stop: the rest is flushed, eof, the final result
        assert wait_for(lambda: state() == "idle", 60), (state(), problem(), browser.console)
        lines = browser.js("[...document.querySelectorAll('#transcript li .text')].map((e) => e.textContent)")
        assert normalize(" ".join(lines)) == normalize(expected.text)
        assert lines == [punctuated(text_a), punctuated(text_b)]  # the endpoint fell in the pause; punctuated
        assert any(p and text_a.startswith(p) and p != text_a for p in partials)  # partials redrawn as it spoke
        times = browser.js("[...document.querySelectorAll('#transcript li .time')].map((e) => e.textContent)")
        assert all(re.fullmatch(r"0:0\d\.\d–0:\d\d\.\d", t) for t in times), times
        words = browser.js("[...document.querySelectorAll('#transcript .word')]"
                           ".map((w) => [w.textContent, w.title, w.style.getPropertyValue('--conf')])")
        assert [w for w, _, _ in words] == " ".join(lines).split()
        confs = [float(title.split()[-1]) for _, title, _ in words]  # "confidence 0.93", shading by it
        assert all(0 < c <= 1 for c in confs) and all(0 < float(shade) <= 1 for _, _, shade in words)

        # the worklet's resampling, for microphones at 44.1 and 48 kHz, in Firefox's AudioWorklet
        for rate in (44100, 48000):
            upsampled = soxr.resample(played, 16000, rate).astype(np.float32)
            out = browser.call_js(RENDER, base64.b64encode(upsampled.tobytes()).decode(), rate)
            pcm = np.frombuffer(base64.b64decode(out), np.int16).astype(np.float32) / 32768
            assert abs(len(pcm) - len(played)) <= 16, (rate, len(pcm), len(played))
            n = min(len(pcm), len(played))  # the filter is centred: no delay to find
            assert np.dot(pcm[:n], played[:n]) / np.linalg.norm(pcm[:n]) / np.linalg.norm(played[:n]) > 0.999, rate
            sf.write(tmp_path / f"worklet-{rate}.wav", pcm, 16000, subtype="PCM_16")
            assert transcribe(tiny_live_model, tmp_path / f"worklet-{rate}.wav", chunk_ms=100).text == expected.text

        browser.set_files("#file", [upload])  # the file picker, through the HTTP API
        assert wait_for(lambda: browser.js("document.querySelectorAll('#transcript li').length") == 4, 60), problem()
        file_lines = browser.js("[...document.querySelectorAll('#transcript li')].slice(2).map((e) => e.textContent)")
        assert upload.name in file_lines[0]
        file_result = transcribe(tiny_live_model, upload)  # what `asr transcribe` gives: punctuated
        assert browser.js("document.querySelectorAll('#transcript li .text')[3].textContent") == file_result.text
        assert normalize(file_result.text) == upload_text
        assert browser.js("document.getElementById('problem').hidden")  # no error shown
        got = browser.call_js("""async () => Promise.all([...document.querySelectorAll('#transcript .downloads a')].map(
            (a) => fetch(a.href).then((r) => r.text()).then((text) => [a.dataset.format, a.download, text])))""")
        check_downloads(got, upload, file_result)
        notes = tmp_path / "notes.txt"  # not audio: one plain message naming it once, no Retry
        notes.write_text("these are not the samples you are looking for\n")
        browser.set_files("#file", [notes])
        assert wait_for(lambda: not browser.js("document.getElementById('problem').hidden"), 60), problem()
        assert problem().startswith("Cannot transcribe notes.txt: ") and problem().count("notes.txt") == 1, problem()
        assert browser.js("getComputedStyle(document.getElementById('retry')).display") == "none"
        shot = tmp_path / "page.png"
        browser.screenshot(shot)
        if os.environ.get("ASR_PAGE_SCREENSHOT_FIREFOX"):
            shutil.copy(shot, os.environ["ASR_PAGE_SCREENSHOT_FIREFOX"])

        # audio the page cannot use is said plainly (not "Connecting…" for ever)
        browser.js("(window.RealNode = AudioWorkletNode, window.AudioWorkletNode = function () { throw new Error('no worklet'); }, 0)")
        browser.click("#start")
        assert wait_for(lambda: state() == "idle" and "Cannot use the microphone's audio: no worklet" in problem(), 30), \
            (state(), status(), problem())
        browser.js("(window.AudioWorkletNode = window.RealNode, 0)")

        # a connection that fails is shown plainly and can be retried
        browser.click("#start")
        assert wait_for(lambda: state() == "listening", 30), (state(), status(), problem(), browser.console)
        server.stop()  # the server goes away mid-stream
        server = None
        assert wait_for(lambda: state() == "closed", 30), state()
        assert "connection to the server closed (code 1001)" in problem(), problem()
        assert browser.js("!document.getElementById('problem').hidden && "
                          "getComputedStyle(document.getElementById('retry')).display !== 'none'")
        browser.click("#retry")
        assert wait_for(lambda: "Cannot reach the server" in problem(), 30), problem()
        assert not browser.js("document.getElementById('problem').hidden") and state() == "idle"
    finally:
        if browser is not None:
            browser.close()
        if server is not None:
            server.stop()
        mic.stop()
