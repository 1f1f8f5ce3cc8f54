"""Narration scripts: a text, Markdown or JSON lines file read into the segments to speak.

Text and Markdown give one segment per paragraph (a heading, a paragraph, a list item and a
block-quote paragraph are each one). In Markdown only the words are kept: heading marks,
emphasis, list bullets and numbers, link targets, images, HTML and code blocks are dropped, and
inline code keeps its text without the backticks. JSON lines give one segment per line,
``{"id", "text", "voice", "language", "instruct", "seed"}`` with only ``text`` required; a
segment's own values go over the command line's. Segment ids name the output files, so they
must be unique (ignoring case, as macOS file systems do) and safe as file names; segments
without one are numbered from 001 by position.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mlx_speechd.engine import SpeechdError

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_JSON_FIELDS = frozenset({"id", "text", "voice", "language", "instruct", "seed"})
_MAX_SEED = 2**63 - 1
_MAX_REPORTED_ERRORS = 20


class ScriptError(SpeechdError):
    """A narration script that cannot be read; the message names the file and line."""

    code = "invalid-script"


class ScriptKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    JSONL = "jsonl"


_KIND_BY_SUFFIX = {
    ".txt": ScriptKind.TEXT,
    ".md": ScriptKind.MARKDOWN,
    ".markdown": ScriptKind.MARKDOWN,
    ".jsonl": ScriptKind.JSONL,
    ".ndjson": ScriptKind.JSONL,
}


@dataclass(frozen=True)
class Segment:
    """One piece of a script, spoken as one reply and written to one file named by ``id``."""

    id: str
    text: str
    voice: str | None = None
    language: str | None = None
    instruct: str | None = None
    seed: int | None = None


def read_script(source: Path | str, kind: ScriptKind | None = None) -> tuple[Segment, ...]:
    """Read a script file (``-``: standard input); the kind comes from the file name's suffix,
    else from the content (a first line starting with ``{`` is JSON lines, anything else
    Markdown)."""
    if str(source) == "-":
        return parse_script(sys.stdin.read(), kind, name="<stdin>")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScriptError(f"{path}: cannot read: {err}") from err
    return parse_script(text, kind or _KIND_BY_SUFFIX.get(path.suffix.lower()), name=str(path))


def parse_script(text: str, kind: ScriptKind | None = None, name: str = "<script>") -> tuple[Segment, ...]:
    """Segments of a script's text (kind None: guessed from the content)."""
    kind = kind or _guess_kind(text)
    if kind is ScriptKind.JSONL:
        segments = _parse_jsonl(text, name)
    else:
        paragraphs = _text_paragraphs(text) if kind is ScriptKind.TEXT else _markdown_paragraphs(text)
        width = _id_width(len(paragraphs))
        segments = tuple(Segment(_index_id(index, width), words) for index, words in enumerate(paragraphs))
    if not segments:
        raise ScriptError(f"{name}: nothing to speak")
    return segments


def make_segments(items: Iterable[str | Segment]) -> tuple[Segment, ...]:
    """Segments from texts and `Segment`s (texts are numbered by position, as script paragraphs
    are); ids are checked as a JSON-lines script's are."""
    items = list(items)
    width = _id_width(len(items))
    segments: list[Segment] = []
    errors: list[str] = []
    for index, item in enumerate(items):
        segment = Segment(_index_id(index, width), item) if isinstance(item, str) else item
        try:
            _segment_id(segment.id, "")
            if not segment.text.strip():
                raise ScriptError("the text is empty")
        except ScriptError as err:
            errors.append(f"segment {index + 1}: {err}")
        segments.append(dataclasses.replace(segment, text=_collapse(segment.text)))
    errors += _repeated_ids((index + 1, segment) for index, segment in enumerate(segments))
    if errors:
        raise ScriptError(
            f"{len(errors)} problem(s) in the segments: {'; '.join(errors[:_MAX_REPORTED_ERRORS])}"
        )
    if not segments:
        raise ScriptError("nothing to speak")
    return tuple(segments)


def _repeated_ids(numbered: Iterable[tuple[int, Segment]], what: str = "segment") -> list[str]:
    seen: dict[str, int] = {}
    errors = []
    for number, segment in numbered:
        folded = segment.id.casefold()
        if folded in seen:
            errors.append(f"{what} {number}: id {segment.id!r} repeats {what} {seen[folded]}'s")
        seen.setdefault(folded, number)
    return errors


def _guess_kind(text: str) -> ScriptKind:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return ScriptKind.JSONL if first.lstrip().startswith("{") else ScriptKind.MARKDOWN


def _id_width(count: int) -> int:
    return max(3, len(str(count)))


def _index_id(index: int, width: int) -> str:
    return str(index + 1).zfill(width)


def _collapse(text: str) -> str:
    return " ".join(text.split())


# --- text and Markdown --------------------------------------------------------------------------


def _text_paragraphs(text: str) -> list[str]:
    paragraphs = (_collapse(block) for block in re.split(r"\n\s*\n", text))
    return [paragraph for paragraph in paragraphs if paragraph]


_MARKDOWN = MarkdownIt("commonmark")


def _markdown_paragraphs(text: str) -> list[str]:
    """The spoken words of each block with inline content: headings, paragraphs, list items.
    Code blocks, fences and HTML blocks carry no inline content, so they are left out."""
    paragraphs = (_collapse("".join(_inline_words(token))) for token in _MARKDOWN.parse(text))
    return [paragraph for paragraph in paragraphs if paragraph]


def _inline_words(block: Token) -> Iterator[str]:
    if block.type != "inline":
        return
    for token in block.children or ():
        if token.type in ("text", "code_inline"):
            yield token.content
        elif token.type in ("softbreak", "hardbreak"):
            yield " "
        # Emphasis and link marks, images and inline HTML have no words of their own.


# --- JSON lines ---------------------------------------------------------------------------------


def _parse_jsonl(text: str, name: str) -> tuple[Segment, ...]:
    """Validate every line, then the ids across lines; report every problem found at once."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    width = _id_width(len(lines))
    errors: list[str] = []
    segments: list[tuple[int, Segment]] = []
    for index, (number, line) in enumerate(lines):
        try:
            segments.append((number, _segment_from_json(line, _index_id(index, width))))
        except ScriptError as err:
            errors.append(f"line {number}: {err}")
    errors += _repeated_ids(segments, "line")
    if errors:
        shown = "\n  ".join(errors[:_MAX_REPORTED_ERRORS])
        more = len(errors) - _MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ScriptError(f"{name}: {len(errors)} problem(s) in the JSON lines:\n  {shown}{tail}")
    return tuple(segment for _, segment in segments)


def _segment_from_json(line: str, default_id: str) -> Segment:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise ScriptError(f"not JSON: {err.msg} (column {err.colno})") from err
    if not isinstance(item, dict):
        raise ScriptError(f"expected a JSON object, got {type(item).__name__}")
    unknown = sorted(item.keys() - _JSON_FIELDS)
    if unknown:
        raise ScriptError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_JSON_FIELDS))}")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ScriptError('"text" must be a non-empty string')
    return Segment(
        id=_segment_id(item.get("id"), default_id),
        text=_collapse(text),
        voice=_optional_str(item, "voice"),
        language=_optional_str(item, "language"),
        instruct=_optional_str(item, "instruct"),
        seed=_seed(item.get("seed")),
    )


def _segment_id(value: Any, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or value.endswith("."):
        raise ScriptError(
            f'"id" {value!r} is not a safe file name: 1-100 letters, digits, ".", "_" or "-", '
            "starting with a letter or digit and not ending with a dot"
        )
    return value


def _optional_str(item: dict[str, Any], field: str) -> str | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ScriptError(f'"{field}" must be a non-empty string or null')
    return value.strip()


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SEED:
        raise ScriptError(f'"seed" must be an integer from 0 to 2**63-1 or null, not {value!r}')
    return value
