"""Sentence boundaries for whole texts and for text that arrives in pieces.

Sentences are the unit of turn-taking between replies and of the model's prefill, so a
sentence longer than `max_chars` (a text with no sentence punctuation, a list with single
line breaks) is split further: at a line break, else after sentence or clause punctuation,
else between words, else (a long run with no space, such as unpunctuated CJK) at the limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sentence_stream import SentenceBoundaryDetector, stream_to_sentences
from sentence_stream.util import remove_asterisks

MAX_SENTENCE_CHARS = 300
"""Default longest piece spoken at once: long enough for natural prosody, short enough for fair turns."""

_BOUNDARIES = (
    re.compile(r"\n"),
    # sentence ends (with closing quotes and brackets) not followed by a capital, and CJK full stops
    re.compile(r"[.!?\u2026]+[\"')\]\u2019\u201d\u00bb]*(?=\s)|[\u3002\uff01\uff1f]+"),
    # commas, semicolons, colons, closing brackets, dashes between spaces, and their CJK forms
    re.compile(r"[,;:)\]]+(?=\s)|\s[-\u2013\u2014]+(?=\s)|[\uff0c\u3001\uff1b\uff1a\uff09]"),
    re.compile(r"\s"),
)
"""Places to cut an overlong sentence, best first; a cut goes right after the match."""


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split a whole text into sentences of at most `max_chars` characters, dropping empty ones."""
    return [piece for s in stream_to_sentences([text]) for piece in split_long(s, max_chars)]


def split_long(sentence: str, max_chars: int) -> list[str]:
    """`sentence` stripped, in pieces of at most `max_chars` characters cut at the best boundaries."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces = []
    rest = sentence.strip()
    while len(rest) > max_chars:
        cut = _cut(rest, max_chars)
        if head := rest[:cut].strip():
            pieces.append(head)
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _cut(text: str, max_chars: int) -> int:
    """Where to cut `text` (longer than `max_chars`): the best boundary in its second half, or any."""
    window = text[: max_chars + 1]  # a space right after the limit is a word boundary too
    fallback = 0
    for boundary in _BOUNDARIES:
        ends = [m.end() for m in boundary.finditer(window) if m.end() <= max_chars]
        if ends and ends[-1] >= max_chars // 2:
            return ends[-1]
        if ends:
            fallback = max(fallback, ends[-1])
    return fallback or max_chars


class SentenceStream:
    """Turns text pieces (as an LLM streams them) into complete sentences of at most `max_chars`.

    A sentence still open is cut (as `split_sentences` would cut it) as soon as it is longer
    than `max_chars`, so a text without punctuation is spoken while it streams in.
    """

    def __init__(self, max_chars: int = MAX_SENTENCE_CHARS) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self._max_chars = max_chars
        self._detector = SentenceBoundaryDetector()

    def add(self, piece: str) -> list[str]:
        """Add a piece of text; return the sentences it completed."""
        sentences = self._split(self._detector.add_chunk(piece))
        while len(pending := self._open_text()) > self._max_chars:
            # nothing ended the open sentence within the limit: speak its head now, keep the rest open
            cut = _cut(pending.lstrip(), self._max_chars) + len(pending) - len(pending.lstrip())
            sentences += self._split([remove_asterisks(pending[:cut])])
            self._detector = SentenceBoundaryDetector()
            sentences += self._split(self._detector.add_chunk(pending[cut:]))
        return sentences

    def _open_text(self) -> str:
        """The text added but not yet returned as sentences."""
        return self._detector.current_sentence + self._detector.remaining_text

    def finish(self) -> list[str]:
        """Return what is left once the text has ended."""
        return self._split([self._detector.finish()])

    def _split(self, sentences: Iterable[str]) -> list[str]:
        return [piece for s in sentences if s for piece in split_long(s, self._max_chars)]
