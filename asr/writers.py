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


WORD_HOLD = 1.0  # a word cue stays up until the next word, or this many seconds after its end at most


def word_cues(result: Result) -> list[Segment]:
    """One cue per word, lasting until the next word starts (at most WORD_HOLD s past its end), so
    word-by-word subtitles do not flicker between words."""
    from .decoding import Segment
    words = result.words
    cues = []
    for i, w in enumerate(words):
        end = w.end
        if i + 1 < len(words):
            end = max(w.end, min(words[i + 1].start, w.end + WORD_HOLD))
        cues.append(Segment(w.start, end, w.word, [w]))
    return cues


def subtitle_lines(result: Result, word_level: bool = False, max_line_width: int | None = None,
                   max_line_count: int | None = None, max_words_per_line: int | None = None) -> list[Segment]:
    """Cues for subtitles: the segments, or one cue per word with word_level; a cue's text may hold
    several lines (joined by newlines) with whisper's options: max_line_width characters a line,
    max_words_per_line words a line, max_line_count lines a cue (a segment's further lines go to
    further cues, timed by their words)."""
    from .decoding import Segment
    if word_level:
        return word_cues(result)
    if not (max_line_width or max_line_count or max_words_per_line):
        return result.segments
    cues = []
    for seg in result.segments:
        lines: list[list] = []
        for w in seg.words:
            line = lines[-1] if lines else None
            if line is not None and not (max_line_width and len(" ".join(x.word for x in line + [w])) > max_line_width) \
                    and not (max_words_per_line and len(line) >= max_words_per_line):
                line.append(w)
                continue
            if max_line_count and len(lines) == max_line_count:
                cues.append(_cue(lines))
                lines = []
            lines.append([w])
        if lines:
            cues.append(_cue(lines))
    return cues or [Segment(s.start, s.end, s.text, s.words) for s in result.segments]


def _cue(lines: list[list]) -> Segment:
    from .decoding import Segment
    words = [w for line in lines for w in line]
    return Segment(words[0].start, words[-1].end, "\n".join(" ".join(w.word for w in line) for line in lines), words)


def to_txt(result: Result, **_) -> str:
    return "".join(s.text + "\n" for s in result.segments) if result.segments else ""


def to_json(result: Result, **_) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False) + "\n"


def to_srt(result: Result, **options) -> str:
    """SubRip; options: subtitle_lines's."""
    out = []
    for i, s in enumerate(subtitle_lines(result, **options), 1):
        out.append(f"{i}\n{format_timestamp(s.start, ',', True)} --> {format_timestamp(s.end, ',', True)}\n{s.text}\n")
    return "\n".join(out)


def to_vtt(result: Result, **options) -> str:
    """WebVTT; options: subtitle_lines's."""
    out = ["WEBVTT\n"]
    for s in subtitle_lines(result, **options):
        out.append(f"{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text}\n")
    return "\n".join(out)


def to_tsv(result: Result, **options) -> str:
    """Whisper's TSV: start and end in integer milliseconds (a cue's lines joined by spaces)."""
    rows = ["start\tend\ttext"]
    for s in subtitle_lines(result, **options):
        rows.append(f"{round(1000 * s.start)}\t{round(1000 * s.end)}\t{s.text.replace(chr(9), ' ').replace(chr(10), ' ')}")
    return "\n".join(rows) + "\n"


WRITERS = {"txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}


def output_name(audio_path: str | os.PathLike, fmt: str) -> str:
    """clip.flac -> clip.json, as whisper names its outputs."""
    return Path(audio_path).stem + "." + fmt


def write_result(result: Result, audio_path: str | os.PathLike, output_dir: str | os.PathLike,
                 formats: list[str], **options) -> list[Path]:
    """Write each format next to the others in output_dir; returns the paths written. options:
    subtitle_lines's (word_level, max_line_width, ...)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = output_dir / output_name(audio_path, fmt)
        path.write_text(WRITERS[fmt](result, **options), encoding="utf-8")
        paths.append(path)
    return paths
