#!/usr/bin/env python3
"""Prepare speechocean762 (non-native English: Mandarin-L1 adults and children reading short
sentences; free for commercial and non-commercial use) for `asr train`.

    python recipes/speechocean762/prepare.py CORPUS_DIR OUT_DIR [--dev-speakers 10]

CORPUS_DIR is either a folder with `manifest.tsv` (`id path seconds speaker text`),
`speakers.tsv` (`speaker gender age`) and `audio/` (../shared/data/speechocean762 here: the
official training part), or a clone of github.com/jimbozhang/speechocean762 (Kaldi layout:
`train/{wav.scp,text,spk2gender,spk2age}` and `WAVE/SPEAKERxxxx/*.WAV`; OpenSLR SLR101 is the
same). The texts are the prompts the learners were given (upper case); some readers skipped or
mispronounced words, which stays in the labels. Dev is --dev-speakers speakers spread over
gender and child/adult (age < 16), the rest is train. Stages:
  1  manifests -> OUT_DIR/{train,dev}.tsv
"""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr and recipes

from asr.data import ManifestReport, Utterance  # noqa: E402
from asr.text import normalize  # noqa: E402
from recipes.common import (RecipeError, Stages, checked, parser, pick_dev_speakers, read_corpus_manifest,  # noqa: E402
                            report_skips, run_main, write_train_dev)


def read_speakers(path: Path) -> dict[str, tuple[str, int]]:
    """speaker -> (gender, age) from speakers.tsv, or {} where there is none."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {r["speaker"]: (r.get("gender", ""), int(r.get("age") or 0)) for r in csv.DictReader(f, delimiter="\t")}


def read_kaldi(root: Path, report: ManifestReport) -> tuple[list[Utterance], dict]:
    """The training part of the corpus's own Kaldi-style layout."""
    part = root / "train"
    def table(name):
        path = part / name
        if not path.is_file():
            raise RecipeError(f"{path}: no such file (is {root} speechocean762?)")
        return dict(line.split(maxsplit=1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    wavs, texts = table("wav.scp"), table("text")
    utt2spk = table("utt2spk") if (part / "utt2spk").is_file() else {u: u[:4] for u in wavs}
    genders = table("spk2gender") if (part / "spk2gender").is_file() else {}
    ages = table("spk2age") if (part / "spk2age").is_file() else {}
    utts = []
    for uid, rel in sorted(wavs.items()):
        words = normalize(texts.get(uid, ""))
        if not words:
            report.skip("empty transcript", uid)
            continue
        speaker = utt2spk.get(uid, "").strip()
        utts.append(Utterance(uid, str((root / rel.strip()).resolve()), 0.0, words, speaker))
    good = checked(utts, report)  # fills in the durations from the headers it reads
    report.read += len(good)
    speakers = {s: (genders.get(s, "").strip(), int(ages.get(s, "0").strip() or 0)) for s in {u.speaker for u in good}}
    return good, speakers


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dev-speakers", type=int, default=10, help="speakers held out for dev (default: 10)")
    args = p.parse_args(argv)
    stages = Stages.from_args(args)

    def prepare():
        report = ManifestReport()
        if (args.corpus_dir / "manifest.tsv").is_file():
            utts = read_corpus_manifest(args.corpus_dir, report, normalize, "speechocean762")
            speakers = read_speakers(args.corpus_dir / "speakers.tsv")
        else:
            utts, speakers = read_kaldi(args.corpus_dir, report)

        def group(s):
            gender, age = speakers.get(s, ("", 0))
            return f"{gender}-{'child' if 0 < age < 16 else 'adult'}"
        dev = pick_dev_speakers({u.speaker for u in utts}, args.dev_speakers, group)
        write_train_dev(utts, lambda u: u.speaker in dev, args.out_dir)
        report_skips(report, "speechocean762")

    stages.run(1, "manifests", prepare)


if __name__ == "__main__":
    sys.exit(run_main(main))
