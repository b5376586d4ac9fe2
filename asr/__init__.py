"""asr: a small, fast, streaming GRU-CTC speech recogniser.

    import asr
    model = asr.load_model()                      # the bundled default model
    print(asr.transcribe(model, "clip.flac").text)  # greedy
    decoder = asr.beam_decoder(model)             # beam search + the model's own LM, as the CLI
    print(asr.transcribe(model, "clip.flac", decoder).text)

    rec = asr.Recognizer(model)                    # one model, many streams
    stream = rec.stream()
    for chunk in chunks:                           # 16 kHz mono float32
        partial = stream.accept(chunk)
    result = stream.finalize()

    live = asr.Recognizer(model, endpoint=asr.EndpointConfig())  # utterances end at pauses
    stream = live.stream()
    for chunk in mic_chunks:
        partial = stream.accept(chunk)
        segment = stream.endpoint()                # a Segment when an utterance ended, else None

Live use (microphone, server) is described in docs/live.md.
"""
__version__ = "0.1.0"

from .deps import require_torch  # noqa: E402

require_torch()  # a torch/torchaudio pair that cannot load together: one line and the fix, not a traceback

from .audio import SAMPLE_RATE, AudioError, load_audio  # noqa: E402
from .beam import BeamOptions, LMError, beam_decoder  # noqa: E402
from .checkpoint import ModelError, load_model, save_model  # noqa: E402
from .decoding import GreedyDecoder, Result, Segment, Word  # noqa: E402
from .endpoint import EndpointConfig, EndpointRule  # noqa: E402
from .model import AcousticModel, ModelConfig  # noqa: E402
from .streaming import Recognizer, Stream  # noqa: E402
from .transcribe import transcribe, transcribe_array  # noqa: E402

__all__ = ["SAMPLE_RATE", "AudioError", "load_audio", "BeamOptions", "LMError", "beam_decoder", "ModelError", "load_model", "save_model", "GreedyDecoder",
           "Result", "Segment", "Word", "EndpointConfig", "EndpointRule", "AcousticModel", "ModelConfig", "Recognizer", "Stream", "transcribe",
           "transcribe_array", "__version__"]
