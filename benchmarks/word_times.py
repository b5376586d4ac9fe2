#!/usr/bin/env python3
"""Word-time accuracy against an independent aligner, and the emission offset to calibrate.

    python benchmarks/word_times.py --model M.pt MANIFEST [--limit N] [--lm LM --beam-size 32]

Reference word boundaries come from pocketsphinx's forced alignment of each reference
transcript with its own (HMM) acoustic model, 10 ms frames. Our words come from
`asr transcribe` (greedy, or beam + LM). On utterances where our words equal the reference
words, it prints the start and end differences (ours - reference): median, mean, the share
within +-0.1 s, and the same after subtracting the median start/end difference. If a model
is consistently late or early, store the suggested offset in its card as `word_time_offset`
(seconds, added to every word time) -- e.g. with asr.checkpoint.read_payload/atomic_save.
"""
import argparse
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from asr.audio import load_audio  # noqa: E402
from asr.beam import decoder_for  # noqa: E402
from asr.checkpoint import load_model  # noqa: E402
from asr.manifest import ManifestReport, read_manifest  # noqa: E402
from asr.decoding import time_offset  # noqa: E402
from asr.transcribe import transcribe_array  # noqa: E402


def reference_words(decoder, samples: np.ndarray, text: str) -> list[tuple[str, float, float]] | None:
    """pocketsphinx forced alignment: [(word, start s, end s)], silences left out; None when
    the alignment fails."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
    try:
        decoder.set_align_text(text)
    except RuntimeError:  # a word its dictionary lacks
        return None
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return None  # the aligner found no path through the text
    return [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame / 100, (s.end_frame + 1) / 100)
            for s in decoder.seg() if not s.word.startswith("<") and s.word != "</s>" and s.word != "[NOISE]"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--model", required=True)
    ap.add_argument("--lm", help="decode with beam search + this LM (default: greedy)")
    ap.add_argument("--beam-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import pocketsphinx

    model = load_model(args.model)
    # Both ways time words as asr transcribe does, the card's word_time_offset included.
    decoder = decoder_for(model, args.beam_size, args.lm) if args.lm else None  # None: greedy
    aligner = pocketsphinx.Decoder(samprate=16000, loglevel="FATAL")
    utts = read_manifest(args.manifest, report=ManifestReport())
    utts = utts[: args.limit] if args.limit else utts
    d_start, d_end, used, unaligned = [], [], 0, 0
    for utt in utts:
        x = load_audio(utt.path)
        ref = reference_words(aligner, x, utt.text)
        if ref is None:
            unaligned += 1
            continue
        hyp = transcribe_array(model, x, decoder).words
        if [w for w, _, _ in ref] != [w.word for w in hyp]:
            continue  # times only mean something where the words agree
        used += 1
        for (_, s, e), w in zip(ref, hyp):
            d_start.append(w.start - s)
            d_end.append(w.end - e)
    if not d_start:
        print(f"{args.manifest}: no utterance where the model's words equal the reference; nothing to compare")
        return
    ds, de = np.array(d_start), np.array(d_end)
    off = float(np.median(np.concatenate([ds, de])))  # what remains to correct
    print(f"model: {args.model} ({'beam + LM' if args.lm else 'greedy'}); {args.manifest}: "
          f"{used} of {len(utts)} utterances with all words right, {len(ds)} words"
          f"{f'; {unaligned} the aligner could not align' if unaligned else ''}")
    for name, d in (("start", ds), ("end", de)):
        print(f"  {name}: ours - reference median {np.median(d):+.3f} s, mean {d.mean():+.3f} s, "
              f"|diff| <= 0.1 s: {100 * np.mean(np.abs(d) <= 0.1):.1f}%, "
              f"with the suggested offset: {100 * np.mean(np.abs(d - off) <= 0.1):.1f}%")
    print(f"  suggested word_time_offset: {time_offset(model) - off:+.3f} s (now {time_offset(model):+.3f})")


if __name__ == "__main__":
    main()
