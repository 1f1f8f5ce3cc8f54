"""The engine's use of the audio cache: one key per sentence, a lookup before generating it and a
store after it ended by EOS. A hit is replayed in the chunk sizes a fresh sentence streams in.

Runs on the engine thread only (the key asks the model for its sampling settings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache

from ..audio.pcm import FRAME_SAMPLES, SAMPLE_WIDTH
from ..cache import AudioCache, CachedSentence, CacheKey, fingerprint, sampling_items
from ..voices.store import Voice, VoiceKind
from .adapter import Sampling
from .types import AudioCacheSettings, ChunkSchedule, ReferenceAudio, ReplyOptions, VoiceSettings

_LOGGER = logging.getLogger(__name__)

_FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH


def voice_identity(voice: VoiceSettings, library: Voice | None = None) -> str:
    """Fingerprint of a resolved voice: everything of it that changes the audio except the
    language and instruction (their own key fields). Reference audio counts by its content;
    a library voice by its definition and its reference audio's content."""
    identity: dict[str, object] = {
        "speaker": voice.speaker,
        "ref_audio": reference_digest(voice.ref_audio) if voice.ref_audio is not None else None,
        "ref_text": voice.ref_text,
    }
    if library is not None:
        identity["library"] = {
            "kind": library.kind.value,
            "settings": dataclasses.asdict(library.settings),
            "created": library.created,
            "ref_audio": _file_digest(library.ref_audio_path) if library.kind is VoiceKind.CLONE else None,
        }
    return fingerprint(identity)


def reference_digest(ref: str | ReferenceAudio) -> str:
    """sha256 of reference audio: a file's bytes, or in-memory samples' float32 bytes."""
    if isinstance(ref, ReferenceAudio):
        return hashlib.sha256(ref.samples.tobytes()).hexdigest()
    return _file_digest(Path(ref).expanduser())


def _file_digest(path: Path) -> str:
    stat = path.stat()
    identity = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    cached = _FILE_DIGESTS.get(identity)
    if cached is None:
        with path.open("rb") as file:
            cached = hashlib.file_digest(file, "sha256").hexdigest()
        _FILE_DIGESTS[identity] = cached
    return cached


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
"""Reference files' digests by path, size and modification time (a few files per process)."""


def open_audio_cache(settings: AudioCacheSettings) -> AudioCache | None:
    """The audio cache, or None when it is off or its folder cannot be opened (then logged: the
    engine runs on without it)."""
    if not settings.enabled:
        return None
    try:
        store = AudioCache(settings.folder, settings.size_limit_bytes)
    except (OSError, sqlite3.Error, diskcache.Timeout) as err:
        _LOGGER.warning("Audio cache off: cannot open %s: %s", settings.folder or "its folder", err)
        return None
    _LOGGER.info("Audio cache: %s (up to %d MB)", store.folder, store.size_limit // 1_000_000)
    return store


class SentenceCache:
    """Keys, lookups and stores for one loaded model in the shared audio cache."""

    def __init__(
        self,
        store: AudioCache,
        model: str,
        decoder_window: int | None,
        sampling: Callable[..., Sampling],
        *,
        row_keys: bool = False,
    ) -> None:
        """``model``: the model's fingerprint; ``sampling(cloning=...)``: its resolved sampling settings;
        ``row_keys``: sentences draw from per-row random keys (the batched path), so a seed's audio
        differs from the one-at-a-time path's and gets its own keys."""
        self.store = store
        self._model = model
        self._window = decoder_window
        self._sampling = sampling
        self._draws = {"draws": "row-key"} if row_keys else {}

    def key(self, options: ReplyOptions, index: int, text: str, library: Voice | None) -> CacheKey:
        """The key of sentence ``index`` of a reply (seeded as the engine seeds it: seed + index);
        ``library``: the library voice the reply's voice names, if any."""
        voice = options.voice
        if library is not None:
            cloning = library.kind is VoiceKind.CLONE and not library.settings.x_vector_only
        else:
            cloning = voice.ref_audio is not None and bool(voice.ref_text)
        return CacheKey(
            model=self._model,
            voice=voice_identity(voice, library),
            language=voice.language or "auto",
            instruct=voice.instruct,
            text=text,
            seed=None if options.seed is None else options.seed + index,
            sampling=sampling_items({**dataclasses.asdict(self._sampling(cloning=cloning)), **self._draws}),
            decoder_window=self._window,
        )

    def lookup(self, key: CacheKey) -> CachedSentence | None:
        return self.store.get(key)

    def save(self, key: CacheKey, pcm: bytes, frames: int, finish_reason: str) -> bool:
        """Store a finished sentence (only EOS-ended ones are kept)."""
        return self.store.put(key, pcm, frames, finish_reason)

    def close(self) -> None:
        self.store.close()


def replay_chunks(cached: CachedSentence, schedule: ChunkSchedule) -> Iterator[tuple[bytes, int]]:
    """A cached sentence as (pcm, frames) chunks in the sizes generation yields them: chunk i
    holds ``schedule.size(i)`` frames, the last one the rest."""
    offset, index = 0, 0
    while offset < cached.frames:
        frames = min(schedule.size(index), cached.frames - offset)
        yield cached.pcm[offset * _FRAME_BYTES : (offset + frames) * _FRAME_BYTES], frames
        offset += frames
        index += 1
