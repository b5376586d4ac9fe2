"""`asr listen` and `asr serve`: live transcription commands."""
from __future__ import annotations

import argparse
import os
import sys

from .cli_options import (EXIT_FAILED_INPUT, EXIT_USAGE, add_decoder_options, add_model_option, add_punctuation_option,
                          decoder_or_exit, error, load_model_or_exit, number)


def add_endpoint_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpointing (when an utterance ends)")
    g.add_argument("--endpoint-silence", type=number(), default=1.2, metavar="S",
                   help="silence after speech that ends an utterance (default: 1.2 s; 0: never)")
    g.add_argument("--reset-silence", type=number(), default=2.4, metavar="S",
                   help="silence with no speech that starts afresh (default: 2.4 s; 0: never)")
    g.add_argument("--max-utterance", type=number(), default=20.0, metavar="S",
                   help="cut an utterance at the first pause after this long (default: 20 s; 0: never)")
    g.add_argument("--silence", choices=("blank", "energy", "both"), default="blank",
                   help="judge silence by the model's blank (default), the signal energy, or both")
    g.add_argument("--energy-threshold", type=number(high=0, unit="dBFS"), default=-45.0, metavar="DBFS",
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
    add_punctuation_option(p)
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
    stream = Recognizer(model, decoder_or_exit(args, model), endpoint=endpoint).stream()
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
            transcribe_live(stream, announced(mic.blocks()), display, tail=mic.flush, punctuator=punctuator_for(args))
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


SERVE_HELP = "a live-transcription server: Vosk WebSocket protocol, a web page, an OpenAI-style HTTP API"


def add_serve(sub) -> None:
    from .server import ServerConfig
    d = ServerConfig()
    p = sub.add_parser("serve", help=SERVE_HELP,
                       description="Serve recognition on one port, three ways: vosk-server's WebSocket protocol "
                                   "(ws://HOST:PORT/, Vosk clients work unchanged; many connections share one "
                                   "batched model), a live-transcription page for the browser (http://HOST:PORT/), "
                                   "and the OpenAI-style HTTP API (POST /v1/audio/transcriptions, GET /v1/models), "
                                   "which transcribes a file as `asr transcribe` does (with the bundled offline "
                                   "model unless --model names one; live audio gets the streaming model). "
                                   "See docs/live.md.")
    p.add_argument("--host", default=d.host, help=f"address to bind (default: {d.host}; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default: {d.port}; 0 picks a free one)")
    p.add_argument("--sample-rate", type=sample_rate, default=d.sample_rate, metavar="HZ",
                   help=f"audio rate of clients that send no config (default: {d.sample_rate})")
    p.add_argument("--max-connections", type=int, default=d.max_connections, metavar="N",
                   help=f"refuse connections beyond N (default: {d.max_connections})")
    p.add_argument("--idle-timeout", type=float, default=d.idle_timeout, metavar="S",
                   help=f"close a connection silent for S seconds (default: {d.idle_timeout:g})")
    p.add_argument("--max-message", type=int, default=d.max_message, metavar="BYTES",
                   help=f"largest WebSocket message accepted (default: {d.max_message})")
    p.add_argument("--stall-timeout", type=float, default=d.stall_timeout, metavar="S",
                   help="close a WebSocket connection once the server has waited for it S seconds longer than "
                        "the audio it sent lasts (a client trickling bytes), and refuse an upload not received "
                        f"within S seconds (default: {d.stall_timeout:g})")
    p.add_argument("--max-upload", type=int, default=d.max_upload, metavar="BYTES",
                   help=f"largest file accepted by the HTTP API (default: {d.max_upload}, OpenAI's 25 MiB)")
    p.add_argument("--max-audio-seconds", type=float, default=d.max_audio_seconds, metavar="S",
                   help=f"refuse an upload whose audio lasts longer (default: {d.max_audio_seconds:g}, 2 h)")
    p.add_argument("--upload-workers", type=int, default=d.upload_workers, metavar="N",
                   help=f"uploads transcribed at once; the others take turns with them (default: {d.upload_workers})")
    p.add_argument("--max-uploads", type=int, default=d.max_uploads, metavar="N",
                   help="uploads in work at once, a quarter of them from one client; beyond, HTTP 503 "
                        f"(default: {d.max_uploads})")
    p.add_argument("--max-per-client", type=int, default=d.max_per_client, metavar="N",
                   help="WebSocket connections and HTTP requests in progress one client address may have; "
                        f"beyond, HTTP 429 (default: {d.max_per_client}; behind a proxy all clients share its address)")
    g = p.add_argument_group("who may use the server (docs/live.md)")
    g.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN (https://example.com, as the browser sends it; * for any) use the "
                        "server; repeatable. By default only the server's own page may")
    g.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="serve requests for the host name NAME (besides IP addresses, localhost and --host; * for "
                        "any): the names a reverse proxy or DNS gives the server; repeatable")
    g.add_argument("--api-key", default=os.environ.get("ASR_API_KEY"), metavar="KEY",
                   help="require KEY on the API and WebSockets (Authorization: Bearer KEY, as OpenAI clients send "
                        "it; the page asks for it). Default: $ASR_API_KEY, else none")
    add_model_option(p)
    add_punctuation_option(p)
    add_decoder_options(p)
    add_endpoint_options(p)
    p.set_defaults(func=cmd_serve)


def sample_rate(text: str) -> int:
    """argparse type of --sample-rate: the rule every input's rate follows (audio.sample_rate_problem)."""
    from .audio import sample_rate_problem
    try:
        rate = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of Hz") from None
    if problem := sample_rate_problem(rate):
        raise argparse.ArgumentTypeError(problem)
    return rate


def upload_models(args, rec) -> list:
    """The models the HTTP API transcribes files with, the default first: as `asr transcribe`
    picks, the bundled offline model where --model is not given and it is bundled, and the live
    (streaming) model; with --model, that model alone."""
    from .checkpoint import BUNDLED, bundled_model_path
    from .openai_api import FileModel
    punctuation = not getattr(args, "no_punctuation", False)
    live = FileModel(rec.model, rec.make_decoder, rec.endpoint,
                     id=args.model if args.model in BUNDLED else None if args.model else "streaming",
                     punctuation=punctuation)
    if args.model is not None or bundled_model_path("offline") is None:
        return [live]
    offline = load_model_or_exit(args, offline=True)
    return [FileModel(offline, decoder_or_exit(args, offline), rec.endpoint, id="offline", punctuation=punctuation), live]


def punctuator_for(args):
    """The bundled punctuation model, or None with --no-punctuation (or where none is bundled)."""
    if getattr(args, "no_punctuation", False):
        return None
    from .punctuation import bundled
    return bundled()


def cmd_serve(args) -> int:
    import logging

    from .server import ServerConfig, serve
    from .streaming import Recognizer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)  # aiohttp's own per-request lines
    try:
        config = ServerConfig(host=args.host, port=args.port, sample_rate=args.sample_rate,
                              max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                              max_message=args.max_message, stall_timeout=args.stall_timeout,
                              max_upload=args.max_upload, max_audio_seconds=args.max_audio_seconds,
                              upload_workers=args.upload_workers, max_uploads=args.max_uploads,
                              max_per_client=args.max_per_client, allow_origins=tuple(args.allow_origin),
                              allow_hosts=tuple(args.allow_host), api_key=args.api_key)
    except ValueError as err:
        error(str(err))
        return EXIT_USAGE
    endpoint = endpoint_config_or_exit(args)
    model = streaming_model_or_exit(args)
    rec = Recognizer(model, decoder_or_exit(args, model), endpoint=endpoint)
    files = upload_models(args, rec)

    def ready(host, port):
        web = f"{'[' + host + ']' if ':' in host else host}:{port}"
        print(f"asr: serving on ws://{web} (Vosk protocol), http://{web}/ (the page) and http://{web}/v1 "
              "(OpenAI-style API); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        serve(rec, config, on_ready=ready, files=files)
    except OSError as err:  # the port is taken, the address is not ours, ...
        error(f"cannot serve on {args.host}:{args.port}: {err.strerror or err}")
        return EXIT_USAGE
    return 0
