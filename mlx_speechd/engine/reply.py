"""A reply: text goes in (whole or in pieces), audio chunks come out, in order."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from ..audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from ..text.sentences import SentenceStream, split_sentences
from .types import (
    AudioChunk,
    ReplyOptions,
    SpeechdError,
    SynthesisStats,
    TextTooLongError,
)


@dataclass
class _Tally:
    sentences: int = 0
    frames: int = 0
    compute_seconds: float = 0.0
    ready_at: float | None = None
    first_audio_at: float | None = None
    peak_memory: int = 0
    finish_reasons: list[str] = field(default_factory=list)


class _End:
    """Marks the end of a reply's output."""


_END = _End()


class Reply:
    """One reply on the shared engine. Thread-safe; iterate it (sync or async) for audio.

    Created by `Engine.reply()`. Feed it with `add_text` (streamed pieces),
    `add_sentences`/`end_text` (text known to be complete), then `finish()`.
    Iterating yields `AudioChunk`s and, at the end, raises the reply's error if it failed.
    """

    def __init__(
        self,
        rid: int,
        options: ReplyOptions,
        max_chars: int,
        wake: Callable[[Reply], None],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.id = rid
        self.options = options
        self._max_chars = max_chars
        self._wake = wake
        self._loop = loop
        self._lock = threading.Lock()
        self._detector = SentenceStream()
        self._pending: deque[tuple[int, str]] = deque()
        self._chars = 0
        self._sentence_count = 0
        self._input_closed = False
        self._cancelled = False
        self._done = False
        self._sequence = 0
        self._tally = _Tally()
        self.stats: SynthesisStats | None = None
        self.error: SpeechdError | None = None
        self._sync_out: queue.SimpleQueue[AudioChunk | _End] = queue.SimpleQueue()
        self._async_out: asyncio.Queue[AudioChunk | _End] | None = (
            asyncio.Queue() if loop is not None else None
        )

    # ---- input (any thread) ----
    def add_text(self, piece: str) -> None:
        """Add streamed text; complete sentences are queued for synthesis at once."""
        self._count(piece)
        self.add_sentences(self._detector.add(piece))

    def end_text(self) -> None:
        """The text so far is complete: speak any unfinished last sentence now."""
        self.add_sentences(self._detector.finish())
        self._detector = SentenceStream()

    def add_sentences(self, sentences: list[str]) -> None:
        with self._lock:
            if self._cancelled or self._done:
                return
            for sentence in sentences:
                self._pending.append((self._sentence_count, sentence))
                self._sentence_count += 1
                if self._tally.ready_at is None:
                    self._tally.ready_at = time.perf_counter()
        if sentences:
            self._wake(self)

    def speak(self, text: str) -> None:
        """Queue a complete text, split into sentences."""
        self._count(text)
        self.add_sentences(split_sentences(text))

    def finish(self) -> None:
        """No more text will come; the reply ends once everything queued is spoken."""
        self.end_text()
        with self._lock:
            self._input_closed = True
        self._wake(self)

    def cancel(self) -> None:
        """Stop: drop queued sentences, stop the running one within a frame."""
        with self._lock:
            self._cancelled = True
            self._pending.clear()
            self._input_closed = True
        self._wake(self)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _count(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > self._max_chars:
            self.cancel()
            raise TextTooLongError(f"Text is longer than the limit of {self._max_chars} characters")

    # ---- engine side (engine thread) ----
    def _next_sentence(self) -> tuple[int, str] | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def _has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending) and not self._cancelled

    def _complete(self) -> bool:
        """Whether the reply can end now (nothing more can arrive or run)."""
        with self._lock:
            return self._input_closed and (self._cancelled or not self._pending)

    def _emit(self, pcm: bytes, sentence: int, frames: int, compute: float) -> None:
        chunk = AudioChunk(pcm, self._sequence, sentence, frames, compute)
        self._sequence += 1
        if frames and self._tally.first_audio_at is None:
            self._tally.first_audio_at = time.perf_counter()
        self._put(chunk)

    def _account(self, frames: int, compute: float, peak_memory: int) -> None:
        self._tally.frames += frames
        self._tally.compute_seconds += compute
        self._tally.peak_memory = max(self._tally.peak_memory, peak_memory)

    def _sentence_done(self, reason: str) -> None:
        self._tally.sentences += 1
        self._tally.finish_reasons.append(reason)

    def _end(self, error: SpeechdError | None = None) -> bool:
        """End the reply once; returns False if it had already ended."""
        with self._lock:
            if self._done:
                return False
            self._done = True
        t = self._tally
        if self._cancelled:
            reason = "cancelled"
        elif error is not None:
            reason = f"error: {error.code}"
        else:
            reason = ", ".join(sorted(set(t.finish_reasons))) or "empty"
        ttfa = None
        if t.first_audio_at is not None and t.ready_at is not None:
            ttfa = t.first_audio_at - t.ready_at
        self.stats = SynthesisStats(
            sentences=t.sentences,
            frames=t.frames,
            audio_seconds=t.frames * FRAME_SAMPLES / SAMPLE_RATE,
            compute_seconds=t.compute_seconds,
            time_to_first_audio=ttfa,
            peak_memory_bytes=t.peak_memory,
            finish_reason=reason,
        )
        self.error = error
        self._put(_END)
        return True

    def _put(self, item: AudioChunk | _End) -> None:
        if self._async_out is None or self._loop is None:
            self._sync_out.put(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._async_out.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is gone
            self.cancel()

    # ---- output ----
    def __iter__(self) -> Iterator[AudioChunk]:
        if self._async_out is not None:
            raise TypeError("this reply was created for async iteration")
        while not isinstance(item := self._sync_out.get(), _End):
            yield item
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        if self._async_out is None:
            raise TypeError("this reply was created for sync iteration")
        while not isinstance(item := await self._async_out.get(), _End):
            yield item
        if self.error is not None:
            raise self.error
