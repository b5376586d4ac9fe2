"""`asr train`, `asr evaluate`, `asr lm ...` and `asr tune-lm`: training and language-model commands."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .cli import (EXIT_FAILED_INPUT, EXIT_USAGE, add_decoder_options, add_model_option, error, load_model_or_exit,
                  decoder_or_exit)

def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe config",
                       description="Train a GRU-CTC model. Settings come from a YAML recipe (recipes/*/*.yaml) "
                                   "and key=value overrides (model.hidden_size=256 reaches nested keys). "
                                   "Multi-GPU: torchrun --nproc-per-node N -m asr train ...")
    p.add_argument("--config", "-c", metavar="YAML", help="recipe config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/last.pt exactly where it stopped (an error if there is none)")
    resume.add_argument("--resume-if-any", action="store_true",
                        help="continue from OUT_DIR/last.pt where there is one, else start afresh (for scripts "
                             "that are run again after an interruption)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (on a terminal), no progress lines (to a file: one every 30 s)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import logging

    from .train import Trainer, load_config
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config, args.overrides)
        last = os.path.join(cfg.out_dir, "last.pt")
        if args.resume and not os.path.exists(last):
            error(f"--resume: no checkpoint to resume from in {cfg.out_dir} ({last} does not exist); without "
                  f"--resume training starts afresh, --resume-if-any resumes only where there is one")
            return EXIT_USAGE
        resume = args.resume or (args.resume_if_any and os.path.exists(last))
        trainer = Trainer(cfg, resume=resume, device=args.device, progress=not args.no_progress)
    except (OSError, ValueError, TypeError) as err:
        error(str(err))
        return EXIT_USAGE
    summary = trainer.fit()
    if trainer.is_main:
        print(json.dumps(summary))
    return 0


# --------------------------------------------------------------------------- evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="WER, CER and speed of a model on a manifest",
                       description="Score a model on a manifest (TSV with header naming `path` and `text`, "
                                   "paths relative to the manifest's folder; or JSON Lines).")
    p.add_argument("manifest", metavar="MANIFEST")
    add_model_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (wer, cer, rtf, utterances, worst)")
    p.add_argument("--worst", type=int, default=10, metavar="N", help="how many worst utterances to list")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="only the first N utterances")
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

    from .manifest import ManifestReport, read_manifest
    from .evaluate import evaluate
    warnings_on_stderr()
    report = ManifestReport()
    try:
        utts = read_manifest(args.manifest, report=report)
    except (OSError, ValueError) as err:
        error(str(err))
        return EXIT_USAGE
    model = load_model_or_exit(args, offline=True)  # whole utterances, as `asr transcribe` scores files
    if args.limit:
        utts = utts[: args.limit]
    if not utts:
        error(f"{args.manifest}: no usable utterances")
        return EXIT_FAILED_INPUT
    bar = tqdm(total=len(utts), desc="evaluating", unit="utt", file=sys.stderr, leave=False, disable=None)
    result = evaluate(model, utts, decoder_or_exit(args, model), worst=args.worst, on_progress=lambda n: bar.update(1))
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


# --------------------------------------------------------------------------- lm
def add_lm(sub) -> None:
    p = sub.add_parser("lm", help="build or convert n-gram language models for beam search",
                       description="Build an n-gram language model from text, or convert pocketsphinx's English "
                                   "model, for `--lm` (docs/lm.md).")
    lm_sub = p.add_subparsers(dest="lm_command", metavar="ACTION")
    lm_sub.required = True
    b = lm_sub.add_parser("build", help="modified Kneser-Ney ARPA model from text (KenLM lmplz)",
                          description="Estimate a modified Kneser-Ney n-gram model with KenLM's lmplz. Each line of "
                                      "TEXT is a sentence, normalised exactly as training transcripts are. TEXT may "
                                      "be plain text (.gz too; - for stdin) or a manifest (.tsv with a `text` column, "
                                      ".jsonl). OUTPUT ending in .bin or .binary gives a KenLM binary (faster to load).")
    b.add_argument("texts", nargs="+", metavar="TEXT")
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="the model to write (.arpa, or .bin)")
    b.add_argument("--order", type=int, default=3, metavar="N", help="n-gram order (default: 3)")
    b.add_argument("--exclude", action="append", default=[], metavar="MANIFEST",
                   help="leave out every sentence of this manifest or text file (e.g. a dev set; repeatable)")
    b.add_argument("--prune", type=int, nargs="+", metavar="N",
                   help="lmplz count thresholds per order, e.g. --prune 0 0 1 drops singleton trigrams")
    b.add_argument("--memory", default="1G", metavar="SIZE", help="lmplz sort memory (default: 1G; e.g. 20%%)")
    b.set_defaults(func=cmd_lm_build)
    c = lm_sub.add_parser("convert-pocketsphinx", help="pocketsphinx's English trigram model -> ARPA",
                          description="Convert a pocketsphinx trie model (default: the en-us.lm.bin that the "
                                      "pocketsphinx wheel ships, 72k words, BSD) to an ARPA file for --lm; with an "
                                      "OUTPUT ending in .bin, to a KenLM binary (needs build_binary).")
    c.add_argument("source", nargs="?", metavar="LM_BIN", help="pocketsphinx .lm.bin (default: the bundled en-us model)")
    c.add_argument("-o", "--output", required=True, metavar="FILE")
    c.add_argument("--all-words", action="store_true",
                   help="keep words this recogniser cannot spell (with digits, dots, ...)")
    c.set_defaults(func=cmd_lm_convert_pocketsphinx)
    k = lm_sub.add_parser("binary", help="ARPA -> KenLM binary (loads much faster)",
                          description="Convert an ARPA model (.arpa or .arpa.gz, e.g. LibriSpeech's) to a KenLM binary "
                                      "trie with KenLM's build_binary, and list its words in OUTPUT.vocab.")
    k.add_argument("arpa", metavar="ARPA")
    k.add_argument("-o", "--output", required=True, metavar="FILE")
    k.add_argument("--memory", default="1G", metavar="SIZE", help="build_binary memory (default: 1G)")
    k.set_defaults(func=cmd_lm_binary)


def cmd_lm_binary(args) -> int:
    from .lm import LMBuildError, to_binary
    if not os.path.isfile(args.arpa):
        error(f"{args.arpa}: no such file")
        return EXIT_USAGE
    try:
        to_binary(args.arpa, args.output, args.memory)
    except (LMBuildError, OSError) as err:
        error(str(err))
        return EXIT_USAGE
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB) and {args.output}.vocab")
    return 0


def cmd_lm_build(args) -> int:
    from .lm import LMBuildError, build_lm, manifest_texts
    for path in args.exclude:
        if not os.path.isfile(path):
            error(f"{path}: no such file (--exclude)")
            return EXIT_USAGE
    try:
        stats = build_lm(args.texts, args.output, args.order, manifest_texts(args.exclude), args.memory, args.prune)
    except (LMBuildError, OSError, ValueError) as err:
        error(str(err))
        return EXIT_USAGE
    counts = " ".join(f"{n}-grams={c}" for n, c in enumerate(stats["ngrams"], 1))
    print(f"wrote {stats['output']} ({stats['bytes'] / 1e6:.1f} MB): {stats['sentences']} sentences, "
          f"{stats['words']} words, {counts}; excluded {stats['excluded']} sentences")
    return 0


def cmd_lm_convert_pocketsphinx(args) -> int:
    from .lm import LMBuildError
    from .pocketsphinx_lm import convert_pocketsphinx
    try:
        stats = convert_pocketsphinx(args.output, args.source, spellable_only=not args.all_words)
    except (LMBuildError, OSError) as err:
        error(str(err))
        return EXIT_USAGE
    counts = " ".join(f"{n}-grams={c}" for n, c in enumerate(stats["ngrams"], 1))
    print(f"wrote {stats['output']} ({stats['bytes'] / 1e6:.1f} MB) from {stats['source']}: {counts}")
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
    p = sub.add_parser("tune-lm", help="grid search of the LM weight (alpha) and word bonus (beta) on a dev set",
                       description="Decode a dev manifest with every (alpha, beta) pair and print the WER surface "
                                   "and the best pair. The acoustic model runs once per utterance.")
    p.add_argument("manifest", metavar="MANIFEST")
    add_model_option(p)
    p.add_argument("--lm", required=True, metavar="PATH", help="ARPA or KenLM binary language model")
    p.add_argument("--alphas", type=_floats, default=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5], metavar="A,A,...",
                   help="LM weights to try (default: 0,0.25,0.5,0.75,1,1.5)")
    p.add_argument("--betas", type=_floats, default=[-1.0, 0.0, 1.0, 2.0, 3.0], metavar="B,B,...",
                   help="word insertion bonuses to try (default: -1,0,1,2,3; a list starting with a minus: --betas=-1,0,1)")
    p.add_argument("--beam-size", type=int, default=32, metavar="N", help="beams (default: 32)")
    p.add_argument("--hotword", action="append", default=[], metavar="WORD[:WEIGHT]", help="as for transcribe")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="only the first N utterances")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_tune_lm)


def cmd_tune_lm(args) -> int:
    from tqdm import tqdm

    from .manifest import ManifestReport, read_manifest
    from .evaluate import tune_lm, utterance_log_probs
    warnings_on_stderr()
    model = load_model_or_exit(args, offline=True)  # whole utterances, as `asr transcribe` scores files
    search = decoder_or_exit(args, model).search  # --lm is required: a beam search; checks the LM before the long part
    report = ManifestReport()
    try:
        utts = read_manifest(args.manifest, report=report)
    except (OSError, ValueError) as err:
        error(str(err))
        return EXIT_USAGE
    utts = utts[: args.limit] if args.limit else utts
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
