"""Files to transcripts: the long-audio loop.

A unidirectional model runs through a file block by block with its state carried over, which
is exactly its whole-file pass in bounded memory. A bidirectional model cannot carry state
forward, so a long file is cut into windows of at most WINDOW_SECONDS at the quietest point
near each window's end, and each window is recognised whole.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np

from .audio import HOP_LENGTH, SAMPLE_RATE, as_samples, iter_blocks
from .beam import NO_LM, decoder_for
from .decoding import Decoder, Result, Word
from .endpoint import EndpointConfig
from .export import as_runtime
from .punctuation import Punctuator, bundled, punctuate_words
from .runtime import Model
from .streaming import Recognizer

WINDOW_SECONDS = 30.0  # longest window for a bidirectional model
SEARCH_SECONDS = 5.0  # a cut is placed at the quietest point in the window's last 5 s


def transcribe(model: Model, audio: str | os.PathLike | np.ndarray,
               decoder: Callable[[], Decoder] | str | None = None, chunk_ms: float | None = None,
               on_progress: Callable[[float], None] | None = None, endpoint: EndpointConfig | None = EndpointConfig(),
               punctuation: bool | Punctuator = True, on_words: Callable[[list[Word]], None] | None = None) -> Result:
    """Transcribe one audio file, or 16 kHz samples already in memory, as `asr transcribe` does: an
    array of float32/float64 in [-1, 1] or int16/int32 PCM (scaled as soundfile reads them), (n,) or
    (samples, channels) as soundfile returns it (channels averaged); other dtypes and shapes, NaN/Inf
    and integer PCM cast to float raise AudioError (a ValueError). Arrays are not resampled: resample
    others to 16 kHz first.

    decoder: factory of decoders (`beam.decoder_for`); default: what `asr transcribe` uses, a beam
    search with the model's own language model where its file comes with one (the bundled models
    do), else greedy; "greedy" for greedy decoding. punctuation: marks and capitals from the
    bundled punctuation model (asr.punctuation; or a Punctuator of your own), as `asr transcribe`
    writes them; False gives the recogniser's lower-case words. chunk_ms: feed the audio through a
    streaming recogniser in chunks of this many milliseconds, as a microphone would
    (unidirectional models only). on_progress(seconds): called as audio is consumed.
    endpoint: a unidirectional model's audio is cut into utterances at pauses by these rules
    (`asr listen`'s and `asr serve`'s defaults), exactly as a live stream is, whatever the
    chunking; a beam/LM decoder searches each utterance whole (with the earlier words as the
    LM's context), so the text equals what `asr serve` sends for this file. Greedy text does
    not depend on it. on_words(words): called with each utterance's (or window's) words as soon as
    they are final, before the rest is recognised, lower case (the HTTP API streams them). Raises
    AudioError for unusable audio. model: the runtime's (a torch
    AcousticModel is converted first).
    """
    model = as_runtime(model)
    decoder = decoder_for(model, lm=NO_LM) if decoder == "greedy" else decoder or decoder_for(model)
    if isinstance(audio, np.ndarray):
        blocks = iter([as_samples(audio)])
    else:
        blocks = iter_blocks(audio)
    if model.cfg.streaming:
        words, seconds = _transcribe_streaming(model, blocks, decoder, chunk_ms, on_progress, endpoint, on_words)
    elif chunk_ms:
        raise ValueError("a bidirectional model cannot stream; drop --stream or use a unidirectional model")
    else:
        words, seconds = _transcribe_windows(model, blocks, decoder, on_progress, on_words)
    punctuator = bundled() if punctuation is True else punctuation or None
    return Result.from_words(punctuate_words(words, punctuator) if punctuator else words, seconds)


def transcribe_array(model: Model, samples: np.ndarray, decoder: Callable[[], Decoder] | str | None = "greedy",
                     endpoint: EndpointConfig | None = EndpointConfig(), punctuation: bool | Punctuator = False) -> Result:
    """transcribe() of samples in memory, as the earlier name did it: greedy and without punctuation
    unless told otherwise (the benchmarks and `asr evaluate` pass their decoder)."""
    return transcribe(model, np.asarray(samples), decoder, endpoint=endpoint, punctuation=punctuation)


def _transcribe_streaming(model, blocks, decoder, chunk_ms, on_progress, endpoint, on_words) -> tuple[list, float]:
    stream = Recognizer(model, decoder, endpoint=endpoint).stream()
    if chunk_ms and not (math.isfinite(chunk_ms) and SAMPLE_RATE * chunk_ms >= 1000):
        raise ValueError(f"chunk_ms must be a finite number of milliseconds, one sample or more (got {chunk_ms})")
    chunk = int(SAMPLE_RATE * chunk_ms / 1000) if chunk_ms else None
    words = []
    for block in blocks:
        for i in range(0, len(block), chunk or max(1, len(block))):
            stream.accept(block[i:i + chunk] if chunk else block)
            while (segment := stream.endpoint()) is not None:
                words += segment.words
                if on_words and segment.words:
                    on_words(segment.words)
        if on_progress:
            on_progress(len(block) / SAMPLE_RATE)
    last = stream.finish().words
    words += last
    if on_words and last:
        on_words(last)
    return words, stream.seconds


def _quietest_cut(samples: np.ndarray, lo: int, hi: int, step: int) -> int:
    """Sample index in [lo, hi), a multiple of step, at the centre of the quietest 100 ms."""
    frame = SAMPLE_RATE // 10
    region = samples[lo:hi]
    if len(region) < frame:
        return hi - hi % step
    energy = np.convolve(region.astype(np.float64) ** 2, np.ones(frame), mode="valid")
    cut = lo + int(np.argmin(energy)) + frame // 2
    return max(step, cut - cut % step)


def _transcribe_windows(model, blocks, make_decoder, on_progress, on_words) -> tuple[list, float]:
    step = HOP_LENGTH * model.cfg.subsampling  # cut at whole output frames
    window, search = int(WINDOW_SECONDS * SAMPLE_RATE), int(SEARCH_SECONDS * SAMPLE_RATE)
    buf = np.zeros(0, np.float32)
    offset = 0  # samples of the file before buf
    words = []

    def recognise(samples: np.ndarray):
        log_probs = model.log_probs(samples)  # (U, V); a window is within any model's context
        if len(log_probs) == 0:
            return
        dec = make_decoder()
        dec.reset(offset // step)
        dec.update(log_probs)
        new = dec.finalize()
        words.extend(new)
        if on_words and new:
            on_words(new)

    for block in blocks:
        buf = np.concatenate([buf, block])
        while len(buf) > window:
            cut = _quietest_cut(buf, window - search, window, step)
            recognise(buf[:cut])
            buf, offset = buf[cut:], offset + cut
        if on_progress:
            on_progress(len(block) / SAMPLE_RATE)
    recognise(buf)
    return words, (offset + len(buf)) / SAMPLE_RATE
