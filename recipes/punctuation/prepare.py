#!/usr/bin/env python3
"""Punctuated English text for the punctuation-and-casing model, from freely licensed sources.

    python recipes/punctuation/prepare.py OUT_DIR --web SWORD_MODULE_DIR --jargon JARGON_TXT_GZ \
        [--prompts MANIFEST ...] [--exclude MANIFEST ...]

Sources (see README.md for their licences): the World English Bible (Debian `sword-text-web`,
public domain, a modern English translation with dialogue and questions), the Jargon File (Debian
`jargon-text`, public domain, 1990s-2000s prose) and, optionally, the punctuated prompts of speech
manifests (CMU ARCTIC prompts of Cathy, LJ Speech prompts: public domain). Every text that also
appears (normalised) in an --exclude manifest is dropped: the recogniser's dev sets are scored with
this model, so none of their sentences may be trained on.

Writes OUT_DIR/{train,dev,test}.txt: one paragraph per line, `source<TAB>text`; paragraphs go to
dev (2 %) and test (3 %) by a stable hash of their text, so a re-run gives the same split.
OUT_DIR/stats.json counts paragraphs and words per source and split.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from asr.text import normalize  # noqa: E402


def web_paragraphs(module_dir: str):
    """Paragraphs of a SWORD zText module (OSIS markup): each block is one book, compressed with
    zlib, indexed by the .bzs file (offset, size, uncompressed size: three little-endian uint32)."""
    for testament in ("ot", "nt"):
        index = open(os.path.join(module_dir, f"{testament}.bzs"), "rb").read()
        data = open(os.path.join(module_dir, f"{testament}.bzz"), "rb").read()
        for k in range(len(index) // 12):
            offset, size, _ = struct.unpack_from("<III", index, 12 * k)
            if not size:
                continue
            osis = zlib.decompress(data[offset:offset + size]).decode("utf-8")
            osis = re.sub(r"<note\b.*?</note>", " ", osis, flags=re.S)
            osis = re.sub(r"<title\b.*?</title>", "\n", osis, flags=re.S)
            osis = re.sub(r"<(div|p|lg|l|chapter)\b[^>]*>", "\n", osis)  # paragraphs, poetry lines, chapters
            for para in re.sub(r"<[^>]+>", "", osis).split("\n"):
                yield " ".join(para.split())


def jargon_paragraphs(path: str):
    """The prose paragraphs of the Jargon File's text edition (entry heads, etymologies in [...],
    numbered senses' numbers and {cross-reference} braces are dropped)."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") if path.endswith(".gz") else open(path) as f:
        text = f.read()
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if para.startswith(":") or len(para.split()) < 8:
            continue
        para = re.sub(r"^\[[^\]]*\]\s*", "", para)
        para = re.sub(r"^\d+\.\s+", "", para)
        yield para.replace("{", "").replace("}", "")


def manifest_texts(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f, delimiter="\t")]


_ABBREV_INSIDE = re.compile(r"\b\w+\.\s+[a-z]|\b[a-zA-Z]\.[a-zA-Z]\.|[<>{}\[\]|\\/=_*#@$]|\d")


def usable(para: str) -> bool:
    """Prose worth learning from: at least 4 words, ends with a mark, no abbreviations with inner
    periods (e.g., i.e., usu. before a lower-case word), no markup or digits (spelled out here, they
    would teach the model numbers written as nobody speaks them)."""
    return len(para.split()) >= 4 and para[-1] in ".?!\"”’)" and not _ABBREV_INSIDE.search(para)


def split_of(para: str) -> str:
    h = zlib.crc32(para.encode()) % 100
    return "dev" if h < 2 else "test" if h < 5 else "train"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--web", required=True, metavar="DIR", help="the SWORD module folder of the World English Bible")
    ap.add_argument("--jargon", required=True, metavar="FILE", help="jargon.txt.gz of Debian's jargon-text")
    ap.add_argument("--prompts", nargs="*", default=[], metavar="MANIFEST", help="manifests of punctuated prompts")
    ap.add_argument("--exclude", nargs="*", default=[], metavar="MANIFEST", help="manifests whose texts are held out")
    args = ap.parse_args(argv)
    held_out = {normalize(t) for m in args.exclude for t in manifest_texts(m)}
    sources = {"web": web_paragraphs(args.web), "jargon": jargon_paragraphs(args.jargon),
               "prompts": (t for m in args.prompts for t in manifest_texts(m))}
    os.makedirs(args.out_dir, exist_ok=True)
    files = {s: open(os.path.join(args.out_dir, f"{s}.txt"), "w", encoding="utf-8") for s in ("train", "dev", "test")}
    stats: dict = {"held_out_texts": len(held_out), "dropped_held_out": 0}
    seen = set()
    for source, paras in sources.items():
        for para in paras:
            para = para.replace("\t", " ").strip()
            norm = normalize(para)
            if not usable(para) or norm in seen:
                continue
            if norm in held_out:
                stats["dropped_held_out"] += 1
                continue
            seen.add(norm)
            split = "train" if source == "prompts" else split_of(para)
            files[split].write(f"{source}\t{para}\n")
            entry = stats.setdefault(f"{source}/{split}", {"paragraphs": 0, "words": 0})
            entry["paragraphs"] += 1
            entry["words"] += len(norm.split())
    for f in files.values():
        f.close()
    with open(os.path.join(args.out_dir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
