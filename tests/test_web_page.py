"""The page of `asr serve` in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) with a fake microphone fed from a real recording. The
page streams it over the Vosk WebSocket protocol through its AudioWorklet (resampled to
16 kHz in the page) and ends up showing what `asr transcribe --stream` gives for the
recording, each utterance punctuated; a file chosen in its picker is transcribed through the HTTP
API and its transcript offered as TXT/SRT/VTT/JSON downloads equal to `asr transcribe -f FORMAT`'s;
a file that is not audio gets one plain message, without Retry.

Set ASR_PAGE_SCREENSHOT=PATH to keep the screenshot of the page in use (docs/live-page.png)."""
import asyncio
import os
import shutil
import threading
import time

import json

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.endpoint import EndpointConfig
from asr.server import ServerConfig, StreamingServer
from asr.streaming import Recognizer
from asr.punctuation import bundled
from asr.text import normalize
from asr.transcribe import transcribe
from asr.writers import WRITERS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class ServerThread:
    """A StreamingServer in a thread of its own (selenium's calls block)."""

    def __init__(self, recognizer, **config):
        self.loop = asyncio.new_event_loop()
        self.server = StreamingServer(recognizer, ServerConfig(port=0, **config))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(60)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def chromium(fake_audio):
    """Headless Chromium whose microphone plays fake_audio once; skips where it cannot start."""
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,640",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_audio}%noloop"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console: CSP violations show there
    try:
        return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as err:
        pytest.skip(f"headless Chromium cannot start here: {str(err).strip().splitlines()[0]}")


def two_utterance_recording(model, cathy_clips, tmp_path):
    """What the fake microphone plays: two real sentences with a 2 s pause (longer than the
    1.2 s that ends an utterance). Returns the samples, the WAV, the two texts and what
    `asr transcribe --stream` gives for it."""
    (a, text_a), (b, text_b) = cathy_clips[4], cathy_clips[7]
    pause = np.zeros(32000, np.float32)
    played = np.concatenate([pause[:12800], load_audio(a), pause, load_audio(b), pause[:24000]])
    wav = tmp_path / "mic.wav"
    sf.write(wav, played, 16000, subtype="PCM_16")
    expected = transcribe(model, wav, chunk_ms=100)
    assert normalize(expected.text) == f"{text_a} {text_b}"
    return played, wav, (text_a, text_b), expected


def wait_for(condition, timeout) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def punctuated(text: str) -> str:
    """An utterance as the page shows it: the server punctuates each final result."""
    return bundled().text(text)


DOWNLOADS_JS = """
const done = arguments[arguments.length - 1];
Promise.all([...document.querySelectorAll('#transcript .downloads a')].map(
  (a) => fetch(a.href).then((r) => r.text()).then((text) => [a.dataset.format, a.download, text])))
  .then(done, (err) => done(String(err)));"""


def check_downloads(got, upload, result):
    """The page's downloads ([format, file name, text]) against what `asr transcribe -f FORMAT` writes."""
    assert [(fmt, name) for fmt, name, _ in got] == [(f, f"{upload.stem}.{f}") for f in ("txt", "srt", "vtt", "json")]
    for fmt, _, text in got:
        if fmt == "json":
            assert json.loads(text) == json.loads(WRITERS["json"](result))
        else:
            assert text == WRITERS[fmt](result), fmt


def test_the_page_transcribes_its_microphone_and_a_chosen_file(tiny_live_model, cathy_clips, tmp_path):
    from selenium.webdriver.common.by import By
    played, wav, (text_a, text_b), expected = two_utterance_recording(tiny_live_model, cathy_clips, tmp_path)
    upload, upload_text = cathy_clips[1]

    driver = chromium(wav)
    server = ServerThread(Recognizer(tiny_live_model, endpoint=EndpointConfig()))
    try:
        driver.get(f"http://127.0.0.1:{server.port}/")
        state = lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # noqa: E731
        assert wait_for(lambda: driver.find_element(By.ID, "model").text, 10)
        assert driver.find_element(By.ID, "model").text == "Files are transcribed with the model “tiny_live”."
        driver.find_element(By.ID, "start").click()
        assert wait_for(lambda: state() == "listening", 30), driver.find_element(By.ID, "problem-text").text
        partials = set()
        end = time.monotonic() + len(played) / 16000 + 1.0  # the recording plays in real time
        while time.monotonic() < end:
            partials.add(driver.find_element(By.ID, "partial").text)
            time.sleep(0.05)
        driver.find_element(By.ID, "start").click()  # Stop: the rest is flushed, eof, the final result
        assert wait_for(lambda: state() == "idle", 60), (state(), driver.find_element(By.ID, "problem-text").text)
        lines = [li.find_element(By.CLASS_NAME, "text").text for li in driver.find_elements(By.CSS_SELECTOR, "#transcript li")]
        assert normalize(" ".join(lines)) == normalize(expected.text)
        assert lines == [punctuated(text_a), punctuated(text_b)]  # the endpoint fell in the pause; each line punctuated
        assert any(p and text_a.startswith(p) and p != text_a for p in partials)  # partials redrawn as it spoke
        times = [li.find_element(By.CLASS_NAME, "time").text for li in driver.find_elements(By.CSS_SELECTOR, "#transcript li")]
        assert all(t.startswith("0:0") and "–" in t for t in times), times
        words = driver.find_elements(By.CSS_SELECTOR, "#transcript .word")
        assert [w.text for w in words] == " ".join(lines).split()
        confs = [float(w.get_attribute("title").split()[-1]) for w in words]  # "confidence 0.93", shading by it
        assert all(0 < c <= 1 for c in confs) and all("--conf" in w.get_attribute("style") for w in words)

        driver.find_element(By.ID, "file").send_keys(str(upload))  # the file picker, through the HTTP API
        assert wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#transcript li")) == 4, 60), \
            driver.find_element(By.ID, "problem-text").text
        file_lines = driver.find_elements(By.CSS_SELECTOR, "#transcript li")[2:]
        assert upload.name in file_lines[0].text
        file_result = transcribe(tiny_live_model, upload)  # what `asr transcribe` gives: punctuated
        assert file_lines[1].find_element(By.CLASS_NAME, "text").text == file_result.text
        assert normalize(file_result.text) == upload_text
        assert driver.find_element(By.ID, "problem").get_attribute("hidden") is not None  # no error shown
        check_downloads(driver.execute_async_script(DOWNLOADS_JS), upload, file_result)
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        if os.environ.get("ASR_PAGE_SCREENSHOT"):
            shutil.copy(shot, os.environ["ASR_PAGE_SCREENSHOT"])

        # a file that is not audio: one plain message naming it once, and no Retry (it would fail again)
        notes = tmp_path / "notes.txt"
        notes.write_text("these are not the samples you are looking for\n")
        driver.find_element(By.ID, "file").send_keys(str(notes))
        assert wait_for(lambda: driver.find_element(By.ID, "problem").is_displayed(), 60)
        problem = driver.find_element(By.ID, "problem-text").text
        assert problem.startswith("Cannot transcribe notes.txt: ") and problem.count("notes.txt") == 1, problem
        assert not driver.find_element(By.ID, "retry").is_displayed()

        # a connection that fails is shown plainly and can be retried
        driver.find_element(By.ID, "start").click()
        assert wait_for(lambda: state() == "listening", 30), driver.find_element(By.ID, "problem-text").text
        server.stop()  # the server goes away mid-stream
        server = None
        assert wait_for(lambda: state() == "closed", 30), state()
        problem = driver.find_element(By.ID, "problem-text").text
        assert "connection to the server closed (code 1001)" in problem, problem
        driver.find_element(By.ID, "retry").click()
        assert wait_for(lambda: "Cannot reach the server" in driver.find_element(By.ID, "problem-text").text, 30), \
            driver.find_element(By.ID, "problem-text").text
        assert driver.find_element(By.ID, "problem").is_displayed() and state() == "idle"
    finally:
        driver.quit()
        if server is not None:
            server.stop()


def test_the_page_asks_for_the_api_key_and_then_works_under_its_csp(tiny_live_model, cathy_clips, tmp_path):
    """`asr serve --api-key`: the page (which needs no key itself) asks for it, says so when it
    is wrong, and with it transcribes a chosen file and streams its microphone; the page's
    Content-Security-Policy blocks nothing it uses."""
    from selenium.webdriver.common.by import By
    upload, upload_text = cathy_clips[1]
    driver = chromium(upload)
    server = ServerThread(Recognizer(tiny_live_model, endpoint=EndpointConfig()), api_key="sk-page-test")
    try:
        driver.get(f"http://127.0.0.1:{server.port}/")
        find = lambda id_: driver.find_element(By.ID, id_)  # noqa: E731
        assert wait_for(lambda: find("key-form").is_displayed(), 30)
        assert find("key-why").text == "This server needs an API key:"
        find("key").send_keys("sk-wrong")
        find("key-form").submit()
        assert wait_for(lambda: find("key-why").text == "The server refused the API key:", 30)
        find("key").clear()
        find("key").send_keys("sk-page-test")
        find("key-form").submit()
        assert wait_for(lambda: not find("key-form").is_displayed() and find("model").text, 30)
        find("file").send_keys(str(upload))
        assert wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#transcript li")) == 2, 60), \
            find("problem-text").text
        assert normalize(driver.find_elements(By.CSS_SELECTOR, "#transcript li .text")[1].text) == upload_text
        find("start").click()  # the WebSocket, with the key as ?api_key=
        state = lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # noqa: E731
        assert wait_for(lambda: state() == "listening", 30), find("problem-text").text
        time.sleep(1.0)
        find("start").click()
        assert wait_for(lambda: state() == "idle", 30), (state(), find("problem-text").text)
        assert find("problem").get_attribute("hidden") is not None
        console = [e["message"] for e in driver.get_log("browser")]
        assert not [m for m in console if "Content Security Policy" in m or "Refused to" in m], console
    finally:
        driver.quit()
        server.stop()
