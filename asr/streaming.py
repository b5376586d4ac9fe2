"""Streaming recognition: one loaded model, many streams.

A `Stream` holds what one audio source needs between chunks: the feature extractor's sample
tail, feature frames not yet given to the model (the model steps in multiples of its
subsampling factor), the model's `StreamState` (conv context, GRU hidden state, lookahead
buffer), and its decoder. The `Recognizer` owns the model and steps any set of streams
through it together, one batched call per step, which gives exactly what stepping them one
by one gives.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .audio import FRAME_SECONDS, SAMPLE_RATE, check_samples
from .decoding import Decoder, GreedyDecoder, Result, Word, segments_from_words, time_offset
from .features import StreamingLogMel
from .model import AcousticModel, StreamState


class Recognizer:
    """Serves streams from one unidirectional model.

    decoder: a callable making a fresh Decoder for each stream (greedy by default).
    """

    def __init__(self, model: AcousticModel, decoder: Callable[[], Decoder] | None = None):
        if not model.cfg.streaming:
            raise ValueError("this model is bidirectional and cannot stream; use a unidirectional model "
                             "(or transcribe files without --stream)")
        self.model = model.eval()
        self.frame_seconds = FRAME_SECONDS * model.cfg.subsampling  # seconds per output frame
        self.make_decoder = decoder or (lambda: GreedyDecoder(self.frame_seconds, time_offset(model)))

    def stream(self) -> "Stream":
        return Stream(self)

    @torch.inference_mode()
    def step(self, streams: list["Stream"], final: bool = False) -> None:
        """Run the model over every stream's ready frames in one batched call.

        Not final: each stream gives its pending frames in whole multiples of the
        subsampling factor. Final: all pending frames, and the lookahead is flushed.
        """
        sub = self.model.cfg.subsampling
        work = []
        for s in streams:
            n = len(s.pending) if final else len(s.pending) - len(s.pending) % sub
            if n > 0 or final:
                work.append((s, n))
        if not work:
            return
        lengths = torch.tensor([n for _, n in work])
        feats = torch.zeros(len(work), max(int(lengths.max()), 1), self.model.cfg.n_mels)
        for i, (s, n) in enumerate(work):
            feats[i, :n] = s.pending[:n]
        state = work[0][0].state if len(work) == 1 else StreamState.stack([s.state for s, _ in work])
        log_probs, counts, state = self.model.infer(feats, lengths, state, final=final)
        states = [state] if len(work) == 1 else state.unbind()
        for i, (s, n) in enumerate(work):
            s.pending = s.pending[n:]
            s.state = states[i]
            s.decoder.update(log_probs[i, : int(counts[i])])


class Stream:
    """One audio source. accept() chunks of 16 kHz mono float samples; finalize() at the end."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer = recognizer
        self.features = StreamingLogMel()
        self.pending = torch.zeros(0, recognizer.model.cfg.n_mels)  # (T, 80) not yet stepped
        self.state = recognizer.model.init_state(1)
        self.decoder = recognizer.make_decoder()
        self.samples_in = 0
        self.words: list[Word] = []  # finalized words of earlier segments
        self.finished = False

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self.samples_in / SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> None:
        """Add samples without running the model (a Recognizer.step does that)."""
        if self.finished:
            raise RuntimeError("stream already finalized")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(samples)):
            check_samples(samples, "stream")
        self.samples_in += len(samples)
        feats = self.features.accept(samples)
        if len(feats):
            self.pending = torch.cat([self.pending, feats]) if len(self.pending) else feats

    def accept(self, samples: np.ndarray) -> str:
        """Feed samples and step the model; returns the current partial text."""
        self.feed(samples)
        self.recognizer.step([self])
        return self.partial()

    def partial(self) -> str:
        """Text of the current (not yet finalized) segment."""
        return self.decoder.partial()

    def end_segment(self) -> list[Word]:
        """Close the current segment (an endpoint): its words, decoded in full. The model state
        carries on, so later segments are recognised exactly as without the cut."""
        words = self.decoder.finalize()
        self.words.extend(words)
        return words

    def finalize(self) -> Result:
        """Flush the model and decoder; the whole stream's result."""
        if not self.finished:
            self.recognizer.step([self], final=True)
            self.end_segment()
            self.finished = True
        return Result(" ".join(w.word for w in self.words), self.seconds, segments_from_words(self.words))

