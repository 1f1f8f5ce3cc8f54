"""A narration's manifest (``manifest.json``): one record per segment, written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class SegmentRecord:
    """How one segment was made, and where its audio is."""

    id: str
    text: str
    voice: str | None
    """The voice asked for (the segment's, else the command line's); None: the model's default."""
    language: str | None
    instruct: str | None
    seed: int | None
    """The seed of the audio kept: the retry's seed when a retry was needed."""
    file: str | None
    """The audio file in the output folder; None when the segment failed."""
    duration: float
    finish_reason: str
    from_cache: bool
    """Every sentence of the segment came from the audio cache when it was made."""
    sentences: int
    cached_sentences: int
    sha256: str | None
    """Of the file's bytes: a rerun keeps a file only while it still matches."""
    request: str
    """Digest of everything the audio depends on (model, voice, text, seed, ...)."""
    retried: bool
    ok: bool
    """False when a runaway guard, the frame cap or an error ended the segment, even after a retry."""


@dataclass(frozen=True)
class JoinRecord:
    file: str
    duration: float
    pause: float
    sha256: str


@dataclass(frozen=True)
class Manifest:
    model: str
    format: str
    segments: tuple[SegmentRecord, ...]
    joined: JoinRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {"manifest_format": MANIFEST_FORMAT, **dataclasses.asdict(self)}


def read_records(folder: Path) -> dict[str, SegmentRecord]:
    """The previous run's records by segment id; none when there is no readable manifest."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("manifest_format") != MANIFEST_FORMAT:
            raise ValueError(f"manifest format {data.get('manifest_format')!r}")
        records = [SegmentRecord(**item) for item in data["segments"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        _LOGGER.warning("Ignoring the unreadable manifest %s (every segment is made again): %s", path, err)
        return {}
    return {record.id: record for record in records}


def write_manifest(folder: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_atomic(folder / MANIFEST_NAME, text.encode("utf-8"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``path``, then rename it over ``path``."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def file_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes; None when it cannot be read."""
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None
