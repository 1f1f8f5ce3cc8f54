"""Typed settings of the front ends, one-shot speech and the daemon; the CLI builds them from its options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlparse

from .engine import ReplyOptions, VoiceSettings

Device = str | int | None
"""An audio output device: a name, a PortAudio index, or None for the default one."""


def parse_device(text: str | None) -> Device:
    """A device option as PortAudio wants it: digits are an index, anything else a name."""
    return int(text) if text and text.isdigit() else text


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """A size in bytes from ``1073741824``, ``500M``, ``1G``, ``1.5GB`` or ``2GiB`` (K, M, G and T
    are powers of 1024); ValueError for anything else or a size below one byte."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 1G, 500M, 1073741824)")
    size = int(float(match[1]) * _SIZE_UNITS[match[2].lower()])
    if size < 1:
        raise ValueError(f"a size must be at least one byte, not {text!r}")
    return size


@dataclass(frozen=True)
class SpeechDefaults:
    """Per-reply settings every request gets unless it asks for others."""

    seed: int | None = None
    sentence_pause: float = 0.0
    """Seconds of silence between sentences."""
    lead_in: float = 0.0
    """Seconds of silence before the first audio."""

    def reply_options(
        self,
        voice: VoiceSettings | None = None,
        *,
        seed: int | None = None,
        sentence_pause: float | None = None,
        lead_in: float | None = None,
    ) -> ReplyOptions:
        """Options for one reply: the request's own values where given, these defaults elsewhere."""
        return ReplyOptions(
            voice=voice or VoiceSettings(),
            seed=self.seed if seed is None else seed,
            sentence_pause=self.sentence_pause if sentence_pause is None else sentence_pause,
            lead_in=self.lead_in if lead_in is None else lead_in,
        )


@dataclass(frozen=True)
class WyomingSettings:
    """The Wyoming listeners."""

    uris: tuple[str, ...]
    """tcp://HOST:PORT or unix://PATH, one listener each."""
    zeroconf: str | None = None
    """Name to advertise the first TCP listener under, or None not to advertise."""
    max_connections: int = 16
    """Most clients one listener serves at once."""
    idle_timeout: float = 60.0
    """Seconds a connection with nothing in flight may stay silent (an open text stream gets longer)."""
    event_timeout: float = 5.0
    """Seconds a started event has to arrive in full."""
    write_timeout: float = 30.0
    """Seconds a write to the client may block (it reads nothing) before the connection is closed."""

    @property
    def zeroconf_uri(self) -> str | None:
        """The listener advertised on zeroconf, if any: the first TCP one."""
        if self.zeroconf is None:
            return None
        return next((uri for uri in self.uris if urlparse(uri).scheme == "tcp"), None)


class EofPolicy(StrEnum):
    """What the stdio front end does with the requests in flight when stdin ends."""

    FINISH = "finish"
    CANCEL = "cancel"


@dataclass(frozen=True)
class StdioSettings:
    """The JSON-lines front end on stdin/stdout."""

    eof: EofPolicy = EofPolicy.FINISH
    device: Device = None
    """Output device of requests with `"output": "play"`."""


@dataclass(frozen=True)
class OutputSettings:
    """Where one-shot speech goes; with none of `wav`, `raw`, `play`, it plays."""

    wav: str | None = None
    """WAV file to write."""
    raw: bool = False
    """Raw PCM on stdout."""
    play: bool = False
    device: Device = None

    @property
    def plays(self) -> bool:
        return self.play or not (self.wav or self.raw)


@dataclass(frozen=True)
class OneshotSettings:
    """Speak `text` (or stdin, line by line, when empty) and exit."""

    text: tuple[str, ...]
    speech: SpeechDefaults
    output: OutputSettings


@dataclass(frozen=True)
class DaemonSettings:
    """The daemon: one engine behind the Wyoming listeners and/or the stdio front end."""

    speech: SpeechDefaults
    wyoming: WyomingSettings | None = None
    stdio: StdioSettings | None = None
