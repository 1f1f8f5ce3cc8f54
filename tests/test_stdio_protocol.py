"""The stdio request parser on its own: every request type, and every way a line can be wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlx_speechd.frontends.stdio_protocol import (
    Cancel,
    Describe,
    ErrorCode,
    Output,
    Ping,
    ProtocolError,
    SpeechOptions,
    StreamAppend,
    StreamEnd,
    StreamStart,
    Synthesize,
    parse_request,
)


def line(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def rejected(raw: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_request(raw)
    return caught.value


def test_each_request_type() -> None:
    assert parse_request(line(type="synthesize", id="a", text="Hi.")) == Synthesize(
        "a", "Hi.", SpeechOptions()
    )
    assert parse_request(line(type="synthesize-start", id=7)) == StreamStart(7, SpeechOptions())
    assert parse_request(line(type="synthesize-append", id=7, text="Hel")) == StreamAppend(7, "Hel")
    assert parse_request(line(type="synthesize-end", id=7)) == StreamEnd(7)
    assert parse_request(line(type="cancel", id="a")) == Cancel("a")
    assert parse_request(line(type="describe", id=0)) == Describe(0)
    assert parse_request(line(type="ping", id="p")) == Ping("p")


def test_every_speech_option() -> None:
    options: dict[str, Any] = {
        "voice": "ryan",
        "language": "english",
        "instruct": "calm",
        "ref_audio": "/tmp/me.wav",
        "ref_text": "hello",
        "seed": 2**63 - 1,
        "sentence_pause": 0.25,
        "lead_in": 0,
        "wav": "/tmp/out.wav",
    }
    request = parse_request(line(type="synthesize", id=1, text="Hello.", output="none", **options))
    assert request == Synthesize(1, "Hello.", SpeechOptions(output=Output.NONE, **options))
    assert isinstance(request.options.lead_in, float)


def test_null_means_the_default() -> None:
    request = parse_request(line(type="synthesize-start", id="s", voice=None, seed=None, output=None))
    assert request == StreamStart("s", SpeechOptions())


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"{not json\n", ErrorCode.INVALID_JSON, "not a JSON line"),
        (b"\xff\xfe\n", ErrorCode.INVALID_JSON, "not a JSON line"),
        (b"[1, 2]\n", ErrorCode.INVALID_REQUEST, "must be a JSON object"),
        (line(id=1), ErrorCode.INVALID_REQUEST, "missing string field 'type'"),
        (line(type=5, id=1), ErrorCode.INVALID_REQUEST, "missing string field 'type'"),
        (line(type="sing", id=1), ErrorCode.UNKNOWN_TYPE, "unknown type 'sing'"),
        (line(type="ping"), ErrorCode.INVALID_REQUEST, "missing field 'id'"),
        (line(type="ping", id=1.5), ErrorCode.INVALID_REQUEST, "'id' must be a string or an integer"),
        (line(type="ping", id=True), ErrorCode.INVALID_REQUEST, "'id' must be a string or an integer"),
    ],
)
def test_lines_that_are_not_requests(raw: bytes, code: ErrorCode, words: str) -> None:
    error = rejected(raw)
    assert error.code == code
    assert words in error.message


def test_an_unknown_type_keeps_a_valid_id() -> None:
    error = rejected(line(type="sing", id="r1"))
    assert (error.code, error.request_id) == (ErrorCode.UNKNOWN_TYPE, "r1")
    assert rejected(line(type=None, id=3)).request_id == 3
    assert rejected(line(type="sing", id=[1])).request_id is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"type": "synthesize"}, "missing field 'text'"),
        ({"type": "synthesize", "text": 5}, "field 'text' must be a string"),
        ({"type": "synthesize-append"}, "missing field 'text'"),
        ({"type": "synthesize", "text": "x", "voice": 1}, "field 'voice' must be a string or null"),
        ({"type": "synthesize", "text": "x", "seed": -1}, "field 'seed' must be an integer from 0"),
        ({"type": "synthesize", "text": "x", "seed": 2**63}, "field 'seed' must be an integer"),
        ({"type": "synthesize", "text": "x", "seed": True}, "field 'seed' must be an integer"),
        ({"type": "synthesize", "text": "x", "seed": 1.0}, "field 'seed' must be an integer"),
        (
            {"type": "synthesize", "text": "x", "lead_in": -0.1},
            "'lead_in' must be a number of seconds from 0 to 60",
        ),
        (
            {"type": "synthesize", "text": "x", "sentence_pause": 61},
            "'sentence_pause' must be a number of seconds",
        ),
        ({"type": "synthesize", "text": "x", "sentence_pause": "1"}, "'sentence_pause' must be a number"),
        ({"type": "synthesize", "text": "x", "lead_in": False}, "'lead_in' must be a number"),
        ({"type": "synthesize", "text": "x", "output": "speaker"}, "'output' must be one of \"pcm\""),
        ({"type": "synthesize", "text": "x", "output": "none"}, '"output": "none" needs a "wav" path'),
        ({"type": "synthesize", "text": "x", "wav": ""}, "field 'wav' must be a file path"),
        (
            {"type": "synthesize", "text": "x", "colour": "red", "size": 1},
            "unknown field(s) 'colour', 'size'",
        ),
        ({"type": "synthesize-end", "text": "late"}, "unknown field(s) 'text'"),
        ({"type": "ping", "extra": None}, "unknown field(s) 'extra'"),
    ],
)
def test_bad_fields_name_the_request(fields: dict[str, Any], words: str) -> None:
    error = rejected(line(id="req", **fields))
    assert error.code == ErrorCode.INVALID_REQUEST
    assert words in error.message
    assert error.request_id == "req"


def test_non_finite_seconds_are_rejected() -> None:
    error = rejected(b'{"type": "synthesize", "id": 1, "text": "x", "lead_in": NaN}')
    assert "'lead_in' must be a number of seconds" in error.message
    error = rejected(b'{"type": "synthesize", "id": 1, "text": "x", "sentence_pause": Infinity}')
    assert "'sentence_pause' must be a number of seconds" in error.message
