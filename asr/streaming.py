"""Streaming recognition: one loaded model, many streams.

A `Stream` holds what one audio source needs between chunks: the feature extractor's sample
tail, feature frames not yet given to the model (the model steps in multiples of its
subsampling factor), the model's `StreamState` (conv context, GRU hidden state, lookahead
buffer), its decoder and, for live audio, its endpointer. The `Recognizer` owns the model
and steps any set of streams through it together, one batched call per step, which gives
exactly what stepping them one by one gives.

Live use (a microphone, a server connection): feed chunks, take the segments that endpoints
ended after each, else show the partial text; at the end, finish the stream for the last segment.

    rec = Recognizer(model, endpoint=EndpointConfig())      # load once
    stream = rec.stream()                                   # one per audio source
    for chunk in chunks:                                    # 16 kHz mono float32
        partial = stream.accept(chunk)
        segment = stream.endpoint()                         # a Segment when an utterance ended
        print(segment.text if segment else partial)
    print(stream.finish().text)                             # the last segment

A segment ends in one way, `Stream.end_segment()`, which the endpoint rules call during a step
(`endpoint()` hands their segments out) and a caller may call itself; a stream ends in one way,
`Stream.finish()`. A stream keeps no transcript: each segment is handed out once.

Many sources: `feed()` each stream its chunk, then one `rec.step(streams)` runs them all.

The model is the runtime's (runtime.Model: ONNX Runtime, numpy arrays); a torch AcousticModel
given instead is converted to it first (that needs torch and onnx).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .audio import FRAME_SECONDS, SAMPLE_RATE, as_samples
from .beam import NO_LM, decoder_for
from .decoding import Decoder, Segment, Word
from .endpoint import EndpointConfig, Endpointer
from .export import as_runtime
from .logmel import StreamingLogMel
from .runtime import Model, StreamState
from .text import BLANK_ID


class Recognizer:
    """Serves streams from one unidirectional model.

    decoder: a callable making a fresh Decoder for each stream (`beam.decoder_for`; greedy by default).
    endpoint: the endpointing rules given to new streams (None: no endpointing).
    """

    def __init__(self, model: Model, decoder: Callable[[], Decoder] | None = None,
                 endpoint: EndpointConfig | None = None):
        if not model.cfg.streaming:
            raise ValueError("this model is bidirectional and cannot stream; use a unidirectional model "
                             "(or transcribe files without --stream)")
        self.model = model = as_runtime(model)
        self.frame_seconds = FRAME_SECONDS * model.cfg.subsampling  # seconds per output frame
        self.make_decoder = decoder or decoder_for(model, lm=NO_LM)
        self.endpoint = endpoint

    def stream(self, endpoint: EndpointConfig | None | bool = True) -> "Stream":
        """A new stream; endpoint=True takes the recogniser's rules, None/False disables them."""
        return Stream(self, self.endpoint if endpoint is True else (endpoint or None))

    def step(self, streams: list["Stream"], final: bool = False, max_frames: int | None = None) -> None:
        """Run the model over every stream's ready frames in one batched call.

        Not final: each stream gives its pending frames in whole multiples of the
        subsampling factor, at most max_frames (a multiple of it) when given, so that one
        stream with a long backlog does not pad everyone's batch. Final: all pending frames,
        and the lookahead is flushed; a flushed stream takes no more audio. The segments that
        endpoint rules end during the step wait in their stream for `Stream.endpoint()`.
        """
        sub = self.model.cfg.subsampling
        if max_frames is not None and (max_frames < sub or max_frames % sub):
            raise ValueError(f"max_frames must be a positive multiple of {sub}")
        streams = [s for s in streams if not s.flushed]
        self.featurize(streams)
        work = []
        for s in streams:
            n = len(s.pending) if final else len(s.pending) - len(s.pending) % sub
            if max_frames is not None and not final:
                n = min(n, max_frames)
            if n > 0 or final:
                work.append((s, n))
            if final:
                s.flushed = True
        if work:
            self._emit(work, *self._infer(work, final), final)
        if not final:  # rules on the signal level: checked once a step, after it (frame-exact ones: in _emit)
            for s in streams:
                if s.endpointer is not None and not s.endpointer.frame_exact and s.endpointer.rule() is not None:
                    s.ended.append(s.end_segment())

    def _infer(self, work: list[tuple["Stream", int]], final: bool) -> tuple[np.ndarray, list[int]]:
        """One batched model call over the first n pending frames of each (stream, n): the
        log-probs (B, U', V) and each stream's count of new output frames."""
        lengths = np.array([n for _, n in work], np.int64)
        if len(work) == 1:
            s, n = work[0]
            feats, state = s.pending[None, :n], s.state
        else:
            feats = np.zeros((len(work), int(lengths.max()), self.model.cfg.n_mels), np.float32)  # (B, T, 80)
            for i, (s, n) in enumerate(work):
                feats[i, :n] = s.pending[:n]
            state = StreamState.stack([s.state for s, _ in work])
        log_probs, counts, state = self.model.infer(feats, lengths, state, final=final)
        states = [state] if len(work) == 1 else state.unbind()
        for i, (s, n) in enumerate(work):
            s.pending = s.pending[n:]
            s.state = states[i]
        return log_probs, counts.tolist()

    def featurize(self, streams: list["Stream"]) -> None:
        """Turn the analysis windows fed to these streams into features, all in one call."""
        todo = [s for s in streams if s.windows]
        if not todo:
            return
        windows = [w for s in todo for w in s.windows]
        feats = self.model.log_mel_frames(np.concatenate(windows) if len(windows) > 1 else windows[0])
        i = 0
        for s in todo:
            k = sum(len(w) for w in s.windows)
            s.pending = np.concatenate([s.pending, feats[i:i + k]]) if len(s.pending) else feats[i:i + k]
            s.windows = []
            i += k

    @staticmethod
    def _emit(work, log_probs: np.ndarray, counts: list[int], final: bool) -> None:
        """The newly emitted frames go to each stream's decoder and endpointer. The silence
        decisions of endpointers on the default (argmax) criterion are taken for all at once.

        Where silence is judged by the model alone (the default), the rules are checked at
        every frame and a segment ends exactly at the frame where one fires, however the audio
        was chunked: `asr transcribe`, a server client and a microphone cut a recording into
        the same segments, so a beam/LM decoder (which searches each segment whole) gives them
        the same words. The final flush (the lookahead frames) ends no segment."""
        silent = None
        if any(s.endpointer is not None and s.endpointer.by_argmax for s, _ in work):
            silent = (log_probs.argmax(-1) == BLANK_ID).tolist()  # (B, U')
        for i, (s, _) in enumerate(work):
            lp = log_probs[i, : counts[i]]
            ep = s.endpointer
            if ep is None:
                s._decode(lp)
                continue
            flags = silent[i][: counts[i]] if silent is not None and ep.by_argmax else None
            if not ep.frame_exact:
                s._decode(lp)
                if flags is not None:
                    ep.accept_silent_frames(flags)
                else:
                    ep.accept_log_probs(lp)
                continue
            if flags is None:
                flags = ep.silent_frames(lp)
            while flags and not final:
                k = ep.frames_to_endpoint(flags)
                if k is None:
                    break
                s._decode(lp[:k])
                ep.accept_silent_frames(flags[:k])
                s.ended.append(s.end_segment())
                lp, flags = lp[k:], flags[k:]
            s._decode(lp)
            ep.accept_silent_frames(flags)


class Stream:
    """One audio source: feed() or accept() chunks of 16 kHz mono float samples.

    Segments: with endpoint rules, take the segments they ended with endpoint() after each step;
    end_segment() ends one where you know an utterance ended; finish() at the end flushes the
    model and gives the last segment (without endpoint rules, the whole stream). A stream keeps
    no transcript: each segment is handed out once, so a long-lived stream stays small.
    """

    def __init__(self, recognizer: Recognizer, endpoint: EndpointConfig | None = None):
        self.recognizer = recognizer
        self.features = StreamingLogMel(recognizer.model.fbank)
        self.windows: list[np.ndarray] = []  # analysis windows (k, N_FFT) fed but not yet turned into features
        self.pending = np.zeros((0, recognizer.model.cfg.n_mels), np.float32)  # (T, 80) features not yet stepped
        self.state = recognizer.model.init_state(1)
        self.decoder = recognizer.make_decoder()
        self.endpointer = Endpointer(endpoint, recognizer.frame_seconds) if endpoint else None
        self.samples_in = 0
        self.frames = 0  # model output frames decoded (the stream's clock)
        self.segment_start = 0.0  # seconds: where the current segment began
        self.ended: list[Segment] = []  # segments the endpoint rules ended, not yet taken by endpoint()
        self.flushed = False  # the model has had its final step
        self.finished = False  # ... and the decoder its last segment

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self.samples_in / SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> None:
        """Add 16 kHz samples without running the model (a Recognizer.step does that): float in
        [-1, 1], or int16/int32 PCM, mono (n,) or (samples, channels) (audio.as_samples converts them;
        AudioError for what it refuses)."""
        if self.flushed:
            raise RuntimeError("stream already finished")
        samples = as_samples(samples, "stream")
        self.samples_in += len(samples)
        if self.endpointer is not None:
            self.endpointer.accept_samples(samples)
        windows = self.features.take(samples)
        if len(windows):
            self.windows.append(windows)

    @property
    def backlog(self) -> int:
        """Feature frames fed but not yet through the model."""
        return len(self.pending) + sum(len(w) for w in self.windows)

    def accept(self, samples: np.ndarray) -> str:
        """Feed samples and step the model; returns the current partial text."""
        self.feed(samples)
        self.recognizer.step([self])
        return self.partial()

    def partial(self) -> str:
        """Text of the current (not yet ended) segment."""
        return self.decoder.partial()

    def endpoint(self) -> Segment | None:
        """The next segment that the endpoint rules ended, or None (always None without rules).
        Its text may be empty: silence alone also ends a segment. A step can end several: call
        until None. The rules end segments during the step (`end_segment`); this only hands
        them out, each once.

        Silence judged by the model (the default): a segment ends at the exact frame where a
        rule fires. By signal energy: the rules are checked after each step."""
        return self.ended.pop(0) if self.ended else None

    def end_segment(self) -> Segment:
        """End the current segment now and return it: the words of the frames the model has
        output so far (its lookahead holds back the last few of the audio fed), decoded in full
        (a beam/LM decoder searches the segment whole). The model state carries on, so later
        segments are recognised exactly as without the cut. Times are seconds from the stream's
        start; a segment without words spans the frames it covered."""
        start, end = self.segment_start, self.frames * self.recognizer.frame_seconds
        words = self.decoder.finalize()
        if self.endpointer is not None:
            self.endpointer.reset()
        self.segment_start = end
        return _segment(words, start, end)

    def finish(self) -> Segment:
        """Finish the stream: run the model over what is left (the lookahead's last frames) and
        end the last segment, returned; without endpoint rules, the whole stream (its text equals
        the offline pass's). The stream takes no more audio; another call gives an empty segment
        at its end."""
        if self.finished:
            return _segment([], self.seconds, self.seconds)
        self.recognizer.step([self], final=True)  # a no-op if a batched final step did it
        last = self.end_segment()
        self.finished = True
        return _segment(last.words, last.start, max(last.start, self.seconds))

    def _decode(self, log_probs: np.ndarray) -> None:
        """The model's next output frames (U, V) to the decoder."""
        self.decoder.update(log_probs)
        self.frames += len(log_probs)


def _segment(words: list[Word], start: float, end: float) -> Segment:
    """A segment of words; its times are the words' own, or [start, end] when it has none."""
    if words:
        start, end = words[0].start, words[-1].end
    return Segment(start, end, " ".join(w.word for w in words), words)
