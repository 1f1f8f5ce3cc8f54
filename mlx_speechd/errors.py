"""Every error mlx-speechd raises on purpose: one family, each with a stable `code`.

Front ends show the code to clients (Wyoming `error` events, stdio `error` lines); library
callers can catch `SpeechdError` for all of them or a subclass for one kind.
"""

from __future__ import annotations


class SpeechdError(Exception):
    """An error with a stable code that front ends can show to clients."""

    code = "error"


class InvalidRequestError(SpeechdError):
    """The request cannot be served as asked (bad option, missing reference audio, ...)."""

    code = "invalid-request"


class UnknownVoiceError(SpeechdError):
    """The voice is not one of the model's voices."""

    code = "unknown-voice"


class TextTooLongError(SpeechdError):
    """The text is over the configured character limit."""

    code = "text-too-long"


class ModelLoadError(SpeechdError):
    """The model cannot be found, downloaded or loaded."""

    code = "model-unavailable"


class EngineFailure(SpeechdError):
    """Synthesis failed inside the engine."""

    code = "engine-failure"


class EngineClosedError(SpeechdError):
    """The engine is shutting down (or has not started)."""

    code = "engine-closed"


class ClientTooSlowError(SpeechdError):
    """The reply's reader took no audio for longer than the stall timeout; the reply was cancelled."""

    code = "client-too-slow"


class ProtocolError(SpeechdError):
    """A client broke a wire protocol (the front ends' own errors derive from this)."""

    code = "protocol-error"


__all__ = [
    "ClientTooSlowError",
    "EngineClosedError",
    "EngineFailure",
    "InvalidRequestError",
    "ModelLoadError",
    "ProtocolError",
    "SpeechdError",
    "TextTooLongError",
    "UnknownVoiceError",
]
