"""The bounded Wyoming event reader, fed bytes through a real asyncio.StreamReader."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from wyoming.event import Event, write_event

from mlx_speechd.frontends.wyoming_reader import ProtocolError, ReadLimits, read_event

LIMITS = ReadLimits(max_data_bytes=1000, max_payload_bytes=100)


def stream(*chunks: bytes, limit: int = 2**16, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


def header(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


async def test_events_written_by_the_wyoming_library_read_back() -> None:
    written = io.BytesIO()
    events = [
        Event("describe"),
        Event("synthesize", data={"text": "Hello there.", "voice": {"name": "ryan"}}),
        Event("audio-chunk", data={"rate": 24000, "width": 2, "channels": 1}, payload=b"\x01\x02" * 20),
    ]
    for event in events:
        write_event(event, written)
    reader = stream(written.getvalue())
    for event in events:
        read = await read_event(reader, LIMITS)
        assert read is not None
        assert (read.type, read.data, read.payload) == (event.type, event.data, event.payload)
    assert await read_event(reader, LIMITS) is None


async def test_header_data_and_separate_data_are_merged() -> None:
    data = json.dumps({"text": "Hi."}).encode()
    raw = header(type="synthesize", data={"voice": {"name": "ryan"}}, data_length=len(data)) + data
    event = await read_event(stream(raw), LIMITS)
    assert event is not None
    assert event.data == {"voice": {"name": "ryan"}, "text": "Hi."}
    assert event.payload is None


async def test_lengths_at_the_limits_are_accepted() -> None:
    data = json.dumps({"text": "x" * (LIMITS.max_data_bytes - 12)}).encode()
    assert len(data) == LIMITS.max_data_bytes
    payload = bytes(LIMITS.max_payload_bytes)
    raw = header(type="t", data_length=len(data), payload_length=len(payload)) + data + payload
    event = await read_event(stream(raw), LIMITS)
    assert event is not None and event.payload == payload and len(event.data["text"]) == 988


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (header(type="t", data_length=1001), "data_length 1001 is over the limit of 1000 bytes"),
        (header(type="t", payload_length=101), "payload_length 101 is over the limit of 100 bytes"),
        (header(type="t", data_length=-1), "data_length -1 is not a length"),
        (header(type="t", data_length="10"), "data_length '10' is not a length"),
        (header(type="t", payload_length=True), "payload_length True is not a length"),
        (header(type="t", payload_length=1.5), "payload_length 1.5 is not a length"),
        (b"{not json\n", "header is not UTF-8 JSON"),
        (b'{"type": "t\xff"}\n', "header is not UTF-8 JSON"),
        (b"[1]\n", "header is not a JSON object"),
        (header(data={}), "header has no string 'type'"),
        (header(type=3), "header has no string 'type'"),
        (header(type="t", data=[1]), "header 'data' is not an object"),
        (header(type="t", data_length=5) + b"[1,2]", "data is not a JSON object"),
        (header(type="t", data_length=4) + b'{"a"', "data is not UTF-8 JSON"),
        (b"[" * 100000 + b"\n", "header line too long"),
    ],
)
async def test_malformed_events_are_protocol_errors(raw: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        await read_event(stream(raw), LIMITS)
    assert words in str(caught.value)


async def test_deeply_nested_json_is_a_protocol_error() -> None:
    nested = b"[" * 100000 + b"]" * 100000
    raw = header(type="t", data_length=len(nested)) + nested
    with pytest.raises(ProtocolError, match="data is not UTF-8 JSON"):
        await read_event(stream(raw), ReadLimits(len(nested), 0))


async def test_a_long_header_line_is_refused_without_reading_it_all() -> None:
    reader = stream(b"x" * 5000, limit=1024, eof=False)  # no newline yet, and the client keeps sending
    with pytest.raises(ProtocolError, match="header line too long"):
        await read_event(reader, LIMITS)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b'{"type": "describe"}',  # the client left before the newline
        header(type="t", data_length=10) + b'{"a":',  # ... in the middle of the data
        header(type="t", payload_length=10) + b"12345",  # ... in the middle of the payload
    ],
)
async def test_end_of_input_is_none(raw: bytes) -> None:
    assert await read_event(stream(raw), LIMITS) is None


async def test_waits_for_the_rest_of_an_event() -> None:
    reader = stream(header(type="t", payload_length=4) + b"ab", eof=False)
    reading = asyncio.create_task(read_event(reader, LIMITS))
    await asyncio.sleep(0)
    assert not reading.done()
    reader.feed_data(b"cd")
    event = await asyncio.wait_for(reading, 5)
    assert event is not None and event.payload == b"abcd"
