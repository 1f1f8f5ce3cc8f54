"""The audio cache: each EOS-ended sentence's audio stored as FLAC under its `CacheKey` digest
(and, for narration, whole segments under a `SegmentKey`).

Backed by `diskcache` (SQLite plus files), so several processes can share one folder at once.
The size is bounded: a write that takes the folder over its limit evicts the least recently used
entries, up to 10 at once (diskcache's `cull_limit`). Every entry is verified when
read: one that fails (corrupt, truncated, not ours) is logged, removed and reported as a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
import platformdirs
import soundfile as sf
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

from mlx_speechd.audio.pcm import SAMPLE_RATE, float_to_pcm16

from .key import Addressed

_LOGGER = logging.getLogger(__name__)

DEFAULT_SIZE_LIMIT = 2**30
"""Default bound on the folder's size in bytes (1 GiB)."""
STORED_FINISH_REASONS = frozenset({"eos"})
"""Only sentences that ended normally are stored: a guard's cut or a frame cap is not reusable."""
_MAGIC = b"MSDAUDIO1"
_HEADER_LENGTH = struct.Struct(">I")
_DB_TIMEOUT_SECONDS = 10.0
"""How long a cache call waits for another process's write before it counts as a miss."""


FOLDER_ENV = "MLX_SPEECHD_AUDIO_CACHE_DIR"
"""Overrides the default folder everywhere (it is also the command line's ``--audio-cache-dir``)."""


def default_folder() -> Path:
    """``$MLX_SPEECHD_AUDIO_CACHE_DIR`` if set, else the per-user cache folder (e.g.
    ``~/.cache/mlx-speechd/audio`` on Linux)."""
    if folder := os.environ.get(FOLDER_ENV):
        return Path(folder).expanduser()
    return platformdirs.user_cache_path("mlx-speechd") / "audio"


class _UnsafeEntryError(Exception):
    """A row that this cache never writes (a pickled value, or a file outside the folder)."""


class _BytesOnlyDisk(diskcache.Disk):
    """str keys and bytes values only, and nothing is ever unpickled: a folder other people can
    write to cannot run code in this process (diskcache's pickling, CVE-2025-69872), and file
    names read from the database must stay inside the folder."""

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.folder = Path(directory).resolve()

    def put(self, key: Any) -> Any:
        if type(key) is not str:
            raise TypeError("audio cache keys are str digests")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise _UnsafeEntryError("a pickled key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError("audio cache values are bytes")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (MODE_RAW, MODE_BINARY) or read:
            raise _UnsafeEntryError(f"value mode {mode}")
        if filename is not None:
            self._check_inside(filename)
        return super().fetch(mode, filename, value, read)

    def remove(self, file_path: str) -> Any:
        try:
            self._check_inside(file_path)
        except _UnsafeEntryError:
            _LOGGER.warning("Audio cache: not removing %r, which is outside its folder", file_path)
            return None
        return super().remove(file_path)

    def _check_inside(self, filename: str) -> None:
        if not (self.folder / filename).resolve().is_relative_to(self.folder):
            raise _UnsafeEntryError(f"file {filename!r} outside the cache folder")


@dataclass(frozen=True)
class CachedSentence:
    """One sentence's audio read back from the cache."""

    pcm: bytes
    """24 kHz 16-bit little-endian mono PCM, exactly as stored."""
    frames: int
    """Codec frames the audio was decoded from."""
    finish_reason: str


@dataclass(frozen=True)
class CacheInfo:
    folder: Path
    entries: int
    size_bytes: int
    """Estimated size on disk (database pages plus value files)."""
    size_limit: int


class AudioCache:
    """Content-addressed sentence audio, shared safely by threads and processes."""

    def __init__(self, folder: Path | None = None, size_limit_bytes: int | None = DEFAULT_SIZE_LIMIT) -> None:
        """Open (creating) the cache in ``folder`` (default: `default_folder()`).

        The size limit is the bound this process keeps the folder under when it writes; None
        keeps the one last set in the folder (for tools that only look or clear).
        """
        if size_limit_bytes is not None and size_limit_bytes <= 0:
            raise ValueError(f"the audio cache size must be positive, not {size_limit_bytes}")
        self.folder = Path(folder) if folder is not None else default_folder()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        limit = {} if size_limit_bytes is None else {"size_limit": size_limit_bytes}
        self._cache = diskcache.Cache(
            str(self.folder),
            timeout=_DB_TIMEOUT_SECONDS,
            disk=_BytesOnlyDisk,
            eviction_policy="least-recently-used",
            **limit,
        )
        self.size_limit = int(self._cache.size_limit)

    def put(self, key: Addressed, audio: bytes | np.ndarray, frames: int, finish_reason: str) -> bool:
        """Store a finished sentence's audio (int16 PCM bytes, or a float/int16 sample array).

        Returns whether it was stored: only EOS-ended sentences are, and a cache that cannot be
        written (busy past the timeout, disk full) is logged, never raised.
        """
        if finish_reason not in STORED_FINISH_REASONS:
            _LOGGER.debug("Audio cache: not storing a sentence that ended by %s", finish_reason)
            return False
        pcm = _as_pcm16(audio)
        digest = key.digest()
        try:
            self._cache.set(digest, _encode(digest, pcm, frames, finish_reason))
        except (diskcache.Timeout, sqlite3.Error, OSError) as err:
            _LOGGER.warning("Audio cache: could not store a sentence: %s", err)
            return False
        return True

    def get(self, key: Addressed) -> CachedSentence | None:
        """The stored audio for ``key``, verified; None on a miss or a bad entry (then removed)."""
        digest = key.digest()
        try:
            blob = self._cache.get(digest)
        except _UnsafeEntryError as err:
            self._drop(digest, str(err))
            return None
        except (diskcache.Timeout, sqlite3.Error, OSError) as err:
            _LOGGER.warning("Audio cache: lookup failed, treating it as a miss: %s", err)
            return None
        if blob is None:
            return None
        try:
            return _decode(digest, blob)
        except _CorruptEntryError as err:
            self._drop(digest, str(err))
            return None

    def __contains__(self, key: Addressed) -> bool:
        return key.digest() in self._cache

    def info(self) -> CacheInfo:
        return CacheInfo(self.folder, len(self._cache), self._cache.volume(), self.size_limit)

    def clear(self) -> int:
        """Remove every entry; returns how many."""
        return int(self._cache.clear(retry=True))

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> AudioCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop(self, digest: str, reason: str) -> None:
        _LOGGER.warning("Audio cache: removing a bad entry %s…: %s", digest[:12], reason)
        with contextlib.suppress(diskcache.Timeout, sqlite3.Error, OSError):
            self._cache.delete(digest, retry=True)


class _CorruptEntryError(Exception):
    pass


def _as_pcm16(audio: bytes | np.ndarray) -> bytes:
    if isinstance(audio, bytes):
        if len(audio) % 2:
            raise ValueError("16-bit PCM must have an even number of bytes")
        return audio
    if audio.dtype == np.int16:
        return audio.astype("<i2").tobytes()
    if np.issubdtype(audio.dtype, np.floating):
        return float_to_pcm16(audio)
    raise ValueError(f"audio must be int16 or float samples, not {audio.dtype}")


def _encode(digest: str, pcm: bytes, frames: int, finish_reason: str) -> bytes:
    """Magic, header length, JSON header, then the audio as 16-bit FLAC."""
    header = {
        "key": digest,
        "frames": frames,
        "finish_reason": finish_reason,
        "sample_rate": SAMPLE_RATE,
        "samples": len(pcm) // 2,
        "pcm_sha256": hashlib.sha256(pcm).hexdigest(),
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    flac = io.BytesIO()
    samples = np.frombuffer(pcm, dtype="<i2")
    if samples.size:
        sf.write(flac, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return _MAGIC + _HEADER_LENGTH.pack(len(header_bytes)) + header_bytes + flac.getvalue()


def _decode(digest: str, blob: bytes) -> CachedSentence:
    """Parse and verify an entry; raises `_CorruptEntryError` on any mismatch."""
    start = len(_MAGIC) + _HEADER_LENGTH.size
    if not blob.startswith(_MAGIC) or len(blob) < start:
        raise _CorruptEntryError("not an audio cache entry")
    (length,) = _HEADER_LENGTH.unpack_from(blob, len(_MAGIC))
    try:
        header = json.loads(blob[start : start + length])
        expected = (header["key"], header["sample_rate"], int(header["samples"]), header["pcm_sha256"])
        frames, finish_reason = int(header["frames"]), str(header["finish_reason"])
    except (ValueError, KeyError, TypeError) as err:
        raise _CorruptEntryError(f"unreadable header: {err}") from err
    pcm = _read_flac(blob[start + length :]) if expected[2] else b""
    found = (digest, SAMPLE_RATE, len(pcm) // 2, hashlib.sha256(pcm).hexdigest())
    if found != expected:
        raise _CorruptEntryError("audio does not match its header (truncated or altered)")
    return CachedSentence(pcm, frames, finish_reason)


def _read_flac(data: bytes) -> bytes:
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise _CorruptEntryError(f"undecodable audio: {err}") from err
    if rate != SAMPLE_RATE or samples.ndim != 1:
        raise _CorruptEntryError(f"unexpected audio layout: {rate} Hz, shape {samples.shape}")
    return samples.astype("<i2").tobytes()
