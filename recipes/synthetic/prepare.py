#!/usr/bin/env python3
"""Build the synthetic multi-voice English speech corpus (espeak-ng, flite and Festival voices).

    python recipes/synthetic/prepare.py OUT_DIR --cathy-dir CATHY_DIR [--hours 8] [--dev-minutes 25]
        [--seed 20240601] [--jobs 2] [--stage all|text|plan|synth|manifest|check]

Stages (each writes OUT_DIR/.done.<stage> holding its parameters and is skipped when re-run
with the same parameters; `synth` also skips every clip already on disk, so an interrupted
run resumes where it stopped):

  text      collect and normalise sentences from offline, freely licensed sources (see
            README.md): the pocketsphinx en-us trigram LM (sampled), WordNet usage examples,
            The Devil's Dictionary, the King James Bible (a little), the Cathy TRAIN prompts,
            spoken digits and spelled-out numbers. Every candidate that equals or contains a
            normalised Cathy dev prompt is rejected (counted in text/stats.json).
  plan      split sentences into disjoint train/dev lists and give each one voice, a speaking
            rate/pitch, a silence pad, a peak level and (15%) an 8 kHz telephone round trip.
            Dev uses only held-out voices (voices.tsv).
  synth     synthesise the plan in order with --jobs workers until --hours of train and
            --dev-minutes of dev audio exist: 16 kHz mono 16-bit FLAC under OUT_DIR/audio/.
  manifest  write OUT_DIR/train.tsv and dev.tsv (id, path, seconds, speaker, text; paths
            relative to OUT_DIR), per-file quality figures and stats.json.
  check     optional: decode a few clips per engine with pocketsphinx as an intelligibility
            sanity check (word error rate against the text; synthetic voices + a generic
            model, so only gross failures matter).

CATHY_DIR holds the project's Cathy manifests train.tsv and dev.tsv (column `text`), made by
recipes/cathy/prepare.py. Requires the Debian packages espeak-ng, flite, festival,
festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts, wordnet-base, dict-devil,
bible-kjv (with bible-kjv-text), and the Python packages numpy, soundfile, soxr, pocketsphinx.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np
import soundfile as sf
import soxr

from asr.text import normalize

SR = 16000
MIN_WORDS, MAX_WORDS = 3, 25
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TELEPHONE_FRACTION = 0.15

# ---------------------------------------------------------------------------------------------
# Voices
# ---------------------------------------------------------------------------------------------
ESPEAK_BASES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# espeak-ng variants (`espeak-ng --voices=variant`) that sound like plain speech. Left out on
# purpose: whisper/whisperf, Demonic, croak, robots (robosoft*, UniRobot, anikaRobot),
# announcer, Tweaky, kaukovalta, RicishayMax*, and exact duplicates (caleb = klatt6 = klatt,
# fast = "Mr serious" = no variant).
ESPEAK_MALE = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3",
               "klatt4", "klatt5", "Alex", "Andy", "adam", "benjamin", "boris", "david", "ed",
               "edward", "edward2", "Gene", "gustave", "iven", "iven2", "iven3", "iven4", "john",
               "Lee", "Michael", "Mike", "max", "norbert", "paul", "pedro", "quincy", "rob",
               "robert", "sandro", "travis", "victor", "zac", "grandpa", "antonio", "Denis",
               "Diogo", "Henrique", "Hugo", "Marco", "Mario", "michel", "miguel", "marcelo",
               "pablo", "Nguyen", "Storm", "Jacky", "shelby"]
ESPEAK_FEMALE = ["f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda",
                 "linda", "steph", "steph2", "steph3", "anika", "grandma"]
# Held out for dev: these two variants are never used in train, with any base voice.
ESPEAK_DEV = [("en-us", "f4"), ("en-gb", "m6")]
FLITE_VOICES = {  # name -> (f0 target mean range in Hz, split)
    "kal": ((85, 130), "train"), "kal16": ((85, 130), "train"), "awb": ((85, 130), "train"),
    "slt": ((150, 215), "train"), "rms": ((85, 130), "dev"),
}
FESTIVAL_VOICES = {"kal_diphone": "train", "cmu_us_slt_arctic_hts": "train", "ked_diphone": "dev"}
# Share of utterances per engine (voices inside an engine are used equally often).
ENGINE_SHARE = {"espeak": 0.50, "flite": 0.28, "festival": 0.22}


def build_voices() -> list[dict]:
    """Every voice identity (engine + voice + variant) with its split. Fixed, not seeded."""
    voices = []
    dev_variants = {v for _, v in ESPEAK_DEV}
    for b, v in ESPEAK_DEV:
        voices.append({"voice": f"espeak_{b}+{v}", "engine": "espeak", "name": f"{b}+{v}",
                       "gender": "F" if v in ESPEAK_FEMALE else "M", "split": "dev"})
    # each male variant once, each female variant with two bases, bases taken round-robin
    pairs, k = [], 0
    for v in ESPEAK_MALE:
        if v not in dev_variants:
            pairs.append((ESPEAK_BASES[k % len(ESPEAK_BASES)], v, "M"))
            k += 1
    for rep in range(2):
        for v in ESPEAK_FEMALE:
            if v not in dev_variants:
                pairs.append((ESPEAK_BASES[(k + 3 * rep) % len(ESPEAK_BASES)], v, "F"))
                k += 1
    for b, v, g in pairs:
        voices.append({"voice": f"espeak_{b}+{v}", "engine": "espeak", "name": f"{b}+{v}",
                       "gender": g, "split": "train"})
    for name, (_, split) in FLITE_VOICES.items():
        voices.append({"voice": f"flite_{name}", "engine": "flite", "name": name,
                       "gender": "F" if name == "slt" else "M", "split": split})
    for name, split in FESTIVAL_VOICES.items():
        voices.append({"voice": f"festival_{name}", "engine": "festival", "name": name,
                       "gender": "F" if "slt" in name else "M", "split": split})
    ids = [v["voice"] for v in voices]
    assert len(ids) == len(set(ids)), "duplicate voice ids"
    return voices


def jitter(voice: dict, rng: random.Random) -> dict:
    """Per-utterance speaking rate / pitch settings (not a new voice)."""
    e = voice["engine"]
    if e == "espeak":
        return {"rate": rng.randint(130, 210), "pitch": rng.randint(25, 75), "gap": rng.choice([0, 0, 0, 1, 2])}
    if e == "flite":
        lo, hi = FLITE_VOICES[voice["name"]][0]
        return {"stretch": round(rng.uniform(0.8, 1.25), 3), "f0": round(rng.uniform(lo, hi), 1)}
    if voice["name"].endswith("_hts"):  # festival HTS: only the speed can be changed (-r)
        return {"speed": round(rng.uniform(0.8, 1.25), 3)}
    return {"stretch": round(rng.uniform(0.8, 1.25), 3), "f0": round(rng.uniform(85, 135), 1),
            "f0std": round(rng.uniform(10, 25), 1)}


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def die(msg: str) -> None:
    sys.exit(f"prepare.py: error: {msg}")


def read_tsv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))


def write_tsv(path: str, rows: list[dict], fields: list[str]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE,
                           escapechar="\\", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


RECIPE_VERSION = 3  # bump when a stage's output format or content changes


def stage_done(out: str, stage: str, params: dict) -> bool:
    params["recipe_version"] = RECIPE_VERSION
    p = os.path.join(out, f".done.{stage}")
    if not os.path.isfile(p):
        return False
    with open(p) as f:
        old = json.load(f)
    if old != params:
        log(f"{stage}: parameters changed since the last run ({old} -> {params}); redoing it")
        return False
    return True


def mark_done(out: str, stage: str, params: dict) -> None:
    params["recipe_version"] = RECIPE_VERSION
    with open(os.path.join(out, f".done.{stage}"), "w") as f:
        json.dump(params, f)


def clear_done(out: str, stages) -> None:
    for s in stages:
        p = os.path.join(out, f".done.{s}")
        if os.path.exists(p):
            os.remove(p)


def rng_for(seed: int, *parts) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed,) + parts))


def n_words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------------------------------------
# Stage 1: text
# ---------------------------------------------------------------------------------------------
_PUNCT_SPLIT = re.compile(r"\s*(?:[,;:]+|[.!?]+|--+|\s-\s)(?=\s|$)\s*")


def tts_text(raw: str, norm: str) -> str:
    """Text to feed a synthesiser: the normalised words, with the source's clause punctuation
    put back (for pauses and intonation) only where that provably keeps the same words."""
    chunks = [c for c in _PUNCT_SPLIT.split(raw) if c.strip()]
    parts = [normalize(c) for c in chunks]
    parts = [p for p in parts if p]
    if len(parts) > 1 and " ".join(parts) == norm:
        return ", ".join(parts) + "."
    return norm


class DevFilter:
    """Rejects a sentence that equals or contains a normalised Cathy dev prompt."""

    def __init__(self, dev_prompts: set[str]):
        self.padded = [f" {d} " for d in sorted(dev_prompts) if d]
        self.rejected = Counter()

    def ok(self, norm: str, source: str) -> bool:
        s = f" {norm} "
        for d in self.padded:
            if d in s:
                self.rejected[source] += 1
                return False
        return True


def cathy_prompts(cathy_dir: str) -> tuple[list[str], set[str]]:
    paths = [os.path.join(cathy_dir, f"{s}.tsv") for s in ("train", "dev")]
    for p in paths:
        if not os.path.isfile(p):
            die(f"{p}: no such file (run recipes/cathy/prepare.py first; --cathy-dir must hold "
                "its train.tsv and dev.tsv: the dev prompts are needed to keep them out)")
    train = [r["text"] for r in read_tsv(paths[0])]
    dev = {normalize(r["text"]) for r in read_tsv(paths[1])}
    if not train or not dev:
        die(f"{cathy_dir}: empty Cathy manifests")
    return train, dev


def wordnet_examples(wn_dir="/usr/share/wordnet") -> list[str]:
    """Quoted usage examples from the WordNet 3.0 glosses; attributed quotations
    ("..." - Author) are dropped, so no literary text comes in this way."""
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(wn_dir, f"data.{pos}")
        if not os.path.isfile(path):
            die(f"{path}: missing (apt-get install wordnet-base)")
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                gloss = line.split("|", 1)[1]
                for m in re.finditer(r'"([^"]+)"(\s*-\s*[A-Z])?', gloss):
                    if m.group(2):
                        continue  # attributed quotation
                    out.append(m.group(1))
    return out


_DEVIL_HEAD = re.compile(r"^([A-Z][A-Z0-9 '\-]*[A-Z]|[A-Z]),\s+(?:[a-z]+\.\s*)+")


def devil_sentences(path="/usr/share/dictd/devil.dict.dz") -> list[str]:
    """Prose sentences of Ambrose Bierce's The Devil's Dictionary (verse and the preface left out)."""
    if not os.path.isfile(path):
        die(f"{path}: missing (apt-get install dict-devil)")
    with gzip.open(path, "rt", encoding="latin-1") as f:
        lines = f.read().splitlines()
    start = next((i for i, ln in enumerate(lines) if _DEVIL_HEAD.match(ln)), None)
    if start is None:
        die(f"{path}: no dictionary entries found")
    paras, cur = [], []
    for ln in lines[start:]:
        if not ln.strip() or ln.startswith(" "):  # blank line or indented verse/quotation
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        cur.append(ln.strip())
    if cur:
        paras.append(" ".join(cur))
    out = []
    for p in paras:
        p = _DEVIL_HEAD.sub("", p)
        p = re.sub(r"\[[^\]]*\]|_", "", p)
        out.extend(re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", p))
    return out


def kjv_clauses() -> list[str]:
    """King James Bible verses, cut into clauses at ; : . ? ! (verses are long)."""
    if not shutil.which("bible"):
        die("`bible` not found (apt-get install bible-kjv bible-kjv-text)")
    res = subprocess.run(["bible", "-l", "100000", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                         encoding="latin-1")
    verses = [m.group(1) for m in re.finditer(r"^\s*\d+ (.+)$", res.stdout, re.M)]
    if len(verses) < 30000:
        die(f"bible printed only {len(verses)} verses; is bible-kjv-text installed?")
    out = []
    for v in verses:
        out.extend(c for c in re.split(r"(?<=[;:.?!])\s+", v) if c)
    return out


def cmudict_words() -> set[str]:
    import pocketsphinx
    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    words = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            words.add(re.sub(r"\(\d+\)$", "", w).lower())
    return words


# Abbreviations that a synthesiser expands (st -> saint/street, mr -> mister) but the label
# keeps: a sentence with one would teach the model a wrong spelling, so it is dropped.
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "etc", "vs", "co", "inc", "ltd", "lt",
                 "col", "gen", "capt", "prof", "rev", "hon", "ft", "mt", "ave", "blvd", "dept",
                 "approx", "esp", "fig", "vol", "pp", "ie", "eg", "viz", "cf", "al", "govt",
                 "corp", "sgt", "gov", "sen", "rep", "feb", "jan", "aug", "sept", "oct", "nov",
                 "dec", "mon", "tues", "wed", "thurs", "fri", "sat", "sun", "ok"}


# The LM was trained on conversational/web text: sentences with these words are dropped.
OFFENSIVE = {"fuck", "fucking", "fucked", "fucker", "fuckin", "shit", "shitty", "bullshit", "bitch",
             "bitches", "cunt", "dick", "dicks", "pussy", "cock", "asshole", "bastard", "nigger",
             "nigga", "faggot", "fag", "slut", "whore", "retard", "retarded", "motherfucker", "porn",
             "sex", "sexy", "rape", "raped", "damn", "goddamn", "crap", "piss", "pissed", "tits", "boobs"}


class LMSampler:
    """Sample sentences from the trigram LM shipped in the pocketsphinx wheel (en-us.lm.bin).

    pocketsphinx 5.1.1 cannot write this model out as ARPA: its header claims 6 more bigrams
    than the trie holds and the writer crashes in the bigram section (cmusphinx/pocketsphinx
    #502). What it wrote before the crash (all unigrams, ~all bigrams) gives the candidate
    next words; their exact trigram probabilities come from NGramModel.prob(). Words outside
    the candidate list share the remaining mass in proportion to their unigram probability
    (exact for the backoff case, a close approximation for the bigrams cut by top_k).
    """

    LOG10_BASE = math.log10(1.0001)  # NGramModel.prob() scores are log base 1.0001

    def __init__(self, work_dir: str, top_k: int = 400, temperature: float = 0.7):
        self.temperature = temperature
        import pocketsphinx as ps
        self.lm_path = os.path.join(ps.get_model_path(), "en-us", "en-us.lm.bin")
        arpa = os.path.join(work_dir, "en-us.partial.arpa")
        if not os.path.isfile(arpa + ".ok"):
            # Config and LogMath must stay referenced while the model lives, or it reads freed memory
            code = ("import pocketsphinx as ps, sys\n"
                    "cfg, lmath = ps.Config(), ps.LogMath(1.0001)\n"
                    "m = ps.NGramModel(cfg, lmath, sys.argv[1])\n"
                    "m.write(sys.argv[2], ps.NGramModel.str_to_type('arpa'))\n")
            res = subprocess.run([sys.executable, "-c", code, self.lm_path, arpa], capture_output=True)
            log(f"text: LM dump exited with {res.returncode} (a crash in the bigram section is expected)")
            open(arpa + ".ok", "w").close()
        self.words, uni, succ = self._read_partial_arpa(arpa, top_k)
        self.succ = succ
        p = np.power(10.0, np.array(uni))
        self.uni_p = p / p.sum()
        self.uni_cdf = np.cumsum(self.uni_p)
        self.index = {w: i for i, w in enumerate(self.words)}
        self._cfg, self._logmath = ps.Config(), ps.LogMath(1.0001)  # keep alive with the model
        self.model = ps.NGramModel(self._cfg, self._logmath, self.lm_path)
        check = self.model.prob(["the"]) * self.LOG10_BASE
        if abs(check - uni[self.index["the"]]) > 0.01:
            die(f"LM sanity check failed: log10 P(the) is {check:.3f} via prob(), {uni[self.index['the']]:.3f} in the dump")

    @staticmethod
    def _read_partial_arpa(path: str, top_k: int):
        words, uni, index = [], [], {}
        bigrams = defaultdict(list)
        section = None
        n_bi = 0
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("\\"):
                    section = line.strip()
                    continue
                parts = line.rstrip("\n").split("\t")
                if section == "\\1-grams:" and len(parts) >= 2:
                    w = parts[1]
                    index[w] = len(words)
                    words.append(w)
                    uni.append(float(parts[0]) if w != "<s>" else -99.0)
                elif section == "\\2-grams:" and len(parts) >= 3:
                    try:
                        lp = float(parts[0])
                    except ValueError:
                        continue  # the line cut by the crash
                    w1, w2 = parts[1], parts[2]
                    if w1 in index and w2 in index and w2 != "<s>":
                        bigrams[index[w1]].append((lp, index[w2]))
                        n_bi += 1
        if len(words) < 50000 or n_bi < 1_500_000 or not all(-99.0 <= u <= 0.0 for u in uni):
            die(f"{path}: only {len(words)} unigrams / {n_bi} bigrams could be read from the LM dump")
        succ = {}
        for w1, lst in bigrams.items():
            lst.sort(reverse=True)
            succ[w1] = [words[i] for _, i in lst[:top_k]]
        return words, uni, succ

    def sample(self, rng: np.random.Generator, max_words: int = 30) -> tuple[list[str], float]:
        """One sentence and its mean log10 probability per token (</s> included)."""
        hist, out, total = ["<s>"], [], 0.0
        i_prev = self.index["<s>"]
        for _ in range(max_words + 1):
            cands = self.succ.get(i_prev, [])
            h = hist[::-1][:2]
            lp = np.array([self.model.prob([c] + h) for c in cands], dtype=np.float64) * self.LOG10_BASE
            p = np.power(10.0, lp)
            rest = max(0.0, 1.0 - float(p.sum()))
            wts = np.power(np.append(p, rest), 1.0 / self.temperature)  # sharpen: fewer odd turns
            j = int(np.searchsorted(np.cumsum(wts), rng.random() * wts.sum()))
            if j < len(cands):
                w = cands[j]
                total += lp[j]
            else:  # backoff: a unigram outside the candidate list
                cs = set(cands)
                for _ in range(100):
                    k = int(np.searchsorted(self.uni_cdf, rng.random()))
                    w = self.words[min(k, len(self.words) - 1)]
                    if w not in cs:
                        break
                total += self.model.prob([w] + h) * self.LOG10_BASE
            if w == "</s>":
                return out, total / (len(out) + 1)
            out.append(w)
            hist.append(w)
            i_prev = self.index[w]
        return out, total / (len(out) + 1)  # too long; the caller rejects it


def number_items(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """Spelled-out numbers: cardinals of many sizes, years, ordinals, money, decimals."""
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.45:
            raw = str(int(10 ** rng.uniform(0, 7)))
        elif kind < 0.6:
            raw = str(rng.randint(1100, 2099))  # read as a year by the normaliser
        elif kind < 0.75:
            v = rng.randint(1, 120)
            raw = f"{v}{'th' if 10 <= v % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(v % 10, 'th')}"
        elif kind < 0.9:
            raw = f"${rng.randint(0, 999)}" + (f".{rng.randint(1, 99):02d}" if rng.random() < 0.5 else "")
        else:
            raw = f"{rng.randint(0, 99)}.{rng.randint(1, 9)}"
        out.append((raw, normalize(raw)))
    return out


def digit_sequence_items(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        k = rng.choice([2, 3, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10])
        out.append(" ".join(DIGITS[rng.randrange(10)] for _ in range(k)))
    return out


def stage_text(args, out: str) -> None:
    params = {"seed": args.seed, "lm_sentences": args.lm_sentences, "cathy_dir": os.path.abspath(args.cathy_dir)}
    if stage_done(out, "text", params):
        log("text: done already")
        return
    clear_done(out, ["plan", "synth", "manifest"])
    tdir = os.path.join(out, "text")
    os.makedirs(tdir, exist_ok=True)
    cathy_train, cathy_dev = cathy_prompts(args.cathy_dir)
    filt = DevFilter(cathy_dev)
    lexicon = cmudict_words()
    stats = {"cathy_dev_prompts": len(cathy_dev)}
    seen: set[str] = set()

    def add(source: str, raws, rows, check_words=True, min_words=MIN_WORDS):
        kept = too_short = too_long = dup = oov = 0
        for raw in raws:
            norm = normalize(raw)
            k = n_words(norm)
            if k < min_words:
                too_short += 1
                continue
            if k > MAX_WORDS:
                too_long += 1
                continue
            if not filt.ok(norm, source):
                continue
            if any(w in OFFENSIVE for w in norm.split()) or (check_words and any(
                    w in ABBREVIATIONS or w.strip("'") not in lexicon for w in norm.split())):
                oov += 1
                continue
            if norm in seen:
                dup += 1
                continue
            seen.add(norm)
            rows.append({"source": source, "tts": tts_text(raw, norm), "text": norm})
            kept += 1
        stats[source] = {"kept": kept, "too_short": too_short, "too_long": too_long, "duplicate": dup,
                         "unknown_abbreviated_or_offensive": oov, "rejected_cathy_dev": filt.rejected[source]}
        log(f"text: {source}: {kept} sentences ({stats[source]})")

    rows: list[dict] = []
    # Cathy train prompts: kept as the project labels them (etc and all), not word-checked.
    add("cathy_train", cathy_train, rows, check_words=False)
    add("wordnet", wordnet_examples(), rows)
    add("devil", devil_sentences(), rows)
    add("kjv", kjv_clauses(), rows)
    # single digits repeat by design (many voices each); they are train-only (see plan), and
    # no other source may hold them, or a dev sentence could equal a train one
    for d in DIGITS:
        if filt.ok(d, "digit_single"):
            rows.append({"source": "digit_single", "tts": d, "text": d})
            seen.add(d)
    stats["digit_single"] = {"kept": 10}
    rng = rng_for(args.seed, "numbers")
    add("numbers", [r for r, _ in number_items(rng, 6000)], rows, check_words=False, min_words=1)
    add("digit_seq", digit_sequence_items(rng, 8000), rows, check_words=False, min_words=2)

    log(f"text: sampling {args.lm_sentences} sentences from the pocketsphinx en-us trigram LM")
    t0 = time.time()
    sampler = LMSampler(tdir)
    nrng = np.random.default_rng(args.seed)
    # Sample twice what is needed and keep the more probable half (fewer word-salad sentences).
    # The samples are cached (text/lm_samples.tsv), as sampling takes minutes.
    target, tries, cands = args.lm_sentences, 0, []
    cache = os.path.join(tdir, "lm_samples.tsv")
    key = f"# seed={args.seed} target={target} temperature={sampler.temperature}"
    if os.path.isfile(cache):
        with open(cache, encoding="utf-8") as f:
            if f.readline().rstrip("\n") == key:
                tries = int(f.readline().split("=")[1])
                for line in f:
                    score, sent = line.rstrip("\n").split("\t")
                    cands.append((float(score), sent))
                log(f"text: lm: {len(cands)} cached samples from {cache}")
    if not cands:
        while tries < target * 30 and len(cands) < target * 2.4:
            tries += 1
            words, score = sampler.sample(nrng)
            if 4 <= len(words) <= MAX_WORDS:
                cands.append((score, " ".join(words)))
        with open(cache + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{key}\n# tries={tries}\n")
            f.writelines(f"{sc!r}\t{sent}\n" for sc, sent in cands)
        os.replace(cache + ".tmp", cache)
    order = sorted(range(len(cands)), key=lambda i: -cands[i][0])
    best = sorted(order[: len(order) // 2])  # keep sampling order among the kept
    lm_raw = [cands[i][1] for i in best]
    sub: list[dict] = []
    add("lm", lm_raw, sub)
    if len(sub) < target:
        log(f"text: WARNING: lm gave {len(sub)} of {target} sentences")
    rows.extend(sub[:target])
    stats["lm"].update({"kept": min(len(sub), target), "sampled": tries, "seconds": round(time.time() - t0, 1)})
    log(f"text: lm: {stats['lm']['kept']} sentences from {tries} samples in {time.time() - t0:.0f}s")

    stats["rejected_cathy_dev_total"] = sum(filt.rejected.values())
    stats["rejected_cathy_dev_by_source"] = dict(filt.rejected)
    write_tsv(os.path.join(tdir, "sentences.tsv"), rows, ["source", "tts", "text"])
    with open(os.path.join(tdir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    log(f"text: {len(rows)} sentences; rejected for containing a Cathy dev prompt: "
        f"{stats['rejected_cathy_dev_total']} {dict(filt.rejected)}")
    mark_done(out, "text", params)


# ---------------------------------------------------------------------------------------------
# Stage 2: plan
# ---------------------------------------------------------------------------------------------
# Share of utterances per text source; a source that runs out is topped up from `lm`.
SOURCE_SHARE = {"lm": 0.42, "wordnet": 0.22, "cathy_train": 0.07, "devil": 0.06, "kjv": 0.03,
                "digit_single": 0.04, "digit_seq": 0.08, "numbers": 0.08}
# Sources of dev sentences (distinct texts only). A tuple, not a set: set order changes with
# PYTHONHASHSEED and would change the plan.
DEV_SOURCES = ("lm", "wordnet", "devil", "kjv", "digit_seq", "numbers")
EST_SECONDS_PER_UTT = 3.0  # rough, for sizing the plan; the synth stage stops on real durations


def assign_voices(items: list[dict], split_voices: list[dict], split: str, rng: random.Random,
                  engine_share: dict, jitter_fn, prefix: str) -> None:
    """Give each planned sentence (in place) its id `<prefix>_<split>_NNNNNN`, a voice of
    split_voices, that voice's jittered settings, a telephone round trip (TELEPHONE_FRACTION),
    a peak level, silence pads and a noise floor. Train draws engines by engine_share, dev by
    how many voices each has; voices rotate within an engine. natural.py plans with it too."""
    by_engine = defaultdict(list)
    for v in split_voices:
        by_engine[v["engine"]].append(v)
    engines = sorted(by_engine)
    weights = [engine_share[e] for e in engines] if split == "train" else [len(by_engine[e]) for e in engines]
    counters = {e: 0 for e in engines}
    order = {e: rng.sample(by_engine[e], len(by_engine[e])) for e in engines}
    for i, it in enumerate(items):
        e = rng.choices(engines, weights)[0]
        v = order[e][counters[e] % len(order[e])]  # rotate voices within the engine
        counters[e] += 1
        it.update({
            "id": f"{prefix}_{split}_{i:06d}", "voice": v["voice"], "engine": e, "name": v["name"],
            "settings": ",".join(f"{k}={x}" for k, x in sorted(jitter_fn(v, rng).items())),
            "telephone": int(rng.random() < TELEPHONE_FRACTION),
            "peak_db": round(rng.uniform(-12.0, -1.0), 2),
            "pad_start": round(rng.uniform(0.1, 0.3), 3), "pad_end": round(rng.uniform(0.1, 0.3), 3),
            "noise_db": round(rng.uniform(-75.0, -55.0), 1),
        })


def stage_plan(args, out: str) -> None:
    params = {"seed": args.seed, "hours": args.hours, "dev_minutes": args.dev_minutes}
    if stage_done(out, "plan", params):
        log("plan: done already")
        return
    clear_done(out, ["synth", "manifest"])
    rows = read_tsv(os.path.join(out, "text", "sentences.tsv"))
    pools = defaultdict(list)
    for r in rows:
        pools[r["source"]].append(r)
    rng = rng_for(args.seed, "plan")
    for s in sorted(pools):
        rng.shuffle(pools[s])
    voices = build_voices()
    write_tsv(os.path.join(out, "voices.tsv"),
              [{**v, "settings": settings_doc(v)} for v in voices],
              ["voice", "engine", "name", "gender", "split", "settings"])

    n_dev = math.ceil(args.dev_minutes * 60 / EST_SECONDS_PER_UTT * 1.6)
    n_train = math.ceil(args.hours * 3600 / EST_SECONDS_PER_UTT * 1.4)
    dev_share = {s: SOURCE_SHARE[s] for s in DEV_SOURCES}
    tot = sum(dev_share.values())
    plan = {"dev": [], "train": []}
    for split, n, shares in (("dev", n_dev, {s: v / tot for s, v in dev_share.items()}), ("train", n_train, SOURCE_SHARE)):
        items = []
        for s, share in shares.items():
            want = round(n * share)
            if s == "digit_single":
                items += [dict(rng.choice(pools[s])) for _ in range(want)]
                continue
            take, pools[s] = pools[s][:want], pools[s][want:]
            items += take
            if len(take) < want:
                log(f"plan: {split}: source {s} has only {len(take)} of {want} wanted; topping up from lm")
                more, pools["lm"] = pools["lm"][:want - len(take)], pools["lm"][want - len(take):]
                items += more
        rng.shuffle(items)
        split_voices = [v for v in voices if v["split"] == split]
        assign_voices(items, split_voices, split, rng, ENGINE_SHARE, jitter, "synth")
        plan[split] = items
    train_texts = {it["text"] for it in plan["train"]}
    overlap = [it for it in plan["dev"] if it["text"] in train_texts]
    if overlap:
        die(f"plan: {len(overlap)} dev texts also in train (bug)")
    fields = ["id", "voice", "engine", "name", "settings", "telephone", "peak_db", "pad_start", "pad_end",
              "noise_db", "source", "tts", "text"]
    os.makedirs(os.path.join(out, "plan"), exist_ok=True)
    for split, items in plan.items():
        write_tsv(os.path.join(out, "plan", f"{split}.tsv"), items, fields)
        log(f"plan: {split}: {len(items)} utterances planned, {len({i['voice'] for i in items})} voices, "
            f"sources {dict(Counter(i['source'] for i in items))}")
    mark_done(out, "plan", params)


def settings_doc(v: dict) -> str:
    e = v["engine"]
    if e == "espeak":
        return "espeak-ng -v %s -s 130..210 -p 25..75 -g 0..2" % v["name"]
    if e == "flite":
        lo, hi = FLITE_VOICES[v["name"]][0]
        return f"flite -voice {v['name']} --setf duration_stretch=0.8..1.25 --setf int_f0_target_mean={lo}..{hi}"
    if v["name"].endswith("_hts"):
        return f"text2wave (voice_{v['name']}) hts_engine -r 0.8..1.25"
    return (f"text2wave (voice_{v['name']}) Duration_Stretch 0.8..1.25 "
            "int_lr_params target_f0_mean 85..135 target_f0_std 10..25")


# ---------------------------------------------------------------------------------------------
# Stage 3: synth
# ---------------------------------------------------------------------------------------------
def run_engine(item: dict, wav: str, tmpdir: str) -> None:
    s = {k: float(x) if "." in x else int(x) for k, x in (kv.split("=") for kv in item["settings"].split(","))}
    text = item["tts"]
    e, name = item["engine"], item["name"]
    if e == "espeak":
        cmd = ["espeak-ng", "-v", name, "-s", str(s["rate"]), "-p", str(s["pitch"]), "-g", str(s["gap"]),
               "-w", wav, "--", text]
    elif e == "flite":
        cmd = ["flite", "--setf", f"duration_stretch={s['stretch']}", "--setf", f"int_f0_target_mean={s['f0']}",
               "-voice", name, "-t", text, "-o", wav]
    elif e == "festival":
        txt = os.path.join(tmpdir, "in.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        ev = [f"(voice_{name})"]
        if "speed" in s:
            ev.append(f"(set! hts_engine_params (append hts_engine_params (list (list \"-r\" {s['speed']}))))")
        else:
            ev.append(f"(Parameter.set 'Duration_Stretch {s['stretch']})")
            ev.append(f"(set! int_lr_params '((target_f0_mean {s['f0']}) (target_f0_std {s['f0std']}) "
                      "(model_f0_mean 170) (model_f0_std 34)))")
        cmd = ["text2wave"]
        for x in ev:
            cmd += ["-eval", x]
        cmd += [txt, "-o", wav]
    else:
        raise ValueError(f"unknown engine {e}")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 or not os.path.isfile(wav) or os.path.getsize(wav) <= 44:
        raise RuntimeError(f"{item['id']}: {' '.join(cmd[:6])}... failed (rc {res.returncode}): {res.stderr.strip()[-300:]}")


def trim(x: np.ndarray, sr: int, pad_start: float, pad_end: float) -> np.ndarray:
    """Cut leading/trailing silence (frames 45 dB under the loudest), keep the given pads."""
    hop = sr // 100
    n = len(x) // hop
    if n == 0:
        return x
    e = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(e)
    active = np.flatnonzero(db > db.max() - 45)
    a, b = active[0] * hop, (active[-1] + 1) * hop
    ps, pe = int(pad_start * sr), int(pad_end * sr)
    lead = x[max(0, a - ps): a]
    tail = x[b: b + pe]
    lead = np.concatenate([np.zeros(ps - len(lead), x.dtype), lead])
    tail = np.concatenate([tail, np.zeros(pe - len(tail), x.dtype)])
    return np.concatenate([lead, x[a:b], tail])


def synth_one(job):
    item, out, engine = job
    path = os.path.join(out, item["relpath"])
    if os.path.isfile(path):
        return item["id"], sf.info(path).duration, None, None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.join(out, "tmp")) as td:
        wav = os.path.join(td, "out.wav")
        t0 = time.perf_counter()
        engine(item, wav, td)
        t_engine = time.perf_counter() - t0
        x, sr = sf.read(wav, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if sr != SR:
            x = soxr.resample(x, sr, SR, quality="HQ")
        x = trim(x, SR, float(item["pad_start"]), float(item["pad_end"]))
        if int(item["telephone"]):
            x = soxr.resample(soxr.resample(x, SR, 8000, quality="HQ"), 8000, SR, quality="HQ")
        peak = float(np.abs(x).max())
        if peak < 1e-4 or len(x) < 0.3 * SR:
            raise RuntimeError(f"{item['id']}: silent or empty output from {item['engine']} {item['name']}")
        x = x * (10 ** (float(item["peak_db"]) / 20) / peak)
        nrng = np.random.default_rng(int(hashlib.md5(item["id"].encode()).hexdigest()[:8], 16))
        x = x + nrng.standard_normal(len(x)).astype(np.float32) * (10 ** (float(item["noise_db"]) / 20))
        x = np.clip(x, -0.999, 0.999)
        tmp = os.path.join(td, "out.flac")
        sf.write(tmp, x, SR, subtype="PCM_16", format="FLAC")
        os.replace(tmp, path)
        t_total = time.perf_counter() - t0
    return item["id"], len(x) / SR, t_engine, t_total


AUDIO_KEYS = ("voice", "settings", "telephone", "peak_db", "pad_start", "pad_end", "noise_db", "tts")


def relpath_of(split: str, item: dict) -> str:
    """Where a planned clip goes. The name carries a hash of everything that shapes the audio,
    so a clip made for an older plan is never taken for the current one."""
    h = hashlib.sha1("\t".join(str(item[k]) for k in AUDIO_KEYS).encode()).hexdigest()[:8]
    return os.path.join("audio", split, item["voice"].replace("+", "_"), f"{item['id']}_{h}.flac")


def remove_stale_audio(out: str, keep: set[str]) -> int:
    n = 0
    for root, _, files in os.walk(os.path.join(out, "audio")):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), out)
            if f.endswith(".flac") and rel not in keep:
                os.remove(os.path.join(root, f))
                n += 1
    return n


def stage_synth(args, out: str, engine=run_engine) -> None:
    """engine(item, wav_path, tmpdir) writes one planned clip's raw audio (natural.py passes
    its own, for the natural-voice engines; it must be picklable for the worker pool)."""
    params = {"seed": args.seed, "hours": args.hours, "dev_minutes": args.dev_minutes}
    if stage_done(out, "synth", params):
        log("synth: done already")
        return
    clear_done(out, ["manifest"])
    os.makedirs(os.path.join(out, "tmp"), exist_ok=True)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    plans = {split: read_tsv(os.path.join(out, "plan", f"{split}.tsv")) for split in ("dev", "train")}
    for split, items in plans.items():
        for it in items:
            it["relpath"] = relpath_of(split, it)
    stale = remove_stale_audio(out, {it["relpath"] for items in plans.values() for it in items})
    if stale:
        log(f"synth: removed {stale} clips that belong to no current plan")
    for split, target in (("dev", args.dev_minutes * 60), ("train", args.hours * 3600)):
        items = plans[split]
        timing_path = os.path.join(out, "logs", f"synth_{split}.tsv")
        # a run killed before its first flush leaves an empty file: it gets the header too
        new_file = not os.path.isfile(timing_path) or os.path.getsize(timing_path) == 0
        tf = open(timing_path, "a", encoding="utf-8", buffering=1)  # line-buffered: a killed run keeps its rows
        if new_file:
            tf.write("id\tengine\tvoice\tseconds\tengine_seconds\ttotal_seconds\n")
        done_s, n_new, n_old, t0 = 0.0, 0, 0, time.time()
        by_id = {it["id"]: it for it in items}
        log(f"synth: {split}: target {target / 3600:.2f} h from a plan of {len(items)} utterances, {args.jobs} workers")
        with mp.Pool(args.jobs) as pool:
            for uid, secs, t_eng, t_tot in pool.imap(synth_one, ((it, out, engine) for it in items), chunksize=2):
                done_s += secs
                if t_eng is None:
                    n_old += 1
                else:
                    n_new += 1
                    it = by_id[uid]
                    tf.write(f"{uid}\t{it['engine']}\t{it['voice']}\t{secs:.3f}\t{t_eng:.4f}\t{t_tot:.4f}\n")
                if (n_new + n_old) % 500 == 0:
                    tf.flush()
                    log(f"synth: {split}: {n_new + n_old} clips, {done_s / 3600:.2f} h "
                        f"({n_new} new, {time.time() - t0:.0f}s)")
                if done_s >= target:
                    pool.terminate()
                    break
        tf.close()
        if done_s < target:
            log(f"synth: WARNING: {split}: the plan ran out at {done_s / 3600:.2f} h "
                f"of {target / 3600:.2f} h; raise EST_SECONDS_PER_UTT margin or --lm-sentences")
        log(f"synth: {split}: {done_s / 3600:.2f} h in {n_new + n_old} clips ({n_new} made now) "
            f"in {time.time() - t0:.0f}s wall")
    shutil.rmtree(os.path.join(out, "tmp"), ignore_errors=True)
    mark_done(out, "synth", params)


# ---------------------------------------------------------------------------------------------
# Stage 4: manifest
# ---------------------------------------------------------------------------------------------
def stage_manifest(args, out: str) -> None:
    params = {"seed": args.seed, "hours": args.hours, "dev_minutes": args.dev_minutes}
    if stage_done(out, "manifest", params):
        log("manifest: done already")
        return
    stats = {"hours_target": args.hours, "dev_minutes_target": args.dev_minutes, "seed": args.seed}
    quality_rows = []
    for split, target in (("dev", args.dev_minutes * 60), ("train", args.hours * 3600)):
        items = read_tsv(os.path.join(out, "plan", f"{split}.tsv"))
        rows, total = [], 0.0
        for it in items:
            if total >= target:
                break
            rel = relpath_of(split, it)
            path = os.path.join(out, rel)
            if not os.path.isfile(path):
                die(f"{path}: missing; run the synth stage first")
            x, sr = sf.read(path, dtype="float32")
            secs = len(x) / sr
            total += secs
            rows.append({"id": it["id"], "path": rel, "seconds": f"{secs:.3f}", "speaker": it["voice"],
                         "text": it["text"], "source": it["source"], "engine": it["engine"],
                         "telephone": it["telephone"]})
            rms = float(np.sqrt(np.mean(x ** 2)))
            quality_rows.append({"id": it["id"], "split": split, "engine": it["engine"], "voice": it["voice"],
                                 "seconds": f"{secs:.3f}", "words": n_words(it["text"]),
                                 "sec_per_word": f"{secs / max(1, n_words(it['text'])):.3f}",
                                 "peak": f"{np.abs(x).max():.4f}", "rms_db": f"{20 * math.log10(rms + 1e-9):.1f}",
                                 "clipped": int(np.sum(np.abs(x) >= 0.999)), "sr": sr})
        write_tsv(os.path.join(out, f"{split}.tsv"), rows, ["id", "path", "seconds", "speaker", "text"])
        write_tsv(os.path.join(out, f"{split}_details.tsv"), rows,
                  ["id", "path", "seconds", "speaker", "text", "source", "engine", "telephone"])
        per_engine = defaultdict(float)
        for r in rows:
            per_engine[r["engine"]] += float(r["seconds"])
        stats[split] = {
            "utterances": len(rows), "hours": round(total / 3600, 3), "voices": len({r["speaker"] for r in rows}),
            "hours_by_engine": {e: round(s / 3600, 3) for e, s in sorted(per_engine.items())},
            "utterances_by_source": dict(sorted(Counter(r["source"] for r in rows).items())),
            "telephone_fraction": round(sum(int(r["telephone"]) for r in rows) / max(1, len(rows)), 3),
            "voice_list": sorted({r["speaker"] for r in rows}) if split == "dev" else None,
        }
        log(f"manifest: {split}: {len(rows)} utterances, {total / 3600:.2f} h, {stats[split]['voices']} voices")
    write_tsv(os.path.join(out, "quality.tsv"), quality_rows,
              ["id", "split", "engine", "voice", "seconds", "words", "sec_per_word", "peak", "rms_db", "clipped", "sr"])
    spw = np.array([float(q["sec_per_word"]) for q in quality_rows if int(q["words"]) >= 3])
    stats["quality"] = {
        "clips": len(quality_rows),
        "clipped_samples_total": sum(q["clipped"] for q in quality_rows),
        "not_16k": sum(1 for q in quality_rows if q["sr"] != SR),
        "rms_db_min": min(float(q["rms_db"]) for q in quality_rows),
        "rms_db_max": max(float(q["rms_db"]) for q in quality_rows),
        "sec_per_word_p1_p50_p99": [round(float(np.percentile(spw, p)), 3) for p in (1, 50, 99)] if len(spw) else None,
        "suspicious_sec_per_word": [q["id"] for q in quality_rows
                                    if int(q["words"]) >= 3 and not 0.15 <= float(q["sec_per_word"]) <= 1.5],
    }
    # real-time factors from the synth timing logs (only clips made in a run, not skipped ones)
    rtf = {}
    for split in ("dev", "train"):
        p = os.path.join(out, "logs", f"synth_{split}.tsv")
        if os.path.isfile(p):
            for r in read_tsv(p):
                a = rtf.setdefault(r["engine"], [0.0, 0.0, 0.0, 0])
                a[0] += float(r["seconds"])
                a[1] += float(r["engine_seconds"])
                a[2] += float(r["total_seconds"])
                a[3] += 1
    stats["real_time_factor_per_engine"] = {
        e: {"clips": a[3], "audio_hours": round(a[0] / 3600, 3), "engine_rtf": round(a[1] / a[0], 4),
            "with_processing_rtf": round(a[2] / a[0], 4)} for e, a in sorted(rtf.items()) if a[0]}
    with open(os.path.join(out, "text", "stats.json")) as f:
        stats["text"] = json.load(f)
    with open(os.path.join(out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    q = stats["quality"]
    log(f"manifest: quality: {q['clips']} clips, clipped samples {q['clipped_samples_total']}, "
        f"rms {q['rms_db_min']}..{q['rms_db_max']} dBFS, s/word p1/p50/p99 {q['sec_per_word_p1_p50_p99']}, "
        f"{len(q['suspicious_sec_per_word'])} suspicious")
    log(f"manifest: real-time factors {json.dumps(stats['real_time_factor_per_engine'])}")
    mark_done(out, "manifest", params)


# ---------------------------------------------------------------------------------------------
# Stage 5 (optional): check
# ---------------------------------------------------------------------------------------------
def _edit_distance(a: list[str], b: list[str]) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[len(b)]


def stage_check(args, out: str) -> None:
    import pocketsphinx as ps
    dec = ps.Decoder(loglevel="ERROR")
    rng = rng_for(args.seed, "check")
    by_voice = defaultdict(list)
    for split in ("train", "dev"):
        for r in read_tsv(os.path.join(out, f"{split}_details.tsv")):
            if r["source"] not in ("digit_single",):
                by_voice[(r["engine"], r["speaker"])].append(r)
    per = defaultdict(lambda: [0, 0, 0])
    for (engine, voice), rows in sorted(by_voice.items()):
        for r in rng.sample(rows, min(args.check_per_voice, len(rows))):
            x, sr = sf.read(os.path.join(out, r["path"]), dtype="int16")
            dec.start_utt()
            dec.process_raw(x.tobytes(), full_utt=True)
            dec.end_utt()
            hyp = normalize(dec.hyp().hypstr if dec.hyp() else "").split()
            ref = r["text"].split()
            for key in (engine, voice):
                per[key][0] += _edit_distance(ref, hyp)
                per[key][1] += len(ref)
                per[key][2] += 1
    res = {k: {"clips": v[2], "wer": round(v[0] / max(1, v[1]), 3)} for k, v in sorted(per.items())}
    with open(os.path.join(out, "check_pocketsphinx.json"), "w") as f:
        json.dump(res, f, indent=1)
    for e in ("espeak", "flite", "festival"):
        if e in res:
            log(f"check: pocketsphinx WER on {e}: {res[e]['wer']:.3f} ({res[e]['clips']} clips)")
    worst = sorted(((v["wer"], k) for k, v in res.items() if k not in ("espeak", "flite", "festival")), reverse=True)[:5]
    log(f"check: worst voices {worst}")


# ---------------------------------------------------------------------------------------------
def check_tools() -> None:
    missing = [t for t in ("espeak-ng", "flite", "text2wave", "bible") if not shutil.which(t)]
    if missing:
        die(f"missing programs {missing}: apt-get install espeak-ng flite festival festvox-kallpc16k "
            "festvox-kdlpc16k festvox-us-slt-hts bible-kjv wordnet-base dict-devil")
    for name in ("rms", "slt", "awb", "kal16", "kal"):
        if name not in subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split():
            die(f"flite voice {name} not available")
    voicedirs = {v: any(os.path.isdir(os.path.join(d, v)) for d in
                        ("/usr/share/festival/voices/english", "/usr/share/festival/voices/us"))
                 for v in FESTIVAL_VOICES}
    if not all(voicedirs.values()):
        die(f"Festival voices missing: {[v for v, ok in voicedirs.items() if not ok]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("out_dir")
    ap.add_argument("--cathy-dir", required=True, help="folder with the Cathy train.tsv and dev.tsv")
    ap.add_argument("--hours", type=float, default=8.0, help="hours of train audio (default 8)")
    ap.add_argument("--dev-minutes", type=float, default=25.0, help="minutes of dev audio (default 25)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--jobs", type=int, default=2, help="parallel synthesis workers (default 2)")
    ap.add_argument("--lm-sentences", type=int, default=None,
                    help="sentences to sample from the LM (default: enough for --hours)")
    ap.add_argument("--stage", default="all", choices=["all", "text", "plan", "synth", "manifest", "check"])
    ap.add_argument("--check-per-voice", type=int, default=3, help="clips per voice for the check stage")
    args = ap.parse_args(argv)
    if args.hours <= 0 or args.dev_minutes <= 0:
        die("--hours and --dev-minutes must be positive")
    if args.lm_sentences is None:
        n_plan = (args.hours * 3600 / EST_SECONDS_PER_UTT * 1.4 + args.dev_minutes * 60 / EST_SECONDS_PER_UTT * 1.6)
        args.lm_sentences = int(math.ceil(n_plan * 0.75))  # lm share plus room to top up other sources
    check_tools()
    out = os.path.abspath(args.out_dir)
    os.makedirs(out, exist_ok=True)
    stages = ["text", "plan", "synth", "manifest"] if args.stage == "all" else [args.stage]
    fns = {"text": stage_text, "plan": stage_plan, "synth": stage_synth, "manifest": stage_manifest, "check": stage_check}
    for s in stages:
        t0 = time.time()
        fns[s](args, out)
        log(f"stage {s}: {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
