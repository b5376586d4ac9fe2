#!/usr/bin/env python3
"""Build the natural-voice synthetic English corpus (Kokoro-82M, RHVoice, SVOX Pico, Piper).

    python recipes/synthetic/natural.py OUT_DIR (--cathy-dir CATHY_DIR | --text-from SYNTH_DIR)
        [--hours 3] [--dev-minutes 15] [--seed 20240601] [--jobs 2]
        [--engines kokoro,rhvoice,pico,piper] [--tts-python /work/tts-venv/bin/python]
        [--kokoro-voices /work/tts-data/kokoro-js/voices] [--kokoro-blends 200] [--dev-blends 8]
        [--stage all|text|plan|synth|manifest|check]

The second generation of recipes/synthetic: the same text pool, plan conventions, audio
processing and outputs as prepare.py (whose stages it reuses), with neural and statistical
voices that sound like people instead of formant and diphone voices. Install the engines with
`bash recipes/synthetic/install_natural.sh` (see README.md); an engine that is not installed
is skipped with a line saying why.

Stages (each leaves OUT_DIR/.done.<stage> and is skipped when re-run with the same
parameters; `synth` skips every clip already on disk, so a killed run resumes):

  text      the sentence pool: prepare.py's text stage (needs --cathy-dir), or, with
            --text-from, the pool of an existing prepare.py OUT_DIR copied (no LM sampling);
            that corpus's train texts are then kept out of this dev set and its dev texts out
            of this train set, so the two corpora can be trained on together.
  plan      voices (Kokoro voices and random blends of 2-3 of them, RHVoice, Pico, Piper),
            each utterance's voice, rate/pitch, pad, level and 8 kHz round trip; dev uses only
            held-out voices, and dev blends mix held-out Kokoro voices only.
  synth     prepare.py's synth stage with these engines: Kokoro and Piper in worker processes
            of the TTS venv (--tts-python), RHVoice and Pico as programs; 16 kHz mono FLAC.
  manifest  prepare.py's manifest stage (train.tsv, dev.tsv, *_details.tsv, stats.json), plus
            engine CPU time per second of audio (stats.json: cpu_rtf_per_engine).
  check     optional: pocketsphinx WER per engine and voice (prepare.py's check stage).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_prepare():
    """prepare.py as a module under a unique name (other recipes have a prepare.py too); it is
    registered in sys.modules so the worker pool can pickle its functions."""
    name = "synthetic_prepare"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "prepare.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


prep = _load_prepare()
log, read_tsv, write_tsv, rng_for = prep.log, prep.read_tsv, prep.write_tsv, prep.rng_for


def die(msg: str) -> None:
    sys.exit(f"natural.py: error: {msg}")


# ---------------------------------------------------------------------------------------------
# Voices
# ---------------------------------------------------------------------------------------------
ENGINES = ("kokoro", "rhvoice", "pico", "piper")
INSTALL_HINT = "install with: bash recipes/synthetic/install_natural.sh (see recipes/synthetic/README.md)"
# Kokoro-82M v1.0's English voices (kokoro-js 1.2.1 voices/*.bin): a = US, b = British accent,
# f/m = female/male. Held out for dev (never in train, alone or in any blend): one per
# accent and gender.
KOKORO_VOICES = ["af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole",
                 "af_nova", "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir",
                 "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa", "bf_alice", "bf_emma",
                 "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis"]
KOKORO_DEV = ("af_sarah", "am_eric", "bf_isabella", "bm_lewis")
BLEND_MIN_WEIGHT = 0.15  # no component of a blend weighs less (it would hardly be heard)
# RHVoice's English voices with a free licence (LGPL-2.1+); evgeniy-eng and lyubov are
# CC-BY-NC-ND and are not used. slt, bdl and clb are the CMU ARCTIC speakers, alan Scottish.
RHVOICE_VOICES = {"slt": ("F", "train"), "bdl": ("M", "train"), "alan": ("M", "train"), "clb": ("F", "dev")}
PICO_VOICES = {"en-US": ("F", "train"), "en-GB": ("F", "dev")}
PIPER_VOICES = {"joe": ("M", "train")}  # en_US-joe-medium, one speaker: train only
# Share of train utterances per engine (voices inside an engine rotate). Kokoro sounds most
# like people and has by far the most speakers, but costs ~1 CPU-second per audio second.
ENGINE_SHARE = {"kokoro": 0.55, "rhvoice": 0.20, "piper": 0.15, "pico": 0.10}
RHVOICE_DIRS = ("/usr/share/RHVoice/voices", "/usr/local/share/RHVoice/voices")
PICO_LANG_DIR = "/usr/share/pico/lang"


def kokoro_gender(name: str) -> str:
    return name[1].upper()


def kokoro_lang(name: str) -> str:
    return "en-gb" if name[0] == "b" else "en-us"


def make_blends(pool: list[str], n: int, rng: random.Random, max_tries: int = 10000) -> list[dict[str, float]]:
    """n distinct blends of 2 or 3 voices of `pool`: {voice: weight}, weights >= BLEND_MIN_WEIGHT,
    written with 3 decimals and summing to exactly 1. Seven in ten mix one gender."""
    out, seen = [], set()
    for _ in range(max_tries):
        if len(out) >= n:
            break
        k = rng.choice([2, 2, 3])
        cands = pool
        if rng.random() < 0.7:
            g = rng.choice(sorted({kokoro_gender(v) for v in pool}))
            same = [v for v in pool if kokoro_gender(v) == g]
            if len(same) >= k:
                cands = same
        if len(cands) < k:
            continue
        names = sorted(rng.sample(cands, k))
        raw = [rng.gammavariate(1.0, 1.0) for _ in names]  # a flat Dirichlet draw
        w = [BLEND_MIN_WEIGHT + (1 - BLEND_MIN_WEIGHT * k) * r / sum(raw) for r in raw]
        w = [round(x, 3) for x in w[:-1]]
        w.append(round(1.0 - sum(w), 3))
        mix = dict(zip(names, w))
        key = tuple(sorted(mix.items()))
        if key not in seen:
            seen.add(key)
            out.append(mix)
    return out


def mix_name(mix: dict[str, float]) -> str:
    return "+".join(f"{v}*{w:g}" for v, w in sorted(mix.items()))


def parse_mix(name: str) -> dict[str, float]:
    return {v: float(w) for v, w in (p.split("*") for p in name.split("+"))}


def build_voices(engines, seed: int, n_blends: int, n_dev_blends: int) -> list[dict]:
    """Every voice (speaker) of the corpus for the given engines, with its split. Kokoro blends
    are drawn from --seed; train blends mix train voices only, dev blends dev voices only."""
    voices = []
    if "kokoro" in engines:
        rng = rng_for(seed, "kokoro-blends")
        for split in ("train", "dev"):
            base = [v for v in KOKORO_VOICES if (v in KOKORO_DEV) == (split == "dev")]
            for v in base:
                voices.append({"voice": f"kokoro_{v}", "engine": "kokoro", "name": v,
                               "gender": kokoro_gender(v), "split": split, "lang": kokoro_lang(v)})
            for i, mix in enumerate(make_blends(base, n_blends if split == "train" else n_dev_blends, rng)):
                top = max(mix, key=lambda v: (mix[v], v))
                female = sum(w for v, w in mix.items() if kokoro_gender(v) == "F")
                voices.append({"voice": f"kokoro_blend_{split}_{i:03d}", "engine": "kokoro", "name": mix_name(mix),
                               "gender": "F" if female >= 0.5 else "M", "split": split, "lang": kokoro_lang(top)})
    for engine, table in (("rhvoice", RHVOICE_VOICES), ("pico", PICO_VOICES), ("piper", PIPER_VOICES)):
        if engine in engines:
            for name, (gender, split) in table.items():
                voices.append({"voice": f"{engine}_{name}", "engine": engine, "name": name, "gender": gender,
                               "split": split, "lang": ""})
    ids = [v["voice"] for v in voices]
    assert len(ids) == len(set(ids)), "duplicate voice ids"
    return voices


def jitter(voice: dict, rng: random.Random) -> dict:
    """Per-utterance settings (not a new voice). Kokoro's carry the voice's mix and language,
    so that a clip's file name (hashed from the settings) changes whenever its voice does."""
    e = voice["engine"]
    if e == "kokoro":
        return {"mix": voice["name"] if "*" in voice["name"] else f"{voice['name']}*1",
                "lang": voice["lang"], "speed": round(rng.uniform(0.8, 1.2), 3)}
    if e == "rhvoice":  # percent of the voice's own rate and pitch
        return {"rate": rng.randint(75, 130), "pitch": rng.randint(85, 120)}
    if e == "pico":  # <speed level> and <pitch level> markup, percent
        return {"speed": rng.randint(75, 125), "pitch": rng.randint(85, 120)}
    if e == "piper":
        return {"length_scale": round(rng.uniform(0.8, 1.25), 3), "noise_scale": round(rng.uniform(0.5, 0.8), 3),
                "noise_w": round(rng.uniform(0.6, 1.0), 3)}
    raise ValueError(e)


def settings_doc(v: dict) -> str:
    e = v["engine"]
    if e == "kokoro":
        return f"kokoro style {v['name'] if '*' in v['name'] else v['name'] + '*1'} lang {v['lang']} speed 0.8..1.2"
    if e == "rhvoice":
        return f"RHVoice-test -p {v['name']} -r 75..130 -t 85..120"
    if e == "pico":
        return f"pico2wave -l {v['name']} <speed level=75..125><pitch level=85..120>"
    return "piper en_US-joe-medium length_scale 0.8..1.25 noise_scale 0.5..0.8 noise_w 0.6..1.0"


def parse_settings(s: str) -> dict:
    return dict(kv.split("=", 1) for kv in s.split(","))


# ---------------------------------------------------------------------------------------------
# Which engines are here
# ---------------------------------------------------------------------------------------------
def probe_tts_venv(tts_python: str, kokoro_voices: str, only: list[str], timeout: float = 3600) -> dict:
    """{"kokoro": None | why not, "piper": None | why not} from natural_tts.py --probe."""
    if not (os.path.isfile(tts_python) and os.access(tts_python, os.X_OK)):
        why = f"no Python at {tts_python} (--tts-python: the venv with kokoro-onnx and piper-tts)"
        return {"kokoro": why, "piper": why}
    cmd = [tts_python, os.path.join(HERE, "natural_tts.py"), "--probe", "--kokoro-voices", kokoro_voices,
           "--only", ",".join(only)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_tts_env())
    except subprocess.TimeoutExpired:
        return {"kokoro": "the probe timed out", "piper": "the probe timed out"}
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        why = f"{' '.join(cmd[:3])} failed (rc {res.returncode}): {res.stderr.strip()[-300:]}"
        return {"kokoro": why, "piper": why}


def engine_problems(wanted, tts_python: str, kokoro_voices: str) -> dict:
    """engine -> None if it can run here, else the reason it cannot."""
    out = {}
    if "rhvoice" in wanted:
        vdir = next((d for d in RHVOICE_DIRS if os.path.isdir(d)), None)
        missing = [v for v in RHVOICE_VOICES if not vdir or not os.path.isdir(os.path.join(vdir, v))]
        if not shutil.which("RHVoice-test"):
            out["rhvoice"] = "RHVoice-test not found (Debian non-free: rhvoice, rhvoice-english)"
        elif missing:
            out["rhvoice"] = f"RHVoice voices {missing} not found in {RHVOICE_DIRS} (Debian non-free: rhvoice-english)"
        else:
            out["rhvoice"] = None
    if "pico" in wanted:
        if not shutil.which("pico2wave"):
            out["pico"] = "pico2wave not found (Debian non-free: libttspico-utils)"
        elif not all(os.path.isfile(os.path.join(PICO_LANG_DIR, f"{v}_ta.bin")) for v in PICO_VOICES):
            out["pico"] = f"Pico en-US/en-GB language files missing in {PICO_LANG_DIR}"
        else:
            out["pico"] = None
    if "kokoro" in wanted or "piper" in wanted:
        probe = probe_tts_venv(tts_python, kokoro_voices, [e for e in ("kokoro", "piper") if e in wanted])
        if "kokoro" in wanted:
            missing = [v for v in KOKORO_VOICES if not os.path.isfile(os.path.join(kokoro_voices, f"{v}.bin"))]
            out["kokoro"] = (f"Kokoro voice files {missing[:3]}{'...' if len(missing) > 3 else ''} not in "
                             f"{kokoro_voices} (--kokoro-voices: voices/ of the npm package kokoro-js@1.2.1)"
                             if missing else probe.get("kokoro", "no answer from the probe"))
        if "piper" in wanted:
            out["piper"] = probe.get("piper", "no answer from the probe")
    return out


def choose_engines(wanted, problems: dict, out: str) -> list[str]:
    """The engines to use: `wanted` less those with a problem, each skipped with a line. An
    engine that an existing plan uses is never dropped silently (that would delete its clips)."""
    old = None
    marker = os.path.join(out, ".done.plan")
    if os.path.isfile(marker):
        with open(marker) as f:
            old = json.load(f).get("engines")
    use = []
    for e in wanted:
        if problems.get(e) is None:
            use.append(e)
            continue
        if old and e in old:
            die(f"engine {e} is in the existing plan of {out} but cannot run now: {problems[e]}. "
                f"Fix it ({INSTALL_HINT}), or drop it with --engines {','.join(x for x in wanted if x != e)} "
                "(the new plan's synth stage then deletes that engine's clips)")
        log(f"natural: skipping engine {e}: {problems[e]}; {INSTALL_HINT}")
    if not use:
        die(f"no engine of {list(wanted)} can run here; {INSTALL_HINT}")
    return use


# ---------------------------------------------------------------------------------------------
# Stage 1: text
# ---------------------------------------------------------------------------------------------
def stage_text(args, out: str) -> None:
    if not args.text_from:
        if not args.cathy_dir:
            die("give --cathy-dir (to build the text pool) or --text-from SYNTH_DIR (to reuse one)")
        prep.stage_text(args, out)
        return
    src = os.path.abspath(args.text_from)
    pool = os.path.join(src, "text", "sentences.tsv")
    if not os.path.isfile(pool):
        die(f"{pool}: no such file (--text-from must be an OUT_DIR of recipes/synthetic/prepare.py "
            "whose text stage has run)")
    st = os.stat(pool)
    params = {"text_from": src, "size": st.st_size, "mtime": int(st.st_mtime)}
    if prep.stage_done(out, "text", params):
        log("text: done already")
        return
    prep.clear_done(out, ["plan", "synth", "manifest"])
    os.makedirs(os.path.join(out, "text"), exist_ok=True)
    for f in ("sentences.tsv", "stats.json"):
        if os.path.isfile(os.path.join(src, "text", f)):
            shutil.copyfile(os.path.join(src, "text", f), os.path.join(out, "text", f))
    log(f"text: {len(read_tsv(pool))} sentences from {pool}")
    prep.mark_done(out, "text", params)


def other_corpus_texts(src: str | None) -> tuple[set[str], set[str]]:
    """(texts to keep out of our dev, texts to keep out of our train): the train and dev texts
    of the --text-from corpus, as far as its manifests exist."""
    if not src:
        return set(), set()
    got = []
    for split in ("train", "dev"):
        p = os.path.join(src, f"{split}.tsv")
        got.append({r["text"] for r in read_tsv(p)} if os.path.isfile(p) else set())
    return got[0], got[1]


# ---------------------------------------------------------------------------------------------
# Stage 2: plan
# ---------------------------------------------------------------------------------------------
def plan_corpus(rows: list[dict], voices: list[dict], n_train: int, n_dev: int, rng: random.Random,
                not_in_dev: set[str] = frozenset(), not_in_train: set[str] = frozenset()) -> dict:
    """{"train": [...], "dev": [...]}: planned utterances. Texts come from the pool `rows` in
    prepare.py's source shares, dev texts distinct from train ones and from `not_in_dev`,
    train texts not in `not_in_train`; each split uses only its own voices."""
    pools = defaultdict(list)
    for r in rows:
        pools[r["source"]].append(r)
    for s in sorted(pools):
        rng.shuffle(pools[s])
    dev_share = {s: prep.SOURCE_SHARE[s] for s in prep.DEV_SOURCES}
    tot = sum(dev_share.values())
    plan = {}
    for split, n, shares, avoid in (("dev", n_dev, {s: v / tot for s, v in dev_share.items()}, not_in_dev),
                                    ("train", n_train, prep.SOURCE_SHARE, not_in_train)):
        split_voices = [v for v in voices if v["split"] == split]
        if not split_voices or n == 0:
            log(f"plan: {split}: no voice of the chosen engines is a {split} voice; {split} stays empty")
            plan[split] = []
            continue
        for s in pools:
            pools[s] = [r for r in pools[s] if r["text"] not in avoid]
        items = []
        for s, share in shares.items():
            want = round(n * share)
            if s == "digit_single":
                items += [dict(rng.choice(pools[s])) for _ in range(want)] if pools[s] else []
                continue
            take, pools[s] = pools[s][:want], pools[s][want:]
            items += [dict(r) for r in take]
            short = want - len(take)
            # a source that runs out is topped up from lm, then from the split's larger sources
            for t in ["lm"] + sorted((x for x in shares if x not in ("lm", s, "digit_single")),
                                     key=lambda x: (-shares[x], x)):
                if short <= 0:
                    break
                more, pools[t] = pools[t][:short], pools[t][short:]
                items += [dict(r) for r in more]
                short -= len(more)
        rng.shuffle(items)
        prep.assign_voices(items, split_voices, split, rng, ENGINE_SHARE, jitter, "natural")
        plan[split] = items
        if split == "dev":  # keep dev texts out of train
            dev_texts = {it["text"] for it in items}
            for s in pools:
                pools[s] = [r for r in pools[s] if r["text"] not in dev_texts or s == "digit_single"]
    train_texts = {it["text"] for it in plan["train"]}
    if any(it["text"] in train_texts for it in plan["dev"]):
        die("plan: a dev text is also in train (bug)")
    return plan


def stage_plan(args, out: str, engines: list[str]) -> None:
    params = {"seed": args.seed, "hours": args.hours, "dev_minutes": args.dev_minutes, "engines": engines,
              "kokoro_blends": args.kokoro_blends, "dev_blends": args.dev_blends,
              "text_from": os.path.abspath(args.text_from) if args.text_from else None}
    if prep.stage_done(out, "plan", params):
        log("plan: done already")
        return
    pool = os.path.join(out, "text", "sentences.tsv")
    if not os.path.isfile(pool):
        die(f"{pool}: no text pool; run the text stage first")
    prep.clear_done(out, ["synth", "manifest"])
    rows = read_tsv(pool)
    voices = build_voices(engines, args.seed, args.kokoro_blends, args.dev_blends)
    write_tsv(os.path.join(out, "voices.tsv"), [{**v, "settings": settings_doc(v)} for v in voices],
              ["voice", "engine", "name", "gender", "split", "lang", "settings"])
    n_dev = math.ceil(args.dev_minutes * 60 / prep.EST_SECONDS_PER_UTT * 1.6)
    n_train = math.ceil(args.hours * 3600 / prep.EST_SECONDS_PER_UTT * 1.4)
    not_in_dev, not_in_train = other_corpus_texts(params["text_from"])
    plan = plan_corpus(rows, voices, n_train, n_dev, rng_for(args.seed, "natural-plan"), not_in_dev, not_in_train)
    fields = ["id", "voice", "engine", "name", "settings", "telephone", "peak_db", "pad_start", "pad_end",
              "noise_db", "source", "tts", "text"]
    os.makedirs(os.path.join(out, "plan"), exist_ok=True)
    for split, items in plan.items():
        write_tsv(os.path.join(out, "plan", f"{split}.tsv"), items, fields)
        log(f"plan: {split}: {len(items)} utterances planned, {len({i['voice'] for i in items})} voices, "
            f"engines {dict(Counter(i['engine'] for i in items))}, sources {dict(Counter(i['source'] for i in items))}")
    prep.mark_done(out, "plan", params)


# ---------------------------------------------------------------------------------------------
# Stage 3: synth
# ---------------------------------------------------------------------------------------------
def _tts_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the TTS venv sees none of the project's packages
    return env


def spoken_text(item: dict) -> str:
    """The words to speak: the plan's text with a full stop, for sentence-final intonation."""
    t = item["tts"].strip()
    return t if t[-1:] in ".?!" else t + "."


def cli_command(item: dict, wav: str) -> tuple[list[str], str | None]:
    """(argv, stdin text) for the engines that are programs (RHVoice, Pico)."""
    s = parse_settings(item["settings"])
    text = spoken_text(item)
    if item["engine"] == "rhvoice":
        return ["RHVoice-test", "-p", item["name"], "-r", s["rate"], "-t", s["pitch"], "-o", wav], text
    if item["engine"] == "pico":
        marked = f'<speed level="{s["speed"]}"><pitch level="{s["pitch"]}">{text}</pitch></speed>'
        return ["pico2wave", "-l", item["name"], "-w", wav, marked], None
    raise ValueError(item["engine"])


_WORKERS: dict = {}  # per process: config -> Popen of natural_tts.py --serve


class NaturalEngines:
    """prepare.synth_one's engine: writes one clip's raw audio to `wav`. Picklable (only
    paths); each pool process starts its own natural_tts.py worker on first use. Appends the
    engine's CPU seconds per clip to OUT/logs/cpu_<pid>.tsv (wall time on a busy machine says
    little)."""

    def __init__(self, tts_python: str, kokoro_voices: str, log_dir: str):
        self.tts_python, self.kokoro_voices, self.log_dir = tts_python, kokoro_voices, log_dir

    def _worker(self):
        key = (self.tts_python, self.kokoro_voices)
        w = _WORKERS.get(key)
        if w is None or w.poll() is not None:
            w = subprocess.Popen([self.tts_python, os.path.join(HERE, "natural_tts.py"), "--serve",
                                  "--kokoro-voices", self.kokoro_voices],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_tts_env())
            _WORKERS[key] = w
        return w

    def _ask(self, req: dict) -> tuple[dict, float]:
        w = self._worker()
        w.stdin.write(json.dumps(req) + "\n")
        w.stdin.flush()
        ans = w.stdout.readline()
        if not ans:
            raise RuntimeError(f"natural_tts.py worker died (rc {w.poll()}); see the log above")
        ans = json.loads(ans)
        if not ans["ok"]:
            raise RuntimeError(f"{req['engine']}: {ans['error']}")
        return ans, float(ans.get("cpu_seconds", 0.0))

    def __call__(self, item: dict, wav: str, tmpdir: str) -> None:
        e, s = item["engine"], parse_settings(item["settings"])
        if e in ("kokoro", "piper"):
            npy = os.path.join(tmpdir, "out.npy")
            req = {"engine": e, "text": spoken_text(item), "out": npy}
            if e == "kokoro":
                req.update(mix=parse_mix(s["mix"]), lang=s["lang"], speed=float(s["speed"]))
            else:
                req.update(length_scale=float(s["length_scale"]), noise_scale=float(s["noise_scale"]),
                           noise_w=float(s["noise_w"]))
            ans, cpu = self._ask(req)
            sf.write(wav, np.load(npy), ans["sr"], subtype="FLOAT")
        else:
            cmd, stdin = cli_command(item, wav)
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=300)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            if res.returncode != 0 or not os.path.isfile(wav) or os.path.getsize(wav) <= 44:
                raise RuntimeError(f"{item['id']}: {' '.join(cmd[:4])}... failed (rc {res.returncode}): "
                                   f"{res.stderr.strip()[-300:]}")
        secs = sf.info(wav).duration
        with open(os.path.join(self.log_dir, f"cpu_{os.getpid()}.tsv"), "a", encoding="utf-8") as f:
            f.write(f"{item['id']}\t{e}\t{secs:.3f}\t{cpu:.4f}\n")


def stage_synth(args, out: str) -> None:
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    prep.stage_synth(args, out, engine=NaturalEngines(args.tts_python, os.path.abspath(args.kokoro_voices),
                                                      os.path.join(out, "logs")))


# ---------------------------------------------------------------------------------------------
# Stage 4: manifest
# ---------------------------------------------------------------------------------------------
def cpu_rtf(log_dir: str) -> dict:
    """Engine CPU seconds per second of raw engine audio, per engine, from logs/cpu_*.tsv."""
    acc = defaultdict(lambda: [0.0, 0.0, 0])
    for f in sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []:
        if f.startswith("cpu_") and f.endswith(".tsv"):
            with open(os.path.join(log_dir, f), encoding="utf-8") as fh:
                for line in fh:
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) != 4:
                        continue  # a line cut when the pool was stopped
                    _, e, secs, cpu = parts
                    a = acc[e]
                    a[0] += float(secs)
                    a[1] += float(cpu)
                    a[2] += 1
    return {e: {"clips": a[2], "audio_seconds": round(a[0], 1), "cpu_rtf": round(a[1] / a[0], 4)}
            for e, a in sorted(acc.items()) if a[0]}


def stage_manifest(args, out: str) -> None:
    prep.stage_manifest(args, out)
    p = os.path.join(out, "stats.json")
    with open(p) as f:
        stats = json.load(f)
    stats["cpu_rtf_per_engine"] = cpu_rtf(os.path.join(out, "logs"))
    with open(p, "w") as f:
        json.dump(stats, f, indent=1)
    log(f"manifest: engine CPU seconds per audio second {json.dumps(stats['cpu_rtf_per_engine'])}")


def stage_check(args, out: str) -> None:
    prep.stage_check(args, out)
    with open(os.path.join(out, "check_pocketsphinx.json")) as f:
        res = json.load(f)
    for e in ENGINES:
        if e in res:
            log(f"check: pocketsphinx WER on {e}: {res[e]['wer']:.3f} ({res[e]['clips']} clips)")


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("out_dir")
    ap.add_argument("--cathy-dir", help="folder with the Cathy train.tsv and dev.tsv (to build the text pool)")
    ap.add_argument("--text-from", help="an OUT_DIR of prepare.py: reuse its text pool, keep its dev/train texts apart")
    ap.add_argument("--hours", type=float, default=3.0, help="hours of train audio (default 3)")
    ap.add_argument("--dev-minutes", type=float, default=15.0, help="minutes of dev audio (default 15)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--jobs", type=int, default=2, help="parallel synthesis workers (default 2)")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    ap.add_argument("--tts-python", default="/work/tts-venv/bin/python",
                    help="Python of the venv with kokoro-onnx and piper-tts (default /work/tts-venv/bin/python)")
    ap.add_argument("--kokoro-voices", default="/work/tts-data/kokoro-js/voices",
                    help="voices/ of the npm package kokoro-js@1.2.1 (default /work/tts-data/kokoro-js/voices)")
    ap.add_argument("--kokoro-blends", type=int, default=200, help="train speakers blended from 2-3 Kokoro voices")
    ap.add_argument("--dev-blends", type=int, default=8, help="dev speakers blended from held-out Kokoro voices")
    ap.add_argument("--lm-sentences", type=int, default=None, help="LM sentences for the text stage (default: enough)")
    ap.add_argument("--stage", default="all", choices=["all", "text", "plan", "synth", "manifest", "check"])
    ap.add_argument("--check-per-voice", type=int, default=3, help="clips per voice for the check stage")
    args = ap.parse_args(argv)
    if args.hours <= 0 or args.dev_minutes <= 0:
        die("--hours and --dev-minutes must be positive")
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in wanted if e not in ENGINES]
    if bad or not wanted:
        die(f"--engines: unknown {bad}; choose from {','.join(ENGINES)}")
    if args.lm_sentences is None:
        n_plan = (args.hours * 3600 / prep.EST_SECONDS_PER_UTT * 1.4
                  + args.dev_minutes * 60 / prep.EST_SECONDS_PER_UTT * 1.6)
        args.lm_sentences = int(math.ceil(n_plan * 0.75))
    out = os.path.abspath(args.out_dir)
    os.makedirs(out, exist_ok=True)
    stages = ["text", "plan", "synth", "manifest"] if args.stage == "all" else [args.stage]
    engines = None
    if "plan" in stages or "synth" in stages:
        engines = choose_engines(wanted, engine_problems(wanted, args.tts_python, args.kokoro_voices), out)
        log(f"natural: engines {engines}")
    for s in stages:
        t0 = time.time()
        if s == "plan":
            stage_plan(args, out, engines)
        else:
            {"text": stage_text, "synth": stage_synth, "manifest": stage_manifest, "check": stage_check}[s](args, out)
        log(f"stage {s}: {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
