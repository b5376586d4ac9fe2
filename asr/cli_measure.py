"""`asr evaluate` and `asr tune-lm`: a model's WER on a manifest, and the LM weights that give the best."""
from __future__ import annotations

import argparse
import json
import math
import sys

from .cli_options import (EXIT_FAILED_INPUT, EXIT_USAGE, add_decoder_options, add_model_option, add_punctuation_option,
                          decoder_or_exit, error, load_model_or_exit, whole_number)


# --------------------------------------------------------------------------- evaluate
def _manifest_command(sub, name: str, help: str, description: str, json_help: str) -> argparse.ArgumentParser:
    """A command that scores a model on a manifest: MANIFEST, --model, --limit and --json."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("manifest", metavar="MANIFEST")
    add_model_option(p)
    p.add_argument("--limit", type=whole_number(0), default=0, metavar="N", help="only the first N utterances (0: all)")
    p.add_argument("--json", action="store_true", help=json_help)
    return p


def _utterances(args, report):
    """The first --limit utterances of the MANIFEST (all without it), or None after one error line."""
    from .manifest import read_manifest
    try:
        utts = read_manifest(args.manifest, report=report)
    except (OSError, ValueError) as err:
        error(str(err))
        return None
    return utts[: args.limit] if args.limit else utts


def add_evaluate(sub) -> None:
    p = _manifest_command(sub, "evaluate", "WER, CER and speed of a model on a manifest",
                          "Score a model on a manifest (TSV with header naming `path` and `text`, "
                          "paths relative to the manifest's folder; or JSON Lines).",
                          "print one JSON object (wer, cer, rtf, utterances, worst)")
    p.add_argument("--worst", type=whole_number(0), default=10, metavar="N", help="how many worst utterances to list")
    add_punctuation_option(p)
    add_decoder_options(p)
    p.set_defaults(func=cmd_evaluate)


def warnings_on_stderr() -> None:
    """The data module's warnings (a manifest row skipped, and why) as `asr: warning: ...` lines."""
    import logging
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("asr: warning: %(message)s"))
    log = logging.getLogger("asr.data")
    log.addHandler(handler)
    log.propagate = False


def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    from .manifest import ManifestReport
    from .evaluate import evaluate
    warnings_on_stderr()
    report = ManifestReport()
    utts = _utterances(args, report)
    if utts is None:
        return EXIT_USAGE
    model = load_model_or_exit(args, offline=True)  # whole utterances, as `asr transcribe` scores files
    if not utts:
        error(f"{args.manifest}: no usable utterances")
        return EXIT_FAILED_INPUT
    bar = tqdm(total=len(utts), desc="evaluating", unit="utt", file=sys.stderr, leave=False, disable=None)
    result = evaluate(model, utts, decoder_or_exit(args, model), worst=args.worst, on_progress=lambda n: bar.update(1),
                      punctuation=not args.no_punctuation)
    bar.close()
    rows = sum(report.skipped.values())
    for skipped in result.get("skipped_files", []):
        error(skipped["reason"])
    result["skipped"] += rows
    if args.json:
        print(json.dumps(result))
    else:
        print(f"utterances: {result['utterances']} ({result['audio_seconds'] / 60:.1f} min), skipped: {result['skipped']}")
        print(f"WER: {100 * result['wer']:.2f}%  CER: {100 * result['cer']:.2f}%  RTF: {result['rtf']:.4f}")
        if "punctuation" in result:
            p = result["punctuation"]
            print(f"punctuation ({p['utterances']} punctuated references, {p['words']} shared words): F1 comma "
                  f"{p['comma']['f1']:.2f}, period {p['period']['f1']:.2f}, question {p['question']['f1']:.2f}; "
                  f"casing accuracy {100 * p['casing_accuracy']:.1f}%")
        if result["worst"]:
            print("worst utterances:")
            for r in result["worst"]:
                print(f"  {r['id']}  WER={100 * r['wer']:.0f}% errors={r['errors']}\n    ref: {r['ref']}\n    hyp: {r['hyp']}")
    return skipped_status(rows, result["skipped"] - rows, result["utterances"])


def skipped_status(rows: int, files: int, scored: int) -> int:
    """Exit status of a scoring command: 1 with a count on stderr where rows or files were
    skipped (as `asr transcribe` exits for a bad input), else 0."""
    if rows or files:
        print(f"asr: skipped {rows + files} utterance(s) ({rows} manifest row(s), {files} unreadable audio "
              f"file(s)); the scores are of the other {scored}", file=sys.stderr)
        return EXIT_FAILED_INPUT
    return 0


# --------------------------------------------------------------------------- tune-lm
def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers")
    return values


def add_tune_lm(sub) -> None:
    p = _manifest_command(sub, "tune-lm", "grid search of the LM weight (alpha) and word bonus (beta) on a dev set",
                          "Decode a dev manifest with every (alpha, beta) pair and print the WER surface "
                          "and the best pair. The acoustic model runs once per utterance.", "print one JSON object")
    p.add_argument("--lm", required=True, metavar="PATH", help="ARPA or KenLM binary language model")
    p.add_argument("--alphas", type=_floats, default=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5], metavar="A,A,...",
                   help="LM weights to try (default: 0,0.25,0.5,0.75,1,1.5)")
    p.add_argument("--betas", type=_floats, default=[-1.0, 0.0, 1.0, 2.0, 3.0], metavar="B,B,...",
                   help="word insertion bonuses to try (default: -1,0,1,2,3; a list starting with a minus: --betas=-1,0,1)")
    p.add_argument("--beam-size", type=int, default=32, metavar="N", help="beams (default: 32)")
    p.add_argument("--hotword", action="append", default=[], metavar="WORD[:WEIGHT]", help="as for transcribe")
    p.set_defaults(func=cmd_tune_lm)


def cmd_tune_lm(args) -> int:
    from tqdm import tqdm

    from .manifest import ManifestReport
    from .evaluate import tune_lm, utterance_log_probs
    warnings_on_stderr()
    model = load_model_or_exit(args, offline=True)  # whole utterances, as `asr transcribe` scores files
    search = decoder_or_exit(args, model).search  # --lm is required: a beam search; checks the LM before the long part
    report = ManifestReport()
    utts = _utterances(args, report)
    if utts is None:
        return EXIT_USAGE
    bar = tqdm(total=len(utts), desc="acoustic model", unit="utt", file=sys.stderr, leave=False, disable=None)
    log_probs, skipped = utterance_log_probs(model, utts, on_progress=lambda n: bar.update(1))
    bar.close()
    for s in skipped:
        error(s["reason"])
    if not log_probs:
        error(f"{args.manifest}: no usable utterances")
        return EXIT_FAILED_INPUT
    bar = tqdm(total=len(args.alphas) * len(args.betas), desc="grid", unit="pair", file=sys.stderr, leave=False,
               disable=None)
    result = tune_lm(log_probs, search, args.alphas, args.betas, on_progress=lambda n: bar.update(1))
    bar.close()
    rows = sum(report.skipped.values())
    if args.json:
        print(json.dumps({**result, "skipped": rows + len(skipped)}))
        return skipped_status(rows, len(skipped), len(log_probs))
    wer = {(g["alpha"], g["beta"]): g["wer"] for g in result["grid"]}
    print(f"{result['utterances']} utterances, {result['words']} words; greedy WER {100 * result['greedy_wer']:.2f}%")
    print("WER % (rows: alpha, columns: beta)")
    print("alpha\\beta " + "".join(f"{b:>8g}" for b in args.betas))
    for a in args.alphas:
        print(f"{a:>10g} " + "".join(f"{100 * wer[(a, b)]:8.2f}" for b in args.betas))
    best = result["best"]
    print(f"best: --alpha {best['alpha']:g} --beta {best['beta']:g} (WER {100 * best['wer']:.2f}%)")
    return skipped_status(rows, len(skipped), len(log_probs))
