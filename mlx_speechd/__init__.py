"""mlx-speechd: local streaming text-to-speech with Qwen3-TTS on MLX.

As a library::

    import mlx_speechd
    with mlx_speechd.load() as tts:
        tts.generate("Hello there.", voice="ryan").save("hello.wav")

See docs/python.md. The daemon and command line are `mlx-speechd --help`.
"""

__version__ = "0.1.0"

from .blas import load_mkl

load_mkl()  # before anything loads MLX: its float32 products then run on MKL, if installed (see blas.py)

from .api import (  # noqa: E402
    TTS,
    Audio,
    AudioChunk,
    EngineOptions,
    NarrateOptions,
    NarrationResult,
    SpeechOptions,
    SynthesisStats,
    load,
    narrate,
)
from .errors import (  # noqa: E402
    ClientTooSlowError,
    EngineClosedError,
    EngineFailure,
    InvalidRequestError,
    ModelLoadError,
    ProtocolError,
    SpeechdError,
    TextTooLongError,
    UnknownVoiceError,
)

__all__ = [
    "TTS",
    "Audio",
    "AudioChunk",
    "ClientTooSlowError",
    "EngineClosedError",
    "EngineFailure",
    "EngineOptions",
    "InvalidRequestError",
    "ModelLoadError",
    "NarrateOptions",
    "NarrationResult",
    "ProtocolError",
    "SpeechOptions",
    "SpeechdError",
    "SynthesisStats",
    "TextTooLongError",
    "UnknownVoiceError",
    "__version__",
    "load",
    "narrate",
]
