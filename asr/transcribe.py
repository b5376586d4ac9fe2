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
from .decoding import Decoder, Result
from .endpoint import EndpointConfig
from .export import as_runtime
from .runtime import Model
from .streaming import Recognizer

WINDOW_SECONDS = 30.0  # longest window for a bidirectional model
SEARCH_SECONDS = 5.0  # a cut is placed at the quietest point in the window's last 5 s


def transcribe(model: Model, audio: str | os.PathLike | np.ndarray, decoder: Callable[[], Decoder] | None = None,
               chunk_ms: float | None = None, on_progress: Callable[[float], None] | None = None,
               endpoint: EndpointConfig | None = EndpointConfig()) -> Result:
    """Transcribe one audio file, or 16 kHz samples already in memory: an array of float32/float64
    in [-1, 1] or int16/int32 PCM (scaled as soundfile reads them), (n,) or (samples, channels) as
    soundfile returns it (channels averaged); other dtypes and shapes, NaN/Inf and integer PCM cast to
    float raise AudioError (a ValueError). Arrays are not resampled: resample others to 16 kHz first.

    decoder: factory of decoders (`beam.decoder_for`; greedy by default). chunk_ms: feed the audio through a
    streaming recogniser in chunks of this many milliseconds, as a microphone would
    (unidirectional models only). on_progress(seconds): called as audio is consumed.
    endpoint: a unidirectional model's audio is cut into utterances at pauses by these rules
    (`asr listen`'s and `asr serve`'s defaults), exactly as a live stream is, whatever the
    chunking; a beam/LM decoder searches each utterance whole (with the earlier words as the
    LM's context), so the text equals what `asr serve` sends for this file. Greedy text does
    not depend on it. Raises AudioError for unusable audio. model: the runtime's (a torch
    AcousticModel is converted first).
    """
    model = as_runtime(model)
    decoder = decoder or decoder_for(model, lm=NO_LM)
    if isinstance(audio, np.ndarray):
        blocks = iter([as_samples(audio)])
    else:
        blocks = iter_blocks(audio)
    if model.cfg.streaming:
        return _transcribe_streaming(model, blocks, decoder, chunk_ms, on_progress, endpoint)
    if chunk_ms:
        raise ValueError("a bidirectional model cannot stream; drop --stream or use a unidirectional model")
    return _transcribe_windows(model, blocks, decoder, on_progress)


def transcribe_array(model: Model, samples: np.ndarray, decoder: Callable[[], Decoder] | None = None,
                     endpoint: EndpointConfig | None = EndpointConfig()) -> Result:
    """transcribe() of samples in memory (kept for callers of the earlier name)."""
    return transcribe(model, np.asarray(samples), decoder, endpoint=endpoint)


def _transcribe_streaming(model, blocks, decoder, chunk_ms, on_progress, endpoint) -> Result:
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
        if on_progress:
            on_progress(len(block) / SAMPLE_RATE)
    words += stream.finish().words
    return Result.from_words(words, stream.seconds)


def _quietest_cut(samples: np.ndarray, lo: int, hi: int, step: int) -> int:
    """Sample index in [lo, hi), a multiple of step, at the centre of the quietest 100 ms."""
    frame = SAMPLE_RATE // 10
    region = samples[lo:hi]
    if len(region) < frame:
        return hi - hi % step
    energy = np.convolve(region.astype(np.float64) ** 2, np.ones(frame), mode="valid")
    cut = lo + int(np.argmin(energy)) + frame // 2
    return max(step, cut - cut % step)


def _transcribe_windows(model, blocks, make_decoder, on_progress) -> Result:
    step = HOP_LENGTH * model.cfg.subsampling  # cut at whole output frames
    window, search = int(WINDOW_SECONDS * SAMPLE_RATE), int(SEARCH_SECONDS * SAMPLE_RATE)
    buf = np.zeros(0, np.float32)
    offset = 0  # samples of the file before buf
    words = []

    def recognise(samples: np.ndarray):
        feats = model.features(samples)
        if len(feats) == 0:
            return
        log_probs, lengths = model(feats[None], np.array([len(feats)]))
        dec = make_decoder()
        dec.reset(offset // step)
        dec.update(log_probs[0, : int(lengths[0])])
        words.extend(dec.finalize())

    for block in blocks:
        buf = np.concatenate([buf, block])
        while len(buf) > window:
            cut = _quietest_cut(buf, window - search, window, step)
            recognise(buf[:cut])
            buf, offset = buf[cut:], offset + cut
        if on_progress:
            on_progress(len(block) / SAMPLE_RATE)
    recognise(buf)
    return Result.from_words(words, (offset + len(buf)) / SAMPLE_RATE)
