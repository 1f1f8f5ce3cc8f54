"""The engine's side of a reply: queued sentences, audio out, and the tally that becomes its stats.

A `Job` is what the engine thread schedules; the caller holds a `Reply` (reply.py), which
feeds the job sentences and reads its `ChunkQueue`. The two talk through public methods only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from ..errors import SpeechdError
from .types import AudioChunk, ReplyOptions, SynthesisStats


class ChunkQueue:
    """Audio chunks from the engine thread to one consumer, sync (`get`) or async (`aget`).

    An async consumer registers its event loop on its first `aget`; every `put` then wakes
    it through `loop.call_soon_threadsafe`, so the engine thread never blocks on the loop.
    The queue counts its unsent audio: at `limit_samples` or more it is `backlogged`, and
    `on_drain` runs (on the consumer's thread) when a take brings it back under the limit.
    """

    def __init__(self, limit_samples: int | None = None, on_drain: Callable[[], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._items: deque[AudioChunk] = deque()
        self._closed = False
        self._waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._limit = limit_samples
        self._on_drain = on_drain
        self._unsent = 0
        self._last_take = time.monotonic()

    def put(self, chunk: AudioChunk) -> bool:
        """Queue a chunk; False when the async consumer's event loop is gone."""
        with self._cond:
            if self._unsent < (self._limit or 0) <= self._unsent + _samples(chunk):
                self._last_take = time.monotonic()  # the stall clock starts when the backlog does
            self._items.append(chunk)
            self._unsent += _samples(chunk)
            self._cond.notify_all()
            waker = self._waker
        return _wake(waker)

    def close(self) -> None:
        """No more chunks: consumers get None once the queued ones are taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            waker = self._waker
        _wake(waker)

    @property
    def unsent_seconds(self) -> float:
        """Seconds of audio queued and not yet taken by the consumer."""
        return self._unsent / SAMPLE_RATE

    @property
    def backlogged(self) -> bool:
        """Whether the unsent audio is at or over the limit."""
        return self._limit is not None and self._unsent >= self._limit

    def stalled_for(self) -> float:
        """Seconds since the consumer last took a chunk (or since the backlog began)."""
        return time.monotonic() - self._last_take

    def get(self) -> AudioChunk | None:
        """The next chunk, waiting for it; None at the end."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            chunk, drained = self._pop()
        if drained and self._on_drain is not None:
            self._on_drain()
        return chunk

    async def aget(self) -> AudioChunk | None:
        """The next chunk without blocking the event loop; None at the end."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._items or self._closed:
                    chunk, drained = self._pop()
                    break
                if self._waker is None or self._waker[0] is not loop:
                    self._waker = (loop, asyncio.Event())
                event = self._waker[1]
                event.clear()
            await event.wait()
        if drained and self._on_drain is not None:
            self._on_drain()
        return chunk

    def _pop(self) -> tuple[AudioChunk | None, bool]:
        """Take the first chunk, None at the end (the condition held); and whether that ended a backlog."""
        if not self._items:
            return None, False
        was_backlogged = self.backlogged
        chunk = self._items.popleft()
        self._unsent -= _samples(chunk)
        self._last_take = time.monotonic()
        return chunk, was_backlogged and not self.backlogged


def _samples(chunk: AudioChunk) -> int:
    return len(chunk.pcm) // 2


def _wake(waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None) -> bool:
    if waker is None:
        return True
    loop, event = waker
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:  # the consumer's event loop is closed
        return False
    return True


@dataclass
class _Tally:
    sentences: int = 0
    frames: int = 0
    compute_seconds: float = 0.0
    ready_at: float | None = None
    first_audio_at: float | None = None
    peak_memory: int = 0
    finish_reasons: list[str] = field(default_factory=list)
    cached_sentences: int = 0

    def stats(self, reason: str) -> SynthesisStats:
        ttfa = None
        if self.first_audio_at is not None and self.ready_at is not None:
            ttfa = self.first_audio_at - self.ready_at
        return SynthesisStats(
            sentences=self.sentences,
            frames=self.frames,
            audio_seconds=self.frames * FRAME_SAMPLES / SAMPLE_RATE,
            compute_seconds=self.compute_seconds,
            time_to_first_audio=ttfa,
            peak_memory_bytes=self.peak_memory,
            finish_reason=reason,
            cached_sentences=self.cached_sentences,
        )


class Job:
    """One reply as the engine sees it. Input and cancel come from any thread; the rest from the engine's."""

    def __init__(
        self,
        jid: int,
        options: ReplyOptions,
        wake: Callable[[Job], None],
        max_unsent_seconds: float | None = None,
    ) -> None:
        self.id = jid
        self.options = options
        limit = None if max_unsent_seconds is None else max(1, round(max_unsent_seconds * SAMPLE_RATE))
        self.output = ChunkQueue(limit, lambda: wake(self))
        self.stats: SynthesisStats | None = None
        """Set when the job ends (before its output closes)."""
        self.error: SpeechdError | None = None
        self._wake = wake
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, str]] = deque()
        self._sentence_count = 0
        self._input_closed = False
        self._cancelled = False
        self._ended = False
        self._sequence = 0
        self._tally = _Tally()

    # ---- input (any thread) ----
    def add_sentences(self, sentences: list[str]) -> None:
        """Queue sentences for synthesis (ignored once cancelled or ended)."""
        with self._lock:
            if self._cancelled or self._ended or not sentences:
                return
            for sentence in sentences:
                self._pending.append((self._sentence_count, sentence))
                self._sentence_count += 1
            if self._tally.ready_at is None:
                self._tally.ready_at = time.perf_counter()
        self._wake(self)

    def close_input(self) -> None:
        """No more sentences will come."""
        with self._lock:
            self._input_closed = True
        self._wake(self)

    def cancel(self) -> None:
        """Drop queued sentences; the running one stops within a frame."""
        with self._lock:
            self._cancelled = True
            self._pending.clear()
            self._input_closed = True
        self._wake(self)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def ended(self) -> bool:
        return self._ended

    # ---- engine thread ----
    def next_sentence(self) -> tuple[int, str] | None:
        """The next queued (index, sentence), if any."""
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending) and not self._cancelled

    def complete(self) -> bool:
        """Whether the job can end now (nothing more can arrive or run)."""
        with self._lock:
            return self._input_closed and (self._cancelled or not self._pending)

    def emit(self, pcm: bytes, sentence: int, frames: int, compute: float) -> None:
        """Send audio to the reply's reader."""
        chunk = AudioChunk(pcm, self._sequence, sentence, frames, compute)
        self._sequence += 1
        if frames and self._tally.first_audio_at is None:
            self._tally.first_audio_at = time.perf_counter()
        if not self.output.put(chunk):
            self.cancel()

    def account(self, frames: int, compute: float, peak_memory: int) -> None:
        self._tally.frames += frames
        self._tally.compute_seconds += compute
        self._tally.peak_memory = max(self._tally.peak_memory, peak_memory)

    def sentence_done(self, reason: str, *, cached: bool = False) -> None:
        """A sentence ended (``cached``: it was replayed from the audio cache)."""
        self._tally.sentences += 1
        self._tally.cached_sentences += cached
        self._tally.finish_reasons.append(reason)

    def end(self, error: SpeechdError | None = None) -> bool:
        """End the job once (stats, then the end of its output); False if it had already ended."""
        with self._lock:
            if self._ended:
                return False
            self._ended = True
        if self._cancelled:
            reason = "cancelled"
        elif error is not None:
            reason = f"error: {error.code}"
        else:
            reason = ", ".join(sorted(set(self._tally.finish_reasons))) or "empty"
        self.stats = self._tally.stats(reason)
        self.error = error
        self.output.close()
        return True
