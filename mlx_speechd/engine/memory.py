"""Giving the C heap's freed pages back to the system when the engine goes idle (glibc only).

MLX frees its buffers to `malloc` (at every chunk boundary with the default cache policy). glibc
raises its mmap threshold as large blocks are freed, so later buffers of those sizes come from the
heap, and what is freed there stays resident until `malloc_trim`: on Linux the daemon's idle RSS
wandered by 30 MB from one request to the next (217-247 MB over a 200-request soak, tiny model).
Trimming once the engine has been out of work for `IDLE_TRIM_AFTER_S` keeps it at the floor
(202-212 MB over the same soak) and costs nothing while it generates; the next request pays a
little to map pages again (about 2 ms of first audio on that CPU), so a burst of requests does not
trim between its requests. Other C libraries (macOS) have no `malloc_trim`: there it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable

IDLE_TRIM_AFTER_S = 2.0
"""Seconds without work after which the engine trims the heap (once per idle spell)."""


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, looked up among the process's own symbols; None with other C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    trim: Callable[[int], int] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)
    return trim


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc `malloc_trim(0)`); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)


class IdleTrimmer:
    """Calls `release_freed_memory` once per idle spell, after `IDLE_TRIM_AFTER_S` without work."""

    def __init__(self) -> None:
        self._idle_since: float | None = None
        self._trimmed = False

    def busy(self) -> None:
        """There is work: the next idle spell trims again."""
        self._idle_since, self._trimmed = None, False

    def due(self) -> bool:
        """Idle (the caller found no work): whether the trim is due now."""
        if self._idle_since is None:
            self._idle_since = time.monotonic()
        return not self._trimmed and time.monotonic() - self._idle_since >= IDLE_TRIM_AFTER_S

    def wait_seconds(self, limit: float | None) -> float | None:
        """How long the idle caller may wait for work before it should look again (at most `limit`)."""
        if self._trimmed or self._idle_since is None:
            return limit
        remaining = max(0.0, self._idle_since + IDLE_TRIM_AFTER_S - time.monotonic())
        return remaining if limit is None else min(limit, remaining)

    def trim(self) -> None:
        release_freed_memory()
        self._trimmed = True
