"""A reply: text goes in (whole or in pieces), audio chunks come out, in order."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

from ..errors import SpeechdError, TextTooLongError
from ..text.sentences import MAX_SENTENCE_CHARS, SentenceStream, split_sentences
from .job import Job
from .types import AudioChunk, ReplyOptions, SynthesisStats


class Reply:
    """The caller's handle on one reply from the shared engine. Thread-safe.

    Created by `Engine.reply()`. Feed it with `add_text` (streamed pieces) or `speak`
    (complete text), then `finish()`. Iterate it, with `for` or `async for` (one consumer),
    for `AudioChunk`s; at the end iteration raises the reply's error if it failed. Leaving
    the loop early (`break`, an exception) cancels the rest of the reply.
    """

    def __init__(self, job: Job, max_chars: int, max_sentence_chars: int = MAX_SENTENCE_CHARS) -> None:
        self._job = job
        self._max_chars = max_chars
        self._max_sentence_chars = max_sentence_chars
        self._lock = threading.Lock()
        self._detector = SentenceStream(max_sentence_chars)
        self._chars = 0

    @property
    def id(self) -> int:
        return self._job.id

    @property
    def options(self) -> ReplyOptions:
        """The reply's options with the voice resolved against the model."""
        return self._job.options

    @property
    def stats(self) -> SynthesisStats | None:
        """How the reply went; None until it has ended."""
        return self._job.stats

    @property
    def error(self) -> SpeechdError | None:
        """Why the reply failed, once it has ended; None if it did not."""
        return self._job.error

    @property
    def cancelled(self) -> bool:
        return self._job.cancelled

    # ---- input (any thread) ----
    def add_text(self, piece: str) -> None:
        """Add streamed text; complete sentences are queued for synthesis at once."""
        with self._lock:
            self._count(piece)
            sentences = self._detector.add(piece)
        self._job.add_sentences(sentences)

    def end_text(self) -> None:
        """The text so far is complete: speak any unfinished last sentence now."""
        with self._lock:
            sentences = self._detector.finish()
            self._detector = SentenceStream(self._max_sentence_chars)
        self._job.add_sentences(sentences)

    def speak(self, text: str) -> None:
        """Queue a complete text, split into sentences."""
        with self._lock:
            self._count(text)
        self._job.add_sentences(split_sentences(text, self._max_sentence_chars))

    def finish(self) -> None:
        """No more text will come; the reply ends once everything queued is spoken."""
        self.end_text()
        self._job.close_input()

    def cancel(self) -> None:
        """Stop: drop queued sentences, stop the running one within a frame."""
        self._job.cancel()

    def _count(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > self._max_chars:
            self._job.cancel()
            raise TextTooLongError(f"Text is longer than the limit of {self._max_chars} characters")

    # ---- output ----
    def __iter__(self) -> Iterator[AudioChunk]:
        try:
            while (chunk := self._job.output.get()) is not None:
                yield chunk
        finally:
            if not self._job.ended:  # the consumer left early
                self._job.cancel()
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        try:
            while (chunk := await self._job.output.aget()) is not None:
                yield chunk
        finally:
            if not self._job.ended:
                self._job.cancel()
        if self.error is not None:
            raise self.error
