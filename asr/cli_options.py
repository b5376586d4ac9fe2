"""What the `asr` commands share: the --model and decoding options, one-line errors, exit statuses.

The commands (cli.py, cli_live.py, cli_measure.py, cli_lm.py, cli_train.py) import from here and
never from each other. Values are checked where they are defined (BeamOptions, EndpointConfig,
ServerConfig): a ValueError's message becomes the command's one error line.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

EXIT_FAILED_INPUT = 1  # some input could not be processed (the others were)
EXIT_USAGE = 2


def printable(text: str) -> str:
    """text with the bytes of a file name that is not UTF-8 (Python holds them as lone surrogates,
    PEP 383) shown as \\xNN escapes, caf\\xe9.wav, as `ls -b` shows it: it then prints on any stream."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name's bytes make
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error(message: str) -> None:
    """One line on stderr, prefixed like argparse's own errors (file names in it printable)."""
    print(f"asr: error: {printable(message)}", file=sys.stderr, flush=True)


def warning(message: str) -> None:
    """One `asr: warning: ...` line on stderr."""
    print(f"asr: warning: {printable(message)}", file=sys.stderr, flush=True)


def whole_number(low: int, high: int | None = None, why: str = ""):
    """argparse type: a whole number from low to high (no upper bound with high None); the error
    says what is allowed, and why where `why` tells."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or high is not None and value > high:
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {allowed}{why} (got {value})")
        return value
    return parse


def number(low: float = -math.inf, high: float = math.inf, unit: str = ""):
    """argparse type: a finite number from low to high (nan, inf and values outside are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and low <= value <= high):
            allowed = (f"from {low:g} to {high:g}" if math.isfinite(low) and math.isfinite(high) else
                       f"at least {low:g}" if math.isfinite(low) else f"at most {high:g}" if math.isfinite(high) else "")
            raise argparse.ArgumentTypeError(f"must be a finite number{' ' + allowed if allowed else ''}"
                                             f"{' ' + unit if unit else ''} (got {text})")
        return value
    return parse


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity: taskset, a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


THREADS_PER_CORE = 4  # --threads may oversubscribe the cores this much, no more


def threads(text: str) -> int:
    """argparse type of --threads: 1 to THREADS_PER_CORE x the cores here (500 threads on 2 cores
    turned 1 s of work into 46 s, and 10**9 failed to allocate)."""
    cores = cpu_cores()
    return whole_number(1, THREADS_PER_CORE * cores, f", {THREADS_PER_CORE} x the {cores} CPU core{'s' * (cores != 1)} here")(text)


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="NAME|PATH", help="a model file, or a bundled model: `streaming` or `offline` "
                   "(default: `offline` for files where it is bundled, `streaming` for live audio and --stream)")
    p.add_argument("--threads", type=threads, default=None, metavar="N",
                   help=f"CPU threads for the model (default: 1; many streams are batched instead; at most "
                        f"{THREADS_PER_CORE} x the CPU cores, and more than the cores only slows it down)")


def load_model_or_exit(args, offline: bool = False):
    """The model named by --model (or the default: the bundled offline model where offline and one
    is bundled, else the streaming one), on ONNX Runtime (runtime.py); a clear error and exit 2 if
    unusable."""
    from .export import load_model
    from .runtime import ModelError
    n = getattr(args, "threads", None) or 1
    if n > cpu_cores():
        warning(f"--threads {n} is more than the {cpu_cores()} CPU core{'s' * (cpu_cores() != 1)} here: the threads take turns, "
                f"which makes the model slower, not faster")
    try:
        return load_model(args.model, offline=offline, threads=n)
    except ModelError as err:
        error(str(err))
        sys.exit(EXIT_USAGE)


def add_punctuation_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-punctuation", action="store_true",
                   help="the recogniser's lower-case words, without the punctuation model's marks and capitals")


def add_decoder_options(p: argparse.ArgumentParser) -> None:
    """--beam-size, --lm, --alpha, --beta, --hotword, --no-lm (see docs/lm.md); read by decoder_or_exit."""
    g = p.add_argument_group("decoding", "Greedy unless --beam-size, --lm or --hotword is given, or the model "
                                         "comes with a language model (docs/lm.md).")
    g.add_argument("--beam-size", type=int, default=None, metavar="N",
                   help="CTC prefix beam search with N beams (default with --lm or --hotword: 32)")
    g.add_argument("--lm", metavar="PATH", help="n-gram language model: ARPA or KenLM binary (`asr lm build`)")
    g.add_argument("--alpha", type=float, default=None, metavar="A",
                   help="language model weight (default: the model card's with the model's own LM, see `asr models`; "
                        "else 0.5; find the best with `asr tune-lm`)")
    g.add_argument("--beta", type=float, default=None, metavar="B",
                   help="word insertion bonus (default: the model card's with the model's own LM; else 1.0)")
    g.add_argument("--hotword", action="append", default=[], metavar="WORD[:WEIGHT]",
                   help="favour this word or phrase (repeatable; weight default 10, a log-prob bonus per word)")
    g.add_argument("--no-lm", action="store_true",
                   help="greedy decoding even where the model file comes with a language model (as the default does)")


def decoder_or_exit(args, model):
    """The decoders the decoding options choose for model (`beam.decoder_for`: the card's LM and
    weights unless the options say otherwise). Exits 2 with one line on bad options or an
    unusable language model."""
    from .beam import NO_LM, LMError, decoder_for
    lm = getattr(args, "lm", None) or (NO_LM if getattr(args, "no_lm", False) else None)
    try:
        return decoder_for(model, getattr(args, "beam_size", None), lm, getattr(args, "alpha", None),
                           getattr(args, "beta", None), getattr(args, "hotword", None) or ())
    except (ValueError, LMError) as err:
        error(str(err))
        sys.exit(EXIT_USAGE)
