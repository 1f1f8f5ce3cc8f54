"""The synthesis engine: model loading, streaming generation, and the single MLX thread."""

from .engine import Engine
from .loader import ModelInfo
from .reply import Reply
from .types import (
    DEFAULT_MODEL,
    AudioChunk,
    CachePolicy,
    ChunkSchedule,
    EngineClosedError,
    EngineConfig,
    EngineFailure,
    GuardSettings,
    InvalidRequestError,
    ModelLoadError,
    ReplyOptions,
    SpeechdError,
    SynthesisStats,
    TextTooLongError,
    UnknownVoiceError,
    Variant,
    VoiceSettings,
)

__all__ = [
    "DEFAULT_MODEL",
    "AudioChunk",
    "CachePolicy",
    "ChunkSchedule",
    "Engine",
    "EngineClosedError",
    "EngineConfig",
    "EngineFailure",
    "GuardSettings",
    "InvalidRequestError",
    "ModelInfo",
    "ModelLoadError",
    "Reply",
    "ReplyOptions",
    "SpeechdError",
    "SynthesisStats",
    "TextTooLongError",
    "UnknownVoiceError",
    "Variant",
    "VoiceSettings",
]
