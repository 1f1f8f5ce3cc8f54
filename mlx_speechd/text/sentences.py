"""Sentence boundaries for whole texts and for text that arrives in pieces."""

from __future__ import annotations

from collections.abc import Iterable

from sentence_stream import SentenceBoundaryDetector, stream_to_sentences


def split_sentences(text: str) -> list[str]:
    """Split a whole text into sentences, dropping empty ones."""
    return [s.strip() for s in stream_to_sentences([text]) if s.strip()]


class SentenceStream:
    """Turns text pieces (as an LLM streams them) into complete sentences."""

    def __init__(self) -> None:
        self._detector = SentenceBoundaryDetector()

    def add(self, piece: str) -> list[str]:
        """Add a piece of text; return the sentences it completed."""
        return _clean(self._detector.add_chunk(piece))

    def finish(self) -> list[str]:
        """Return what is left once the text has ended."""
        return _clean([self._detector.finish()])


def _clean(sentences: Iterable[str]) -> list[str]:
    return [s.strip() for s in sentences if s and s.strip()]
