"""The `asr` command: thin argparse subcommands over the library.

Here: the parser, `main`, and the file commands `transcribe` and `models`. The others live by
kind: cli_live.py (`listen`, `serve`), cli_measure.py (`evaluate`, `tune-lm`), cli_lm.py
(`lm ...`), cli_train.py (`train`, `export`: the commands that need torch); what they share,
in cli_options.py. Each command imports the library only when it runs, so `asr --help` answers
at once.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

from . import __version__
from .cli_options import (EXIT_FAILED_INPUT, EXIT_USAGE, add_decoder_options, add_model_option, add_punctuation_option,
                          decoder_or_exit, error, load_model_or_exit, number, printable, whole_number)


# --------------------------------------------------------------------------- transcribe
def add_transcribe(sub) -> None:
    from .writers import FORMATS
    p = sub.add_parser("transcribe", help="transcribe audio files",
                       description="Transcribe WAV/FLAC/OGG/MP3 files (any rate, any channels; other formats such as "
                                   ".m4a and .webm through ffmpeg where it is installed); - reads standard input. "
                                   "Without --output-dir the transcripts go to stdout; with it, one file per format "
                                   "is written per input, named as whisper does (clip.flac -> DIR/clip.json, "
                                   "standard input -> DIR/stdin.json); two inputs that would write the same name "
                                   "(a/clip.wav b/clip.flac) are refused before any work.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (- for standard input)")
    add_model_option(p)
    p.add_argument("--format", "-f", default="txt", choices=FORMATS + ("all",), help="output format (default: txt)")
    p.add_argument("--output-dir", "-o", metavar="DIR", help="write output files here instead of stdout")
    p.add_argument("--word-level", action="store_true",
                   help="one subtitle cue per word, shown until the next word starts (srt, vtt, tsv)")
    p.add_argument("--max-line-width", type=whole_number(1), metavar="N",
                   help="break subtitle lines at N characters (srt, vtt, tsv; as whisper's option)")
    p.add_argument("--max-line-count", type=whole_number(1), metavar="N",
                   help="at most N lines a subtitle cue; a longer segment goes on in the next cue")
    p.add_argument("--max-words-per-line", type=whole_number(1), metavar="N", help="at most N words a subtitle line")
    add_punctuation_option(p)
    p.add_argument("--stream", action="store_true",
                   help="feed each file through the streaming recogniser in chunks, as a microphone would")
    p.add_argument("--chunk-ms", type=number(10, 10_000, "ms"), default=100.0, metavar="N",
                   help="chunk size with --stream, 10 to 10000 ms (default: 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_decoder_options(p)
    p.set_defaults(func=cmd_transcribe)


def os_reason(err: OSError) -> str:
    """'permission denied' from PermissionError(13, 'Permission denied')."""
    text = err.strerror or type(err).__name__
    return text[:1].lower() + text[1:]


def output_base(path: str) -> str:
    """The name an input's output files take after (- is standard input: DIR/stdin.txt)."""
    return "stdin" if path == "-" else path


def output_dir_problem(output_dir: str, files: list[str], formats: list[str]) -> str | None:
    """Why --output-dir cannot take the outputs (it cannot be made or written in, or two inputs
    would write the same file), or None. Makes the folder."""
    from .writers import output_name
    try:
        os.makedirs(output_dir, exist_ok=True)
    except FileExistsError:
        return f"--output-dir {output_dir}: exists and is not a folder"
    except OSError as err:
        return f"--output-dir {output_dir}: cannot create it ({os_reason(err)})"
    try:
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as err:
        return f"--output-dir {output_dir}: cannot write in it ({os_reason(err)})"
    taken = {}
    for path in files:
        name = output_name(output_base(path), formats[0] if len(formats) == 1 else "*")
        other = taken.setdefault(name, path)
        if other != path and os.path.realpath(other) != os.path.realpath(path):
            return (f"{other} and {path} would both be written to {os.path.join(output_dir, name)}: "
                    f"transcribe them into different --output-dir folders")
    return None


def cmd_transcribe(args) -> int:
    from tqdm import tqdm

    from .audio import STDIN, AudioError, duration, open_input, source_name
    from .transcribe import transcribe
    from .writers import FORMATS, WRITERS, write_result

    if args.format == "all" and not args.output_dir:
        error("--format all writes several files: give --output-dir DIR")
        return EXIT_USAGE
    if args.files.count(STDIN) > 1:
        error("- (standard input) is given more than once")
        return EXIT_USAGE
    if STDIN in args.files and (sys.stdin is None or sys.stdin.isatty()):
        error("- reads audio from standard input, which is a terminal: pipe the audio in (... | asr transcribe -)")
        return EXIT_USAGE
    formats = list(FORMATS) if args.format == "all" else [args.format]
    if args.output_dir:
        problem = output_dir_problem(args.output_dir, args.files, formats)
        if problem:
            error(problem)
            return EXIT_USAGE
    model = load_model_or_exit(args, offline=not args.stream)
    if args.stream and not model.cfg.streaming:
        error(f"{model.source}: a bidirectional model cannot stream; drop --stream or use a unidirectional model")
        return EXIT_USAGE
    decoder = decoder_or_exit(args, model)
    sources = {path: open_input(path) for path in args.files}  # standard input and pipes are read here
    total = 0.0
    for source in sources.values():
        try:
            total += duration(source) or 0.0  # None: a stream that does not say (the bar then runs past its end)
        except AudioError:
            pass  # reported when its turn comes
    subtitles = {"word_level": args.word_level, "max_line_width": args.max_line_width,
                 "max_line_count": args.max_line_count, "max_words_per_line": args.max_words_per_line}
    failed = 0
    bar = tqdm(total=round(total, 1), unit="s", desc="transcribing", file=sys.stderr, leave=False,
               disable=True if args.no_progress else None, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
    for path in args.files:
        try:
            result = transcribe(model, sources[path], decoder, chunk_ms=args.chunk_ms if args.stream else None,
                                on_progress=lambda s: bar.update(round(s, 1)), punctuation=not args.no_punctuation)
        except AudioError as err:
            bar.clear()
            error(str(err))
            failed += 1
            continue
        if args.output_dir:
            try:
                write_result(result, output_base(path), args.output_dir, formats, **subtitles)
            except OSError as err:  # an output name taken by a folder, a read-only file, a full disk ...
                bar.clear()
                error(f"{err.filename or args.output_dir}: cannot write the transcript of {source_name(sources[path])} "
                      f"({os_reason(err)})")
                failed += 1
        else:
            text = WRITERS[args.format](result, **subtitles)
            if args.format == "json" and len(args.files) > 1:
                text = json.dumps({"file": printable(path), **result.to_dict()}, ensure_ascii=False) + "\n"
            elif len(args.files) > 1:
                text = f"==> {printable(source_name(sources[path]))} <==\n{text}"
            bar.clear()
            sys.stdout.write(text)
            sys.stdout.flush()
    bar.close()
    return EXIT_FAILED_INPUT if failed else 0


# --------------------------------------------------------------------------- models
def add_models(sub) -> None:
    p = sub.add_parser("models", help="show the bundled models' cards (or a model file's)")
    p.add_argument("--model", metavar="NAME|PATH", help="a model file or a bundled model's name (default: every bundled model)")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    from .checkpoint import BUNDLED, ModelError, bundled_model_path, resolve_model
    if args.model:
        try:
            return _show_model(resolve_model(args.model))
        except ModelError as err:
            error(str(err))
            return EXIT_USAGE
    paths = {name: bundled_model_path(name) for name in BUNDLED}
    if not any(paths.values()):
        print("No default model is bundled with this installation. Train one with `asr train` (see recipes/) "
              "and pass it with --model.")
        return 0
    for i, (name, path) in enumerate((n, p) for n, p in paths.items() if p):
        print(("\n" if i else "") + f"[{name}]" + (" (the default for live audio and --stream)" if name == "streaming"
                                                     else " (the default for `asr transcribe` and `asr evaluate`)"))
        _show_model(path)
    _show_punctuation()
    return 0


def _show_punctuation() -> None:
    """The bundled punctuation model's card, after the acoustic models'."""
    from .punctuation import DEFAULT_PATH, PunctuationError, Punctuator
    if not DEFAULT_PATH.is_file():
        return
    try:
        card = Punctuator(DEFAULT_PATH).card
    except PunctuationError as err:
        error(str(err))
        return
    print(f"\n[punctuation] (marks and capitals of every transcript; --no-punctuation leaves them out)")
    print(f"model: {DEFAULT_PATH} ({os.path.getsize(DEFAULT_PATH) / 1e6:.1f} MB)")
    for key, value in card.items():
        print(f"{key}: {json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value}")


def _show_model(path) -> int:
    from .checkpoint import ModelError, peek_payload
    from .runtime import is_runtime_file, read_model_file
    try:
        if is_runtime_file(path):
            payload, _ = read_model_file(path)
            n_params = payload["parameters"]
        else:
            payload = peek_payload(path)  # without torch
            n_params = sum(v.numel() for k, v in payload["state_dict"].items() if not k.startswith("feat_"))
    except ModelError as err:
        error(str(err))
        return EXIT_USAGE
    cfg = payload["config"]
    kind = "bidirectional (offline only)" if cfg["bidirectional"] else f"unidirectional, streaming, lookahead {cfg['lookahead']} frames"
    form = ", int8" if payload.get("int8") else ""  # runtime files of `asr export --int8`
    print(f"model: {path} ({os.path.getsize(path) / 1e6:.1f} MB, {n_params / 1e6:.2f} M parameters{form})")
    if cfg.get("frontend") == "whisper":
        n_mels, _, d, heads, layers = cfg["encoder_dims"]
        front = f"Whisper encoder ({layers} blocks of {d}, {heads} heads, {n_mels} mels; 20 ms frames)"
    else:
        front = f"{len(cfg['conv_strides'])} conv (x{math.prod(cfg['conv_strides'])} subsampling)"
    print(f"architecture: {front}, {cfg['num_layers']} x GRU {cfg['hidden_size']}, {kind}")
    card = payload.get("card") or {}
    for key, value in card.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        print(f"{key}: {value}")
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `asr` parser. argv (default: sys.argv[1:]) names the command: `serve`'s options need the
    server's defaults, whose import loads the runtime, so they are built only when `serve` is the command."""
    from .cli_live import SERVE_HELP, add_listen, add_serve
    from .cli_lm import add_lm
    from .cli_measure import add_evaluate, add_tune_lm
    from .cli_train import add_export, add_train
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    serve = add_serve if command == "serve" else (lambda sub: sub.add_parser("serve", help=SERVE_HELP))
    commands = [add_transcribe, add_train, add_evaluate, add_models, add_listen, serve, add_lm, add_tune_lm, add_export]
    parser = argparse.ArgumentParser(prog="asr", description="Streaming GRU-CTC speech recognition.")
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in commands:
        add(sub)
    return parser


# The commands that need torch (the `train` extra): they check first that it is installed and that
# torch and torchaudio load together (asr.deps). The others run on the runtime (numpy, ONNX Runtime).
NEED_TORCH = ("train", "export")


def main(argv: list[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a name that is not UTF-8 printed anywhere is escaped, not a traceback
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args = build_parser(argv).parse_args(argv)
        if args.command in NEED_TORCH:
            from .deps import torch_problem
            problem = torch_problem(f"asr {args.command}")
            if problem:
                error(problem)
                return EXIT_USAGE
        return args.func(args) or 0
    except KeyboardInterrupt:  # Ctrl-C, also while torch or the model loads: no traceback
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
