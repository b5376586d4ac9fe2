"""asr: a small, fast, streaming GRU-CTC speech recogniser.

    import asr
    model = asr.load_model()                      # the bundled streaming model (ONNX Runtime, no torch)
    print(asr.transcribe(model, "clip.flac").text)  # as `asr transcribe`: beam search with the model's
                                                  # own LM, punctuated and capitalised
    print(asr.transcribe(model, "clip.flac", "greedy", punctuation=False).text)  # greedy, lower case
    decoder = asr.decoder_for(model, hotwords=["jeanne"])  # other decoding choices

    rec = asr.Recognizer(model)                    # one model, many streams
    stream = rec.stream()
    for chunk in chunks:                           # 16 kHz float in [-1, 1] or int16 PCM (audio.as_samples)
        partial = stream.accept(chunk)
    last = stream.finish()                         # flushes the model; without endpoints, the whole stream

    live = asr.Recognizer(model, endpoint=asr.EndpointConfig())  # utterances end at pauses
    stream = live.stream()
    for chunk in mic_chunks:
        partial = stream.accept(chunk)
        segment = stream.endpoint()                # a Segment when an utterance ended, else None

Live use (microphone, server) is described in docs/live.md.
"""
__version__ = "0.1.0"

# The public API, by the module that defines each name. The model runs on the runtime (ONNX
# Runtime and numpy: runtime.py); only the training names (TORCH_API) need torch, the train extra.
_API = {"SAMPLE_RATE": "audio", "AudioError": "audio", "load_audio": "audio", "BeamOptions": "beam", "LMError": "beam",
        "decoder_for": "beam", "ModelError": "runtime", "load_model": "export", "Model": "runtime",
        "ModelConfig": "runtime", "save_model": "checkpoint", "GreedyDecoder": "decoding", "Result": "decoding",
        "Segment": "decoding", "Word": "decoding", "EndpointConfig": "endpoint", "EndpointRule": "endpoint",
        "AcousticModel": "model", "Recognizer": "streaming", "Stream": "streaming", "transcribe": "transcribe",
        "transcribe_array": "transcribe"}
TORCH_API = ("save_model", "AcousticModel")
__all__ = [*_API, "__version__"]

from .deps import running_as_cli  # noqa: E402

if not running_as_cli():
    from .audio import SAMPLE_RATE, AudioError, load_audio  # noqa: E402
    from .beam import BeamOptions, LMError, decoder_for  # noqa: E402
    from .decoding import GreedyDecoder, Result, Segment, Word  # noqa: E402
    from .endpoint import EndpointConfig, EndpointRule  # noqa: E402
    from .export import load_model  # noqa: E402
    from .runtime import Model, ModelConfig, ModelError  # noqa: E402
    from .streaming import Recognizer, Stream  # noqa: E402
    from .transcribe import transcribe, transcribe_array  # noqa: E402
# As the `asr` command, nothing more is imported here: each subcommand imports what it needs, so
# `asr --help`, `--version` and argument errors answer at once. The API is still there, imported
# on first use (the torch names, too: with one line saying how to install torch where it is not):


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'asr' has no attribute {name!r}")
    import importlib
    if name in TORCH_API:
        from .deps import require_torch
        require_torch(f"asr.{name}")
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value
