"""The JSON-lines stdio protocol (docs/protocol.md): request parsing and response messages.

One JSON object per line in each direction. This module holds no I/O: `parse_request`
turns a line into a request dataclass (or raises `ProtocolError`), and the `*_message`
functions build the response objects that the server writes.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .. import __version__, errors
from ..audio.pcm import CHANNELS, SAMPLE_WIDTH
from ..engine import AudioChunk, Engine, SynthesisStats

PROTOCOL_VERSION = 1

RequestId = str | int
Message = dict[str, Any]


class ErrorCode(StrEnum):
    """Codes of errors found by the stdio front end (the engine adds its own, e.g. unknown-voice)."""

    INVALID_JSON = "invalid-json"
    INVALID_REQUEST = "invalid-request"
    UNKNOWN_TYPE = "unknown-type"
    LINE_TOO_LONG = "line-too-long"
    DUPLICATE_ID = "duplicate-id"
    UNKNOWN_REQUEST = "unknown-request"
    OUTPUT_FAILED = "output-failed"
    INTERNAL_ERROR = "internal-error"


class ProtocolError(errors.ProtocolError):
    """A request line that cannot be served; becomes an `error` line."""

    def __init__(self, code: str, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class Output(StrEnum):
    """Where a request's audio goes as it is generated."""

    PCM = "pcm"
    """`audio-chunk` lines on stdout (base64 PCM)."""
    PLAY = "play"
    """The daemon's own audio output device."""
    NONE = "none"
    """Nowhere (use with `wav`)."""


@dataclass(frozen=True)
class SpeechOptions:
    """Voice and output settings of `synthesize` and `synthesize-start`; None means the daemon default."""

    voice: str | None = None
    language: str | None = None
    instruct: str | None = None
    ref_audio: str | None = None
    ref_text: str | None = None
    seed: int | None = None
    sentence_pause: float | None = None
    lead_in: float | None = None
    output: Output = Output.PCM
    wav: str | None = None


@dataclass(frozen=True)
class Synthesize:
    id: RequestId
    text: str
    options: SpeechOptions


@dataclass(frozen=True)
class StreamStart:
    id: RequestId
    options: SpeechOptions


@dataclass(frozen=True)
class StreamAppend:
    id: RequestId
    text: str


@dataclass(frozen=True)
class StreamEnd:
    id: RequestId


@dataclass(frozen=True)
class Cancel:
    id: RequestId


@dataclass(frozen=True)
class Describe:
    id: RequestId


@dataclass(frozen=True)
class Ping:
    id: RequestId


Request = Synthesize | StreamStart | StreamAppend | StreamEnd | Cancel | Describe | Ping

MAX_SECONDS = 60.0
MAX_SEED = 2**63 - 1


class _Fields:
    """Takes typed fields out of a request object; complains about wrong types and leftovers."""

    def __init__(self, data: dict[str, Any], request_id: RequestId) -> None:
        self._data = dict(data)
        self._id = request_id

    def _fail(self, message: str) -> ProtocolError:
        return ProtocolError(ErrorCode.INVALID_REQUEST, message, self._id)

    def text(self, name: str) -> str:
        if name not in self._data:
            raise self._fail(f"missing field '{name}'")
        value = self._data.pop(name)
        if not isinstance(value, str):
            raise self._fail(f"field '{name}' must be a string")
        return self._unicode(name, value)

    def optional_text(self, name: str) -> str | None:
        value = self._data.pop(name, None)
        if value is not None and not isinstance(value, str):
            raise self._fail(f"field '{name}' must be a string or null")
        return value if value is None else self._unicode(name, value)

    def _unicode(self, name: str, value: str) -> str:
        """`value`, unless it holds a lone surrogate (a JSON escape such as \\ud800 that is no character)."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise self._fail(f"field '{name}' is not valid Unicode: {err.reason} at {err.start}") from None
        return value

    def optional_int(self, name: str, low: int, high: int) -> int | None:
        value = self._data.pop(name, None)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(f"field '{name}' must be an integer from {low} to {high}")
        return value

    def optional_seconds(self, name: str) -> float | None:
        value = self._data.pop(name, None)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= MAX_SECONDS
        ):
            raise self._fail(f"field '{name}' must be a number of seconds from 0 to {MAX_SECONDS:g}")
        return float(value)

    def output(self) -> Output:
        value = self._data.pop("output", None)
        if value is None:
            return Output.PCM
        try:
            return Output(value)
        except ValueError:
            choices = ", ".join(f'"{o.value}"' for o in Output)
            raise self._fail(f"field 'output' must be one of {choices}") from None

    def done(self) -> None:
        if self._data:
            names = ", ".join(f"'{name}'" for name in sorted(self._data))
            raise self._fail(f"unknown field(s) {names}")


def _speech_options(fields: _Fields) -> SpeechOptions:
    options = SpeechOptions(
        voice=fields.optional_text("voice"),
        language=fields.optional_text("language"),
        instruct=fields.optional_text("instruct"),
        ref_audio=fields.optional_text("ref_audio"),
        ref_text=fields.optional_text("ref_text"),
        seed=fields.optional_int("seed", 0, MAX_SEED),
        sentence_pause=fields.optional_seconds("sentence_pause"),
        lead_in=fields.optional_seconds("lead_in"),
        output=fields.output(),
        wav=fields.optional_text("wav"),
    )
    if options.output is Output.NONE and not options.wav:
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST, '"output": "none" needs a "wav" path (or nothing is produced)'
        )
    if options.wav == "":
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "field 'wav' must be a file path")
    return options


def _request_id(data: dict[str, Any]) -> RequestId:
    if "id" not in data:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "missing field 'id'")
    value = data["id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "field 'id' must be a string or an integer")
    return value


def parse_request(line: bytes) -> Request:
    """Parse one request line (without caring about a trailing newline)."""
    try:
        data = json.loads(line)
    except (
        ValueError,
        RecursionError,
    ) as err:  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
        raise ProtocolError(ErrorCode.INVALID_JSON, f"not a JSON line: {err}") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "a request must be a JSON object")
    kind = data.pop("type", None)
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "missing string field 'type'", _safe_id(data))
    if kind not in _PARSERS:
        known = ", ".join(_PARSERS)
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown type '{kind}' (known: {known})", _safe_id(data))
    request_id = _request_id(data)
    del data["id"]
    fields = _Fields(data, request_id)
    try:
        request = _PARSERS[kind](request_id, fields)
        fields.done()
    except ProtocolError as err:
        err.request_id = request_id
        raise
    return request


def _safe_id(data: dict[str, Any]) -> RequestId | None:
    try:
        return _request_id(data)
    except ProtocolError:
        return None


def _synthesize(rid: RequestId, fields: _Fields) -> Request:
    return Synthesize(rid, fields.text("text"), _speech_options(fields))


def _stream_start(rid: RequestId, fields: _Fields) -> Request:
    return StreamStart(rid, _speech_options(fields))


def _stream_append(rid: RequestId, fields: _Fields) -> Request:
    return StreamAppend(rid, fields.text("text"))


_PARSERS = {
    "synthesize": _synthesize,
    "synthesize-start": _stream_start,
    "synthesize-append": _stream_append,
    "synthesize-end": lambda rid, _: StreamEnd(rid),
    "cancel": lambda rid, _: Cancel(rid),
    "describe": lambda rid, _: Describe(rid),
    "ping": lambda rid, _: Ping(rid),
}


# ---- responses ----
def encode(message: Message) -> bytes:
    """One protocol line: compact ASCII JSON and a newline."""
    return json.dumps(message, separators=(",", ":")).encode("ascii") + b"\n"


def info_message(
    kind: str, engine: Engine, max_line_bytes: int, request_id: RequestId | None = None
) -> Message:
    """`ready` (at start-up) or `info` (the answer to `describe`): what this daemon serves.

    It reads the voice library (a voice added while the daemon runs is listed): call it off the event loop.
    """
    info = engine.info
    message: Message = {"type": kind}
    if request_id is not None:
        message["id"] = request_id
    message.update(
        protocol=PROTOCOL_VERSION,
        version=__version__,
        model=info.name,
        variant=info.variant.value,
        sample_rate=info.sample_rate,
        sample_width=SAMPLE_WIDTH,
        channels=CHANNELS,
        sample_format="s16le",
        models=[{"name": m.name, "variant": m.variant.value, "size": m.size} for m in engine.models],
        voices=[
            {
                "name": entry.name,
                "languages": list(entry.languages),
                "kind": entry.kind,
                "model": entry.model,
                "description": entry.description,
            }
            for entry in engine.voice_entries()
        ],
        default_voice=engine.default_voice,
        outputs=[output.value for output in Output],
        max_text_chars=engine.config.max_text_chars,
        max_line_bytes=max_line_bytes,
    )
    return message


def audio_start_message(request_id: RequestId, rate: int) -> Message:
    return {
        "type": "audio-start",
        "id": request_id,
        "rate": rate,
        "width": SAMPLE_WIDTH,
        "channels": CHANNELS,
    }


def audio_chunk_message(request_id: RequestId, chunk: AudioChunk) -> Message:
    return {
        "type": "audio-chunk",
        "id": request_id,
        "seq": chunk.sequence,
        "sentence": chunk.sentence,
        "audio": base64.b64encode(chunk.pcm).decode("ascii"),
    }


def done_message(request_id: RequestId, stats: SynthesisStats, chunks: int, wav: str | None) -> Message:
    message: Message = {
        "type": "done",
        "id": request_id,
        "finish_reason": stats.finish_reason,
        "time_to_first_audio": _rounded(stats.time_to_first_audio),
        "real_time_factor": _rounded(stats.real_time_factor),
        "audio_seconds": _rounded(stats.audio_seconds),
        "compute_seconds": _rounded(stats.compute_seconds),
        "frames": stats.frames,
        "sentences": stats.sentences,
        "cached_sentences": stats.cached_sentences,
        "chunks": chunks,
        "peak_memory_bytes": stats.peak_memory_bytes,
    }
    if wav is not None:
        message["wav"] = wav
    return message


def error_message(request_id: RequestId | None, code: str, message: str) -> Message:
    return {"type": "error", "id": request_id, "code": code, "message": message}


def pong_message(request_id: RequestId) -> Message:
    return {"type": "pong", "id": request_id}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
