"""What the `asr` commands share: the --model and decoding options, one-line errors, exit statuses.

The commands (cli.py, cli_live.py, cli_measure.py, cli_lm.py, cli_train.py) import from here and
never from each other. Values are checked where they are defined (BeamOptions, EndpointConfig,
ServerConfig): a ValueError's message becomes the command's one error line.
"""
from __future__ import annotations

import argparse
import sys

EXIT_FAILED_INPUT = 1  # some input could not be processed (the others were)
EXIT_USAGE = 2


def error(message: str) -> None:
    """One line on stderr, prefixed like argparse's own errors."""
    print(f"asr: error: {message}", file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="NAME|PATH", help="a model file, or a bundled model: `streaming` or `offline` "
                   "(default: `offline` for files where it is bundled, `streaming` for live audio and --stream)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads for the model (default: 1; many streams are batched instead)")


def load_model_or_exit(args, offline: bool = False):
    """The model named by --model (or the default: the bundled offline model where offline and one
    is bundled, else the streaming one), on ONNX Runtime (runtime.py); a clear error and exit 2 if
    unusable."""
    from .runtime import ModelError, load_model
    try:
        return load_model(args.model, offline=offline, threads=getattr(args, "threads", None) or 1)
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
