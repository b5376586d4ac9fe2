"""The `asr` command: thin argparse subcommands over the library."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from . import __version__

EXIT_FAILED_INPUT = 1  # some input could not be processed (the others were)
EXIT_USAGE = 2


def error(message: str) -> None:
    """One line on stderr, prefixed like argparse's own errors."""
    print(f"asr: error: {message}", file=sys.stderr, flush=True)


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PATH", help="model file (default: the bundled default model)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for the model (default: torch's)")


def load_model_or_exit(args):
    """The model named by --model (or the default); a clear error and exit 2 if unusable."""
    import torch

    from .checkpoint import ModelError, load_model
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return load_model(args.model)
    except ModelError as err:
        error(str(err))
        sys.exit(EXIT_USAGE)


def add_decoder_options(p: argparse.ArgumentParser) -> None:
    """--beam-size, --lm, --alpha, --beta, --hotword (see docs/lm.md); read by make_decoder."""
    g = p.add_argument_group("decoding", "Greedy unless --beam-size, --lm or --hotword is given (docs/lm.md).")
    g.add_argument("--beam-size", type=int, default=None, metavar="N",
                   help="CTC prefix beam search with N beams (default with --lm or --hotword: 32)")
    g.add_argument("--lm", metavar="PATH", help="n-gram language model: ARPA or KenLM binary (`asr lm build`)")
    g.add_argument("--alpha", type=float, default=None, metavar="A",
                   help="language model weight (default: 0.5; find the best with `asr tune-lm`)")
    g.add_argument("--beta", type=float, default=None, metavar="B", help="word insertion bonus (default: 1.0)")
    g.add_argument("--hotword", action="append", default=[], metavar="WORD[:WEIGHT]",
                   help="favour this word or phrase (repeatable; weight default 10, a log-prob bonus per word)")


def make_beam_search(args):
    """The BeamSearch named by the decoding options, or None for greedy. Exits 2 with one
    line on bad options or an unusable language model."""
    from .beam import DEFAULT_ALPHA, DEFAULT_BEAM_SIZE, DEFAULT_BETA, BeamOptions, BeamSearch, LMError, parse_hotword
    beam, lm, hotwords = getattr(args, "beam_size", None), getattr(args, "lm", None), getattr(args, "hotword", None) or []
    alpha, beta = getattr(args, "alpha", None), getattr(args, "beta", None)
    if beam is not None and beam < 1:
        error(f"--beam-size must be at least 1 (got {beam})")
        sys.exit(EXIT_USAGE)
    if not beam and not lm and not hotwords:
        if alpha is not None or beta is not None:
            error("--alpha and --beta weigh a language model: give --lm PATH")
            sys.exit(EXIT_USAGE)
        return None
    for name, value in (("--alpha", alpha), ("--beta", beta)):
        if value is not None and not math.isfinite(value):
            error(f"{name} must be a finite number")
            sys.exit(EXIT_USAGE)
    try:
        options = BeamOptions(beam_size=beam or DEFAULT_BEAM_SIZE,
                              alpha=DEFAULT_ALPHA if alpha is None else alpha,
                              beta=DEFAULT_BETA if beta is None else beta,
                              hotwords=tuple(parse_hotword(h) for h in hotwords))
        return BeamSearch(lm, options)
    except (ValueError, LMError) as err:
        error(str(err))
        sys.exit(EXIT_USAGE)


def make_decoder(args, model):
    """A decoder factory from the decoding options (None: greedy). Exits 2 with one line on
    bad options or an unusable language model."""
    from .audio import FRAME_SECONDS
    from .beam import BeamDecoder
    from .decoding import time_offset
    search = make_beam_search(args)
    if search is None:
        return None
    frame_seconds, offset = FRAME_SECONDS * model.cfg.subsampling, time_offset(model)
    return lambda: BeamDecoder(search, frame_seconds, offset)


# --------------------------------------------------------------------------- transcribe
def add_transcribe(sub) -> None:
    from .writers import FORMATS
    p = sub.add_parser("transcribe", help="transcribe audio files",
                       description="Transcribe WAV/FLAC/OGG/MP3 files (any rate, any channels). Without "
                                   "--output-dir the transcripts go to stdout; with it, one file per format "
                                   "is written per input, named as whisper does (clip.flac -> DIR/clip.json).")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    add_model_option(p)
    p.add_argument("--format", "-f", default="txt", choices=FORMATS + ("all",), help="output format (default: txt)")
    p.add_argument("--output-dir", "-o", metavar="DIR", help="write output files here instead of stdout")
    p.add_argument("--word-level", action="store_true", help="one subtitle cue per word (srt, vtt, tsv)")
    p.add_argument("--stream", action="store_true",
                   help="feed each file through the streaming recogniser in chunks, as a microphone would")
    p.add_argument("--chunk-ms", type=float, default=100.0, metavar="N", help="chunk size with --stream (default: 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_decoder_options(p)
    p.set_defaults(func=cmd_transcribe)


def cmd_transcribe(args) -> int:
    from tqdm import tqdm

    from .audio import AudioError, duration
    from .transcribe import transcribe
    from .writers import FORMATS, WRITERS, write_result

    if args.format == "all" and not args.output_dir:
        error("--format all writes several files: give --output-dir DIR")
        return EXIT_USAGE
    if args.stream and args.chunk_ms <= 0:
        error("--chunk-ms must be positive")
        return EXIT_USAGE
    model = load_model_or_exit(args)
    if args.stream and not model.cfg.streaming:
        error(f"{model.source}: a bidirectional model cannot stream; drop --stream or use a unidirectional model")
        return EXIT_USAGE
    decoder = make_decoder(args, model)
    formats = list(FORMATS) if args.format == "all" else [args.format]
    total = 0.0
    for path in args.files:
        try:
            total += duration(path)
        except AudioError:
            pass  # reported when its turn comes
    failed = 0
    bar = tqdm(total=round(total, 1), unit="s", desc="transcribing", file=sys.stderr, leave=False,
               disable=True if args.no_progress else None, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
    for path in args.files:
        try:
            result = transcribe(model, path, decoder, chunk_ms=args.chunk_ms if args.stream else None,
                                on_progress=lambda s: bar.update(round(s, 1)))
        except AudioError as err:
            bar.clear()
            error(str(err))
            failed += 1
            continue
        if args.output_dir:
            write_result(result, path, args.output_dir, formats, args.word_level)
        else:
            text = WRITERS[args.format](result, word_level=args.word_level)
            if args.format == "json" and len(args.files) > 1:
                text = json.dumps({"file": path, **result.to_dict()}, ensure_ascii=False) + "\n"
            elif len(args.files) > 1:
                text = f"==> {path} <==\n{text}"
            bar.clear()
            sys.stdout.write(text)
            sys.stdout.flush()
    bar.close()
    return EXIT_FAILED_INPUT if failed else 0


# --------------------------------------------------------------------------- models
def add_models(sub) -> None:
    p = sub.add_parser("models", help="show the bundled default model's card (or a model file's)")
    p.add_argument("--model", metavar="PATH", help="a model file (default: the bundled default)")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    from .checkpoint import ModelError, default_model_path, read_payload
    path = args.model or default_model_path()
    if path is None:
        print("No default model is bundled with this installation. Train one with `asr train` (see recipes/) "
              "and pass it with --model.")
        return 0
    try:
        payload = read_payload(path)
    except ModelError as err:
        error(str(err))
        return EXIT_USAGE
    cfg = payload["config"]
    n_params = sum(v.numel() for k, v in payload["state_dict"].items() if not k.startswith("feat_"))
    kind = "bidirectional (offline only)" if cfg["bidirectional"] else f"unidirectional, streaming, lookahead {cfg['lookahead']} frames"
    print(f"model: {path} ({os.path.getsize(path) / 1e6:.1f} MB, {n_params / 1e6:.2f} M parameters)")
    print(f"architecture: {len(cfg['conv_strides'])} conv (x{__import__('math').prod(cfg['conv_strides'])} subsampling), "
          f"{cfg['num_layers']} x GRU {cfg['hidden_size']}, {kind}")
    card = payload.get("card") or {}
    for key, value in card.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        print(f"{key}: {value}")
    return 0


# --------------------------------------------------------------------------- train
def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe config",
                       description="Train a GRU-CTC model. Settings come from a YAML recipe (recipes/*/*.yaml) "
                                   "and key=value overrides (model.hidden_size=256 reaches nested keys). "
                                   "Multi-GPU: torchrun --nproc-per-node N -m asr train ...")
    p.add_argument("--config", "-c", metavar="YAML", help="recipe config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt exactly where it stopped")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import logging

    from .train import Trainer, load_config
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, resume=args.resume, device=args.device, progress=not args.no_progress)
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


def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    from .data import ManifestReport, read_manifest
    from .evaluate import evaluate
    model = load_model_or_exit(args)
    report = ManifestReport()
    try:
        utts = read_manifest(args.manifest, report=report)
    except (OSError, ValueError) as err:
        error(str(err))
        return EXIT_USAGE
    if args.limit:
        utts = utts[: args.limit]
    if not utts:
        error(f"{args.manifest}: no usable utterances")
        return EXIT_FAILED_INPUT
    bar = tqdm(total=len(utts), desc="evaluating", unit="utt", file=sys.stderr, leave=False, disable=None)
    result = evaluate(model, utts, make_decoder(args, model), worst=args.worst, on_progress=lambda n: bar.update(1))
    bar.close()
    result["skipped"] += sum(report.skipped.values())
    if args.json:
        print(json.dumps(result))
    else:
        print(f"utterances: {result['utterances']} ({result['audio_seconds'] / 60:.1f} min), skipped: {result['skipped']}")
        print(f"WER: {100 * result['wer']:.2f}%  CER: {100 * result['cer']:.2f}%  RTF: {result['rtf']:.4f}")
        if result["worst"]:
            print("worst utterances:")
            for r in result["worst"]:
                print(f"  {r['id']}  errors={r['errors']}\n    ref: {r['ref']}\n    hyp: {r['hyp']}")
    return 0


# --------------------------------------------------------------------------- listen / serve
def add_endpoint_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpointing (when an utterance ends)")
    g.add_argument("--endpoint-silence", type=float, default=1.2, metavar="S",
                   help="silence after speech that ends an utterance (default: 1.2 s)")
    g.add_argument("--reset-silence", type=float, default=2.4, metavar="S",
                   help="silence with no speech that starts afresh (default: 2.4 s)")
    g.add_argument("--max-utterance", type=float, default=20.0, metavar="S",
                   help="cut an utterance at the first pause after this long (default: 20 s)")
    g.add_argument("--silence", choices=("blank", "energy", "both"), default="blank",
                   help="judge silence by the model's blank (default), the signal energy, or both")
    g.add_argument("--energy-threshold", type=float, default=-45.0, metavar="DBFS",
                   help="with --silence energy/both: level below which audio is silent (default: -45)")


def endpoint_config_or_exit(args):
    from .endpoint import EndpointConfig
    try:
        return EndpointConfig.from_seconds(args.endpoint_silence, args.reset_silence, args.max_utterance,
                                           silence=args.silence, energy_threshold=args.energy_threshold)
    except ValueError as err:
        error(str(err))
        sys.exit(EXIT_USAGE)


def streaming_model_or_exit(args):
    model = load_model_or_exit(args)
    if not model.cfg.streaming:
        error(f"{model.source}: a bidirectional model cannot stream; live transcription needs a unidirectional model")
        sys.exit(EXIT_USAGE)
    return model


def add_listen(sub) -> None:
    p = sub.add_parser("listen", help="transcribe the microphone live",
                       description="Transcribe an input device live: the partial text is redrawn in place and "
                                   "each utterance ends in a final line. Ctrl-C prints the last result and stops.")
    p.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("--device", "-d", metavar="DEV", help="input device: index or name (default: the system's)")
    p.add_argument("--save-audio", metavar="FILE", help="also record what was heard to FILE (WAV, FLAC, ...)")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text",
                   help="text, or json: one object per line (partials and finals) for piping")
    add_model_option(p)
    add_decoder_options(p)
    add_endpoint_options(p)
    p.set_defaults(func=cmd_listen)


def cmd_listen(args) -> int:
    from .listen import StopOnSignal, display_for, transcribe_live
    from .mic import Microphone, MicError, list_devices
    from .streaming import Recognizer

    if args.list_devices:
        try:
            devices = list_devices()
        except MicError as err:
            error(str(err))
            return EXIT_USAGE
        if not devices:
            print("no input devices found")
        for d in devices:
            print(f"{'*' if d['default'] else ' '} {d['index']:3d}  {d['name']} ({d['hostapi']}), "
                  f"{d['channels']} ch, {d['rate']} Hz")
        return 0
    endpoint = endpoint_config_or_exit(args)
    display = display_for(args.format)
    mic = Microphone(args.device, save_path=args.save_audio, on_warning=lambda m: display.note(f"asr: warning: {m}"))
    try:
        mic.find()  # a wrong --device fails before the model loads
    except MicError as err:
        error(str(err))
        return EXIT_USAGE
    model = streaming_model_or_exit(args)
    stream = Recognizer(model, make_decoder(args, model), endpoint=endpoint).stream()
    try:
        mic.open()
    except MicError as err:
        error(str(err))
        return EXIT_USAGE

    def announced(blocks):
        for i, block in enumerate(blocks):
            if i == 0:  # the device really delivers audio
                display.note(f"asr: listening to {mic.name} at {mic.rate} Hz; Ctrl-C to stop")
            yield block
    status = 0
    try:
        with StopOnSignal(mic.stop):
            transcribe_live(stream, announced(mic.blocks()), display, tail=mic.flush)
    except MicError as err:
        error(str(err))
        status = EXIT_FAILED_INPUT
    finally:
        closed = mic.close()
    if not closed:  # PortAudio hangs on the lost device; its exit handler would hang as well
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def add_serve(sub) -> None:
    from .server import ServerConfig
    d = ServerConfig()
    p = sub.add_parser("serve", help="a WebSocket server for live transcription (vosk-server's protocol)",
                       description="Serve streaming recognition over WebSocket with vosk-server's protocol, so "
                                   "Vosk clients work unchanged; many connections share one batched model. "
                                   "See docs/live.md.")
    p.add_argument("--host", default=d.host, help=f"address to bind (default: {d.host}; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default: {d.port}; 0 picks a free one)")
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, metavar="HZ",
                   help=f"audio rate of clients that send no config (default: {d.sample_rate})")
    p.add_argument("--max-connections", type=int, default=d.max_connections, metavar="N",
                   help=f"refuse connections beyond N (default: {d.max_connections})")
    p.add_argument("--idle-timeout", type=float, default=d.idle_timeout, metavar="S",
                   help=f"close a connection silent for S seconds (default: {d.idle_timeout:g})")
    p.add_argument("--max-message", type=int, default=d.max_message, metavar="BYTES",
                   help=f"largest message accepted (default: {d.max_message})")
    add_model_option(p)
    add_decoder_options(p)
    add_endpoint_options(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    import logging

    from .server import ServerConfig, serve
    from .streaming import Recognizer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("asr.server.ws").setLevel(logging.WARNING)  # websockets' own per-connection lines
    if not 0 <= args.port <= 65535:
        error(f"--port {args.port}: must be 0..65535")
        return EXIT_USAGE
    for name in ("sample_rate", "max_connections", "max_message"):
        if getattr(args, name) < 1:
            error(f"--{name.replace('_', '-')} must be positive")
            return EXIT_USAGE
    if args.idle_timeout <= 0:
        error("--idle-timeout must be positive")
        return EXIT_USAGE
    endpoint = endpoint_config_or_exit(args)
    model = streaming_model_or_exit(args)
    rec = Recognizer(model, make_decoder(args, model), endpoint=endpoint)
    config = ServerConfig(host=args.host, port=args.port, sample_rate=args.sample_rate,
                          max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                          max_message=args.max_message)

    def ready(host, port):
        print(f"asr: serving on ws://{host}:{port} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        serve(rec, config, on_ready=ready)
    except OSError as err:  # the port is taken, the address is not ours, ...
        error(f"cannot serve on {args.host}:{args.port}: {err.strerror or err}")
        return EXIT_USAGE
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
    from .lm import LMBuildError, convert_pocketsphinx
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
                   help="word insertion bonuses to try (default: -1,0,1,2,3)")
    p.add_argument("--beam-size", type=int, default=32, metavar="N", help="beams (default: 32)")
    p.add_argument("--hotword", action="append", default=[], metavar="WORD[:WEIGHT]", help="as for transcribe")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="only the first N utterances")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_tune_lm)


def cmd_tune_lm(args) -> int:
    from tqdm import tqdm

    from .data import ManifestReport, read_manifest
    from .evaluate import tune_lm, utterance_log_probs
    search = make_beam_search(args)  # checks the LM before the long part
    model = load_model_or_exit(args)
    try:
        utts = read_manifest(args.manifest, report=ManifestReport())
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
    if args.json:
        print(json.dumps(result))
        return 0
    wer = {(g["alpha"], g["beta"]): g["wer"] for g in result["grid"]}
    print(f"{result['utterances']} utterances, {result['words']} words; greedy WER {100 * result['greedy_wer']:.2f}%")
    print("WER % (rows: alpha, columns: beta)")
    print("alpha\\beta " + "".join(f"{b:>8g}" for b in args.betas))
    for a in args.alphas:
        print(f"{a:>10g} " + "".join(f"{100 * wer[(a, b)]:8.2f}" for b in args.betas))
    best = result["best"]
    print(f"best: --alpha {best['alpha']:g} --beta {best['beta']:g} (WER {100 * best['wer']:.2f}%)")
    return 0


COMMANDS = [add_transcribe, add_train, add_evaluate, add_models, add_listen, add_serve, add_lm, add_tune_lm]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Streaming GRU-CTC speech recognition.")
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
