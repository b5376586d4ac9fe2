"""Transcript writers in whisper's formats and conventions: txt, json, srt, vtt, tsv."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `asr transcribe --help` needs FORMATS, not torch
    from .decoding import Result, Segment

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def format_timestamp(seconds: float, decimal: str = ".", always_hours: bool = False) -> str:
    """3.5 -> '00:03.500' (or '00:00:03.500' with hours); never negative."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def subtitle_lines(result: Result, word_level: bool = False) -> list[Segment]:
    """Cues for subtitles: the segments, or one cue per word with word_level."""
    from .decoding import Segment
    if word_level:
        return [Segment(w.start, w.end, w.word, [w]) for w in result.words]
    return result.segments


def to_txt(result: Result, **_) -> str:
    return "".join(s.text + "\n" for s in result.segments) if result.segments else ""


def to_json(result: Result, **_) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False) + "\n"


def to_srt(result: Result, word_level: bool = False) -> str:
    out = []
    for i, s in enumerate(subtitle_lines(result, word_level), 1):
        out.append(f"{i}\n{format_timestamp(s.start, ',', True)} --> {format_timestamp(s.end, ',', True)}\n{s.text}\n")
    return "\n".join(out)


def to_vtt(result: Result, word_level: bool = False) -> str:
    out = ["WEBVTT\n"]
    for s in subtitle_lines(result, word_level):
        out.append(f"{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text}\n")
    return "\n".join(out)


def to_tsv(result: Result, word_level: bool = False) -> str:
    """Whisper's TSV: start and end in integer milliseconds."""
    rows = ["start\tend\ttext"]
    for s in subtitle_lines(result, word_level):
        rows.append(f"{round(1000 * s.start)}\t{round(1000 * s.end)}\t{s.text.replace(chr(9), ' ')}")
    return "\n".join(rows) + "\n"


WRITERS = {"txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}


def output_name(audio_path: str | os.PathLike, fmt: str) -> str:
    """clip.flac -> clip.json, as whisper names its outputs."""
    return Path(audio_path).stem + "." + fmt


def write_result(result: Result, audio_path: str | os.PathLike, output_dir: str | os.PathLike,
                 formats: list[str], word_level: bool = False) -> list[Path]:
    """Write each format next to the others in output_dir; returns the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = output_dir / output_name(audio_path, fmt)
        path.write_text(WRITERS[fmt](result, word_level=word_level), encoding="utf-8")
        paths.append(path)
    return paths
