"""Read Wyoming events with every length and the time they take bounded.

`wyoming.event.async_read_event` trusts `data_length`/`payload_length` and reads that many
bytes; this reader checks both against limits first, decodes strictly as UTF-8, and raises
`ProtocolError` for anything that is not a well-formed event, or that does not arrive in full
within `event_seconds` of its first byte (a client dribbling a header holds no connection
for long). The header line itself is bounded by the StreamReader's limit (asyncio's default,
64 KiB, for wyoming's servers): `readline()` raises ValueError beyond it, with the buffer
never growing much past the limit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event

from .. import errors

EVENT_TIMEOUT = 5.0
"""Default `ReadLimits.event_seconds`: a client sends a whole event at once."""


class ProtocolError(errors.ProtocolError):
    """The client sent something that is not a well-formed Wyoming event within the limits."""


@dataclass(frozen=True)
class ReadLimits:
    max_data_bytes: int
    """Largest `data_length` accepted (the JSON object after the header line)."""
    max_payload_bytes: int
    """Largest `payload_length` accepted (binary payload; TTS clients send none)."""
    event_seconds: float = EVENT_TIMEOUT
    """Longest time from an event's first byte to its last."""


async def read_event(reader: asyncio.StreamReader, limits: ReadLimits, first: bytes = b"") -> Event | None:
    """The next event, or None when the client has closed the connection.

    `first` is the event's first byte when the caller has already read it (waiting for input);
    the time limit runs from the call.
    """
    try:
        async with asyncio.timeout(limits.event_seconds):
            return await _read_event(reader, limits, first)
    except TimeoutError:
        raise ProtocolError(f"an event took longer than {limits.event_seconds:g}s to arrive") from None


async def _read_event(reader: asyncio.StreamReader, limits: ReadLimits, first: bytes) -> Event | None:
    try:
        line = first + await reader.readline()
    except ValueError as err:  # no newline within the reader's limit
        raise ProtocolError(f"header line too long ({err})") from err
    if not line.endswith(b"\n"):
        return None  # EOF (possibly in the middle of a line)
    header = _json_object(line, "header")
    event_type = header.get("type")
    if not isinstance(event_type, str):
        raise ProtocolError("header has no string 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("header 'data' is not an object")
    data_length = _length(header, "data_length", limits.max_data_bytes)
    payload_length = _length(header, "payload_length", limits.max_payload_bytes)
    try:
        if data_length:
            data.update(_json_object(await reader.readexactly(data_length), "data"))
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None  # the client left in the middle of an event
    return Event(type=event_type, data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProtocolError(f"{what} is not UTF-8 JSON: {err}") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{key} {value!r} is not a length")
    if value > limit:
        raise ProtocolError(f"{key} {value} is over the limit of {limit} bytes")
    return value
