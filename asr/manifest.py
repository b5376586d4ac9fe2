"""Manifests: the list of audio files and their transcripts that training, `asr evaluate` and
`asr tune-lm` read, without torch (the commands that score a model need no training framework).

A manifest is a TSV file with a header row naming at least `path` and `text` (optionally
`id`, `seconds` or `duration`, `speaker`; this is the format of ../shared/data) or a JSON
Lines file with the same keys. Relative paths are relative to the manifest's folder.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field

from .audio import AudioError, info
from .text import normalize

log = logging.getLogger("asr.data")  # the name `asr evaluate` shows skipped rows under (cli_measure)

MANIFEST_COLUMNS = ["id", "path", "seconds", "speaker", "text"]


@dataclass
class Utterance:
    id: str
    path: str  # absolute
    seconds: float
    text: str  # normalised
    speaker: str = ""
    written: str = ""  # the text as the manifest writes it (punctuation and capitals, where it has them)


@dataclass
class ManifestReport:
    """What reading a manifest skipped, and why."""
    read: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        log.warning("skipping %s: %s", where, reason)


def _rows(path: str):
    with open(path, newline="", encoding="utf-8") as f:
        if path.endswith((".jsonl", ".json")):
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield i, json.loads(line)
                    except json.JSONDecodeError as err:
                        yield i, {"__error__": f"bad JSON ({err.msg})"}
            return
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "text"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: manifest header lacks column(s) {sorted(missing)}")
        for i, row in enumerate(reader, 2):
            yield i, row


def read_manifest(path: str | os.PathLike, check_audio: bool = False,
                  report: ManifestReport | None = None, untranscribed: bool = False) -> list[Utterance]:
    """Read a TSV or JSONL manifest. Rows with an empty transcript (unless untranscribed=True:
    audio for distillation, asr/distill.py), a missing file (or, with check_audio, unreadable
    audio) are reported and skipped, never fatal."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not a manifest; {MANIFEST_FORMAT}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such manifest")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: cannot read the manifest (permission denied)")
    report = report if report is not None else ManifestReport()
    try:
        info(path)
    except AudioError:
        pass  # not audio: as it should be
    else:
        raise ValueError(f"{path}: is an audio file, not a manifest; {MANIFEST_FORMAT}")
    try:
        return _read_rows(path, check_audio, report, untranscribed)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a manifest (not UTF-8 text); {MANIFEST_FORMAT}") from None
    except OSError as err:  # unreadable after all (root squash, a vanished mount ...): one line, not [Errno N]
        reason = (err.strerror or type(err).__name__).lower()
        raise OSError(f"{path}: cannot read the manifest ({reason})") from None


MANIFEST_FORMAT = ("a manifest is a TSV file with a header naming `path` and `text` (a row per audio file and its "
                   "transcript), or JSON Lines")


def _read_rows(path: str, check_audio: bool, report: ManifestReport, untranscribed: bool = False) -> list[Utterance]:
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for line, row in _rows(path):
        where = f"{path}:{line}"
        if "__error__" in row:
            report.skip(row["__error__"], where)
            continue
        audio = row.get("path") or row.get("audio_filepath") or ""
        if not audio:
            report.skip("no audio path", where)
            continue
        audio = audio if os.path.isabs(audio) else os.path.join(base, audio)
        text = normalize(str(row.get("text") or ""))
        if not text and not untranscribed:
            report.skip("empty transcript", where)
            continue
        if os.path.isdir(audio):
            report.skip("names a folder, not an audio file", f"{where} ({audio})")
            continue
        if not os.path.isfile(audio):
            report.skip("audio file missing", f"{where} ({audio})")
            continue
        seconds = row.get("seconds") or row.get("duration")
        try:
            seconds = float(seconds) if seconds not in (None, "") else None
            if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(seconds)
            if seconds is None or check_audio:
                meta = info(audio)
                seconds = meta.frames / meta.samplerate
                if meta.frames == 0:
                    raise AudioError(audio, "contains no audio")
        except (ValueError, AudioError) as err:
            report.skip(f"unreadable audio ({err})" if isinstance(err, AudioError) else "bad duration", where)
            continue
        uid = str(row.get("id") or os.path.splitext(os.path.basename(audio))[0])
        out.append(Utterance(uid, audio, seconds, text, str(row.get("speaker") or ""), str(row.get("text"))))
        report.read += 1
    return out


def write_manifest(utterances: list[Utterance], path: str | os.PathLike) -> None:
    """Write a TSV manifest (absolute paths) in the format read_manifest reads."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(MANIFEST_COLUMNS)
        for u in utterances:
            w.writerow([u.id, u.path, f"{u.seconds:.3f}", u.speaker, u.text])
