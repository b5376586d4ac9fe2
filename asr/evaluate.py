"""Accuracy and speed on a manifest: WER and CER (jiwer), real-time factor, worst utterances."""
from __future__ import annotations

import time
from collections.abc import Callable

import jiwer
import numpy as np

from .audio import SAMPLE_RATE, AudioError, load_audio
from .decoding import Decoder
from .export import as_runtime
from .manifest import Utterance
from .runtime import Model
from .transcribe import transcribe_array


def score(refs: list[str], hyps: list[str]) -> dict:
    """Corpus WER and CER of hypotheses against references (both normalised)."""
    if not refs:
        return {"wer": float("nan"), "cer": float("nan"), "words": 0}
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return {"wer": words.wer, "cer": chars.cer, "words": sum(len(x.split()) for x in refs),
            "substitutions": words.substitutions, "deletions": words.deletions, "insertions": words.insertions}


def evaluate(model: Model, utterances: list[Utterance], decoder: Callable[[], Decoder] | None = None,
             worst: int = 10, on_progress: Callable[[int], None] | None = None, punctuation: bool = True) -> dict:
    """Transcribe every utterance as `asr transcribe` would (decoder None: its default decoder)
    and score it.

    Returns wer, cer, rtf (processing seconds per audio second, audio reading excluded),
    utterances, skipped, audio_seconds, and the `worst` utterances: those with errors, by WER
    (errors / reference words), then by error count. WER and CER are of normalised text (no
    marks, lower case). With punctuation (the bundled model, as `asr transcribe` writes), also
    `punctuation`: per-mark precision/recall/F1 and casing accuracy of the words the transcript
    and the reference share, over the references that are punctuated (asr.punctuation.Scores).
    """
    from .punctuation import Scores, bundled, is_punctuated, label_words
    from .text import normalize
    model = as_runtime(model)
    punctuator = bundled() if punctuation else None
    marks, marked = Scores(), 0
    refs, hyps, rows, skipped = [], [], [], []
    audio_seconds = compute_seconds = 0.0
    for i, utt in enumerate(utterances):
        try:
            x = load_audio(utt.path)
        except AudioError as err:
            skipped.append({"id": utt.id, "reason": str(err)})
            continue
        start = time.perf_counter()
        written = transcribe_array(model, x, decoder, punctuation=punctuator or False).text
        compute_seconds += time.perf_counter() - start
        hyp = normalize(written)
        if punctuator and is_punctuated(utt.written):
            marks.add(label_words(utt.written), label_words(written))
            marked += 1
        audio_seconds += len(x) / SAMPLE_RATE
        refs.append(utt.text)
        hyps.append(hyp)
        m = jiwer.process_words(utt.text, hyp)
        errors = m.substitutions + m.deletions + m.insertions
        rows.append({"id": utt.id, "ref": utt.text, "hyp": hyp, "errors": errors,
                     "wer": errors / max(1, len(utt.text.split()))})
        if on_progress:
            on_progress(i + 1)
    result = score(refs, hyps)
    result.update({"rtf": compute_seconds / audio_seconds if audio_seconds else float("nan"),
                   "utterances": len(refs), "skipped": len(skipped), "audio_seconds": round(audio_seconds, 2),
                   "worst": sorted((r for r in rows if r["errors"]), key=lambda r: (-r["wer"], -r["errors"], r["id"]))[:worst]})
    if marked:
        result["punctuation"] = {"utterances": marked, **marks.report()}
    if skipped:
        result["skipped_files"] = skipped
    return result



def utterance_log_probs(model: Model, utterances: list[Utterance],
                        on_progress: Callable[[int], None] | None = None) -> tuple[list, list[dict]]:
    """[(utterance, log-probs (U, V))] of the readable utterances (the whole-utterance pass,
    which a streaming model's chunked pass equals), and the skipped ones with reasons."""
    model = as_runtime(model)
    out, skipped = [], []
    for i, utt in enumerate(utterances):
        try:
            samples = load_audio(utt.path)
        except AudioError as err:
            skipped.append({"id": utt.id, "reason": str(err)})
            continue
        lp = model.log_probs(samples)
        if len(lp):
            out.append((utt, lp))
        if on_progress:
            on_progress(i + 1)
    return out, skipped


def tune_lm(log_probs: list, search, alphas: list[float], betas: list[float],
            on_progress: Callable[[int], None] | None = None) -> dict:
    """Grid search of the LM weight alpha and word bonus beta on precomputed log-probs.

    log_probs: [(utterance, (U, V) array)] from `utterance_log_probs` (the acoustic model runs
    once; only the beam search is repeated). search: a BeamSearch with a language model.
    Returns greedy_wer, grid [{alpha, beta, wer}], best {alpha, beta, wer}, words.
    """
    from .decoding import greedy_text
    refs = [u.text for u, _ in log_probs]
    greedy = score(refs, [greedy_text(lp) for _, lp in log_probs])
    grid, done = [], 0
    for alpha in alphas:
        for beta in betas:
            search.set_weights(alpha, beta)
            hyps = [" ".join(search.search(lp)) for _, lp in log_probs]
            grid.append({"alpha": alpha, "beta": beta, "wer": score(refs, hyps)["wer"]})
            done += 1
            if on_progress:
                on_progress(done)
    best = min(grid, key=lambda g: (g["wer"], g["alpha"], abs(g["beta"])))
    return {"greedy_wer": greedy["wer"], "words": greedy["words"], "utterances": len(refs), "grid": grid, "best": best}
