"""The synthesis engine: model loading, streaming generation, and the single MLX thread."""

from ..errors import (
    ClientTooSlowError,
    EngineClosedError,
    EngineFailure,
    InvalidRequestError,
    ModelLoadError,
    SpeechdError,
    TextTooLongError,
    UnknownVoiceError,
)
from .engine import Engine
from .reply import Reply
from .types import (
    DEFAULT_AUDIO_CACHE_SIZE,
    DEFAULT_MODEL,
    AudioCacheSettings,
    AudioChunk,
    CachePolicy,
    ChunkSchedule,
    EngineConfig,
    GuardSettings,
    ModelInfo,
    ReferenceAudio,
    ReplyOptions,
    SynthesisStats,
    Variant,
    VoiceSettings,
)

__all__ = [
    "DEFAULT_AUDIO_CACHE_SIZE",
    "DEFAULT_MODEL",
    "AudioCacheSettings",
    "AudioChunk",
    "CachePolicy",
    "ChunkSchedule",
    "ClientTooSlowError",
    "Engine",
    "EngineClosedError",
    "EngineConfig",
    "EngineFailure",
    "GuardSettings",
    "InvalidRequestError",
    "ModelInfo",
    "ModelLoadError",
    "ReferenceAudio",
    "Reply",
    "ReplyOptions",
    "SpeechdError",
    "SynthesisStats",
    "TextTooLongError",
    "UnknownVoiceError",
    "Variant",
    "VoiceSettings",
]
