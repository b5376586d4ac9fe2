#!/usr/bin/env python3
"""Decoding speed and accuracy: greedy vs beam search vs beam search + n-gram LM.

    python benchmarks/decoding.py --model M.pt --lm LM.arpa|LM.bin MANIFEST [MANIFEST ...]
        [--beam-size 32] [--alpha 0.5] [--beta 1.0] [--limit N] [--threads 1]

For each dev manifest it runs the acoustic model once per utterance (one thread), then
decodes the same log-probs three ways and prints, per decoder, the WER and the decoding
real-time factor (decoding seconds per audio second, the acoustic model's cost excluded and
printed beside it). Target (issue: LM decoding): beam 32 with a 3-gram LM on one thread adds
at most 0.05 to the real-time factor. Word times and confidences are part of the timed
beam decoding (as `asr transcribe` produces them).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from asr.audio import FRAME_SECONDS  # noqa: E402
from asr.beam import BeamDecoder, BeamOptions, BeamSearch  # noqa: E402
from asr.checkpoint import load_model  # noqa: E402
from asr.manifest import ManifestReport, read_manifest  # noqa: E402
from asr.decoding import GreedyDecoder  # noqa: E402
from asr.evaluate import score, utterance_log_probs  # noqa: E402


def decode_all(log_probs, make_decoder):
    """Texts of every utterance, and the decoding seconds (update + finalize, as streaming does)."""
    hyps, seconds = [], 0.0
    for _, lp in log_probs:
        dec = make_decoder()
        start = time.perf_counter()
        dec.update(lp)
        words = dec.finalize()
        seconds += time.perf_counter() - start
        hyps.append(" ".join(w.word for w in words))
    return hyps, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifests", nargs="+", metavar="MANIFEST")
    ap.add_argument("--model", required=True)
    ap.add_argument("--lm", required=True, help="ARPA or KenLM binary (a 3-gram for the target)")
    ap.add_argument("--beam-size", type=int, default=32)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=0, help="only the first N utterances of each manifest")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model)
    frame_seconds = FRAME_SECONDS * model.cfg.subsampling
    start = time.perf_counter()
    with_lm = BeamSearch(args.lm, BeamOptions(beam_size=args.beam_size, alpha=args.alpha, beta=args.beta))
    load_seconds = time.perf_counter() - start
    without_lm = BeamSearch(None, BeamOptions(beam_size=args.beam_size))
    decoders = {"greedy": lambda: GreedyDecoder(frame_seconds),
                f"beam {args.beam_size}": lambda: BeamDecoder(without_lm, frame_seconds),
                f"beam {args.beam_size} + LM": lambda: BeamDecoder(with_lm, frame_seconds)}
    print(f"model: {args.model}; LM: {args.lm} (order {with_lm.language_model.order}, loaded in {load_seconds:.1f} s); "
          f"alpha {args.alpha}, beta {args.beta}; {args.threads} thread(s)")
    for manifest in args.manifests:
        utts = read_manifest(manifest, report=ManifestReport())
        utts = utts[: args.limit] if args.limit else utts
        start = time.perf_counter()
        log_probs, _ = utterance_log_probs(model, utts)
        acoustic = time.perf_counter() - start  # includes reading and features
        audio = sum(lp.shape[0] for _, lp in log_probs) * frame_seconds
        refs = [u.text for u, _ in log_probs]
        print(f"\n{manifest}: {len(refs)} utterances, {audio / 60:.1f} min; acoustic model + features RTF "
              f"{acoustic / audio:.4f}")
        print(f"  {'decoder':<16} {'WER %':>7} {'CER %':>7} {'decode RTF':>11}")
        for name, make in decoders.items():
            hyps, seconds = decode_all(log_probs, make)
            s = score(refs, hyps)
            print(f"  {name:<16} {100 * s['wer']:7.2f} {100 * s['cer']:7.2f} {seconds / audio:11.4f}")


if __name__ == "__main__":
    main()
