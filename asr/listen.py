"""Live transcription of a microphone: partial text redrawn in place, a final line per utterance.

`transcribe_live` drives any source of 16 kHz blocks through one endpointed stream and tells a
display what happened; the displays are the three output forms of `asr listen`:

    TerminalDisplay   partial text redrawn in place on a terminal, each utterance a final line
    PlainDisplay      final lines only (stdout is a file or a pipe)
    JsonDisplay       one JSON object per line: {"type": "partial", "text"} when the partial
                      text changes, {"type": "final", "start", "end", "text", "words"} per utterance
"""
from __future__ import annotations

import json
import shutil
import signal
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

import numpy as np

from .decoding import Result, Segment
from .streaming import Stream


class PlainDisplay:
    def __init__(self, out: TextIO = sys.stdout):
        self.out = out

    def partial(self, text: str) -> None:
        pass

    def final(self, segment: Segment) -> None:
        if segment.text:
            self.out.write(segment.text + "\n")
            self.out.flush()

    def note(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


class TerminalDisplay(PlainDisplay):
    """Redraws the partial text on the current line (its tail, if wider than the terminal)."""

    def __init__(self, out: TextIO = sys.stdout):
        super().__init__(out)
        self.shown = ""

    def _draw(self, text: str) -> None:
        width = max(10, shutil.get_terminal_size().columns - 1)
        if len(text) > width:
            text = "…" + text[-(width - 1):]
        self.out.write("\r\x1b[K" + text)
        self.out.flush()

    def partial(self, text: str) -> None:
        if text != self.shown:
            self._draw(text)
            self.shown = text

    def final(self, segment: Segment) -> None:
        self.out.write("\r\x1b[K" + (segment.text + "\n" if segment.text else ""))
        self.out.flush()
        self.shown = ""

    def note(self, message: str) -> None:
        self.out.write("\r\x1b[K")
        self.out.flush()
        print(message, file=sys.stderr, flush=True)
        self._draw(self.shown)


class JsonDisplay(PlainDisplay):
    def __init__(self, out: TextIO = sys.stdout):
        super().__init__(out)
        self.shown = ""

    def _emit(self, obj: dict) -> None:
        self.out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.out.flush()

    def partial(self, text: str) -> None:
        if text != self.shown:
            self._emit({"type": "partial", "text": text})
            self.shown = text

    def final(self, segment: Segment) -> None:
        if segment.text:
            self._emit({"type": "final", **segment.to_dict()})
        self.shown = ""


def display_for(fmt: str, out: TextIO = sys.stdout) -> PlainDisplay:
    """json -> JsonDisplay; text -> TerminalDisplay on a terminal, else PlainDisplay."""
    if fmt == "json":
        return JsonDisplay(out)
    return TerminalDisplay(out) if out.isatty() else PlainDisplay(out)


def transcribe_live(stream: Stream, blocks: Iterable[np.ndarray], display: PlainDisplay,
                    tail: Callable[[], np.ndarray] | None = None, punctuator=None) -> Result:
    """Feed blocks to an endpointed stream until they end; a final line per endpoint. At the end
    (or on an error from the source, which is raised after) the stream is finished and its last
    segment shown as a last line. Returns the whole transcript. punctuator: each final line is
    punctuated with it (asr.punctuation; partial text stays raw)."""
    from .punctuation import punctuate_segment
    words = []
    punctuate = (lambda s: punctuate_segment(s, punctuator)) if punctuator else (lambda s: s)
    try:
        for block in blocks:
            partial = stream.accept(block)
            ended = False
            while (segment := stream.endpoint()) is not None:
                segment = punctuate(segment)
                display.final(segment)
                words += segment.words
                ended = True
            if not ended:
                display.partial(partial)
    finally:
        if tail is not None:
            stream.feed(tail())
        last = punctuate(stream.finish())
        display.final(last)
        words += last.words
    return Result.from_words(words, stream.seconds)


class StopOnSignal:
    """While active, the first SIGINT/SIGTERM calls stop() (a clean finish); a second SIGINT
    interrupts as usual."""

    def __init__(self, stop: Callable[[], None]):
        self.stop = stop
        self._saved = {}

    def _handler(self, signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.stop()

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
