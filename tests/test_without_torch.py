"""The runtime install: with torch and torchaudio made unimportable (as where only `pip install .`
ran), the commands transcribe, stream, evaluate and serve, and give what the torch reference
gives: the same text from the torch model's log-probs through the same decoder."""
import asyncio
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from asr.beam import decoder_for
from asr.checkpoint import load_model as load_torch_model
from asr.decoding import greedy_text
from asr.features import log_mel as torch_log_mel
from asr.audio import load_audio
from asr.text import normalize

from conftest import REPO

SAMPLE = REPO / "asr" / "samples" / "cathy_a0046.flac"

# Loaded first by every Python started with this folder on PYTHONPATH: torch and torchaudio cannot
# be imported, and every attempt is written down (a module that tries and falls back still counts).
SITECUSTOMIZE = """
import importlib.abc, os, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio"):
            with open(os.environ["ASR_TEST_TORCH_ATTEMPTS"], "a") as f:
                f.write(name + "\\n")
            raise ImportError(f"No module named {name!r} (made unimportable by the test)")
sys.meta_path.insert(0, NoTorch())
"""


@pytest.fixture
def no_torch(tmp_path):
    """(environment without torch, the file that lists import attempts)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    attempts = tmp_path / "torch-attempts.txt"
    attempts.write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), ASR_TEST_TORCH_ATTEMPTS=str(attempts))
    return env, attempts


def run(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def torch_log_probs(name: str) -> np.ndarray:
    """The torch model's whole-utterance log-probs (U, V) of the sample: the reference."""
    model = load_torch_model(name)
    if model.cfg.whisper:  # the offline model hears through Whisper's encoder: Whisper's log-mel
        from asr import whisper
        feats = torch.from_numpy(whisper.log_mel(load_audio(SAMPLE), model.whisper_fbank.numpy()))
    else:
        feats = torch_log_mel(load_audio(SAMPLE))
    with torch.inference_mode():
        lp, n = model(feats[None], torch.tensor([len(feats)]))
    return lp[0, : int(n[0])].numpy()


def test_the_cli_transcribes_the_sample_without_torch_as_the_torch_model_does(no_torch):
    env, attempts = no_torch
    check = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert check.returncode == 1 and "made unimportable" in check.stderr
    attempts.write_text("")

    # files: the offline model with its LM (beam search), as `asr transcribe` does by default
    offline = run(env, "transcribe", SAMPLE, "--no-progress", "--no-punctuation")
    assert offline.returncode == 0, offline.stderr
    model = load_torch_model("offline")
    decoder = decoder_for(model)()  # what the commands choose: its own LM with the card's weights
    decoder.update(torch_log_probs("offline"))
    expected = " ".join(w.word for w in decoder.finalize())
    assert offline.stdout.strip() == expected and expected

    # --stream: the streaming model, greedy (whose text does not depend on where utterances end)
    stream = run(env, "transcribe", SAMPLE, "--stream", "--no-lm", "--no-progress")
    assert stream.returncode == 0, stream.stderr
    assert normalize(stream.stdout) == greedy_text(torch_log_probs("streaming")) != ""
    assert stream.stdout[0].isupper() and stream.stdout.strip()[-1] in ".?"  # the punctuation model: no torch

    # evaluate (manifests, WER) and the cards need no torch either
    manifest = REPO / "tests" / "data" / "cathy" / "manifest.tsv"
    scored = run(env, "evaluate", manifest, "--limit", "2", "--no-lm", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["utterances"] == 2
    assert run(env, "models").returncode == 0
    assert attempts.read_text() == ""  # nothing even tried to import torch

    # a torch model file needs torch: one line saying to convert it
    pt = run(env, "transcribe", SAMPLE, "--model", REPO / "tests" / "data" / "tiny_uni.pt")
    assert pt.returncode == 2 and pt.stderr.count("\n") == 1 and "asr export" in pt.stderr, pt.stderr


def test_serve_answers_a_vosk_client_without_torch(no_torch):
    from asr import runtime
    from asr.transcribe import transcribe
    from test_server import TIMEOUT, file_pcm, served_url, text_of, vosk_client

    env, attempts = no_torch
    proc = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--port", "0", "--no-lm"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        url = served_url(proc)
        assert url, "the server did not start"
        pcm, rate = file_pcm(SAMPLE)
        replies = asyncio.run(asyncio.wait_for(vosk_client(url, pcm, rate, 8000), TIMEOUT))
        expected = transcribe(runtime.load_model("streaming"), SAMPLE, "greedy", punctuation=False).text
        assert text_of(replies) == expected != ""
        assert expected == greedy_text(torch_log_probs("streaming"))  # and that is the torch model's text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert attempts.read_text() == ""
