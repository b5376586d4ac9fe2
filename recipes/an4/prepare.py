#!/usr/bin/env python3
"""Prepare CMU AN4 (census and alphanumeric: spelled letters, digits, words; about an hour)
for `asr train`.

    python recipes/an4/prepare.py CORPUS_DIR OUT_DIR [--download] [--dev-speakers 8]

CORPUS_DIR is either
- a folder holding `manifest.tsv` (`id path seconds speaker text`) and `audio/`, AN4's training
  part as ../shared/data/an4 holds it (Ogg Opus; speakers `an4_<name>`; no test part), or
- AN4 as CMU distributes it: an4_sphere.tar.gz (www.speech.cs.cmu.edu/databases/an4/),
  unpacked to an4/etc/an4_{train,test}.transcription and
  an4/wav/{an4_clstk,an4test_clstk}/<speaker>/<id>.sph; CORPUS_DIR is that an4 folder or the
  folder holding it, and --download fetches the archive (64 MB) with lhotse's resumable
  downloader. Lines of the transcription files look like `<s> RUBOUT G M E F THREE NINE </s> (an251-fash-b)`.
  The SPH files (uncompressed 16 kHz 16-bit PCM) are used where they are: asr reads them
  through libsndfile. The other distribution, an4_raw.bigendian.tar.gz (headerless .raw files,
  same layout), is converted here to FLAC under OUT_DIR/audio/.
AN4 spells letters as capitals (`X I SIXTY ONE`): they become the one-letter words `x i sixty
one`, which is how the model is taught to write a spelled letter. AN4 has train and test sets
only: dev is --dev-speakers training speakers (half women, half men: the speaker name's first
letter), the same ones from either layout, so that dev voices are unheard in training. Stages:
  0  download (only with --download)
  1  manifests -> OUT_DIR/{train,dev}.tsv (and test.tsv from CMU's layout)
"""
import re
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.data import ManifestReport, Utterance  # noqa: E402
from asr.text import normalize  # noqa: E402
from recipes.common import (RecipeError, Stages, checked, fetch, locate, parser, pick_dev_speakers,  # noqa: E402
                            read_corpus_manifest, report_skips, run_main, write_split, write_train_dev)

URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
SETS = {"train": ("an4_train.transcription", "an4_clstk"), "test": ("an4_test.transcription", "an4test_clstk")}
LINE = re.compile(r"^(?P<words>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")
MARKUP = re.compile(r"</?s>|<[^>]*>|\[[^\]]*\]|\+\+[^+]*\+\+")  # <s> </s>, <sil>, [noise], ++noise++


def speaker_name(speaker: str) -> str:
    """fash from fash (CMU's layout) or an4_fash (../shared/data's)."""
    return speaker.removeprefix("an4_")


def dev_speakers(speakers, n: int) -> set[str]:
    """n training speakers held out for dev: half women (names starting with f), half men."""
    names = {speaker_name(s): s for s in speakers}
    return {names[s] for s in pick_dev_speakers(names, n, group=lambda s: s[:1])}


def an4_text(words: str) -> str:
    return normalize(MARKUP.sub(" ", words))


def read_set(root: Path, name: str, audio_out: Path, report: ManifestReport) -> list[Utterance]:
    transcription, wav_dir = SETS[name]
    path = root / "etc" / transcription
    if not path.is_file():
        raise RecipeError(f"{path}: no such file (is {root} the an4 folder?)")
    utts = []
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        m = LINE.match(line.strip())
        if not m or len(m["id"].split("-")) != 3:
            report.skip("not `<s> WORDS </s> (id)`", where)
            continue
        uid = m["id"]
        speaker = uid.split("-")[1]  # an251-fash-b: utterance an251 of speaker fash, b = close-talking mic
        text = an4_text(m["words"])
        if not text:
            report.skip("empty transcript", where)
            continue
        folder = root / "wav" / wav_dir / speaker
        audio = folder / f"{uid}.sph"
        if not audio.is_file() and (folder / f"{uid}.raw").is_file():
            audio = audio_out / name / speaker / f"{uid}.flac"
            if not audio.is_file():
                x, _ = sf.read(folder / f"{uid}.raw", format="RAW", subtype="PCM_16", endian="BIG",
                               samplerate=SAMPLE_RATE, channels=1, dtype="int16")
                audio.parent.mkdir(parents=True, exist_ok=True)
                tmp = audio.with_suffix(".tmp.flac")
                sf.write(tmp, x, SAMPLE_RATE, subtype="PCM_16")
                tmp.replace(audio)
        if not audio.is_file():
            report.skip("audio file missing", f"{where} ({folder / uid}.sph)")
            continue
        utts.append(Utterance(uid, str(audio.resolve()), 0.0, text, speaker))
    good = checked(utts, report)  # reads each header once, for the check and the duration
    report.read += len(good)
    return good


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dev-speakers", type=int, default=8, help="training speakers held out for dev (default: 8)")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)

    def prepare():
        report = ManifestReport()
        if (args.corpus_dir / "manifest.tsv").is_file():
            train, test = read_corpus_manifest(args.corpus_dir, report, an4_text, "AN4"), None
        else:
            root = locate(args.corpus_dir, ["an4"], lambda d: (d / "etc").is_dir() and (d / "wav").is_dir(), "AN4",
                          "give --download to fetch it, or a folder with manifest.tsv")
            train = read_set(root, "train", args.out_dir / "audio", report)
            test = read_set(root, "test", args.out_dir / "audio", report)
        dev = dev_speakers({u.speaker for u in train}, args.dev_speakers)
        write_train_dev(train, lambda u: u.speaker in dev, args.out_dir)
        if test is not None:
            write_split(test, args.out_dir / "test.tsv")
        report_skips(report, "an4")

    stages.run(0, "download", lambda: fetch(URL, args.corpus_dir), enabled=args.download)
    stages.run(1, "manifests", prepare)


if __name__ == "__main__":
    sys.exit(run_main(main))
