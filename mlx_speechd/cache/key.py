"""What a cached sentence's audio depends on, and its content address."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

AUDIO_CODE_VERSION = 3
"""Bump whenever our code changes the audio of a sentence (generation loop, sampling, decoder, PCM
conversion): every entry written before then stops matching."""

KEY_FORMAT = 1
"""Version of the key's own layout below."""

SamplingValue = float | int | bool | str | None


def canonical_json(value: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, no NaN; what digests are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def fingerprint(value: Any) -> str:
    """sha256 (hex) of ``value``'s canonical JSON: for voice definitions and other settings."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def sampling_items(settings: Mapping[str, SamplingValue]) -> tuple[tuple[str, SamplingValue], ...]:
    """Sampling settings (temperature, top_k, ...) as the sorted pairs a `CacheKey` holds."""
    return tuple(sorted(settings.items()))


class Addressed(Protocol):
    """A key of the audio cache: anything with a content address."""

    def digest(self) -> str: ...


@dataclass(frozen=True)
class SegmentKey:
    """A whole narration segment's audio (`mlx_speechd.narration`), addressed by the digest of
    everything it depends on; kept beside the sentences so that a narration whose segments are
    all cached needs no model."""

    request: str

    def digest(self) -> str:
        return fingerprint(
            {"key_format": KEY_FORMAT, "segment": self.request, "code_version": AUDIO_CODE_VERSION}
        )


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes one sentence's audio. Two requests share cached audio only when
    every field is equal."""

    model: str
    """Fingerprint of the model's weights and configs (not its name)."""
    voice: str
    """Fingerprint of the voice's full definition and prompt (speaker, description, reference
    audio and its transcript), e.g. ``fingerprint(definition)``."""
    language: str
    instruct: str | None
    text: str
    seed: int | None
    """None: the request was unseeded (its audio is still reusable, just not reproducible)."""
    sampling: tuple[tuple[str, SamplingValue], ...]
    """Resolved sampling settings, from `sampling_items`."""
    decoder_window: int | None
    code_version: int = AUDIO_CODE_VERSION

    def digest(self) -> str:
        """sha256 (hex) over the key's canonical JSON: the entry's address in the cache."""
        fields = dataclasses.asdict(self)
        fields["sampling"] = dict(self.sampling)
        return fingerprint({"key_format": KEY_FORMAT, **fields})
