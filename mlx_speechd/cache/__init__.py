"""Audio cache: finished sentences' audio by content address, shared by every front end."""

from .key import (
    AUDIO_CODE_VERSION,
    Addressed,
    CacheKey,
    SegmentKey,
    canonical_json,
    fingerprint,
    sampling_items,
)
from .store import (
    DEFAULT_SIZE_LIMIT,
    STORED_FINISH_REASONS,
    AudioCache,
    CachedSentence,
    CacheInfo,
    default_folder,
)

__all__ = [
    "AUDIO_CODE_VERSION",
    "DEFAULT_SIZE_LIMIT",
    "STORED_FINISH_REASONS",
    "Addressed",
    "AudioCache",
    "CacheInfo",
    "CacheKey",
    "CachedSentence",
    "SegmentKey",
    "canonical_json",
    "default_folder",
    "fingerprint",
    "sampling_items",
]
