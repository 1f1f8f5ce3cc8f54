"""Narration scripts: Markdown and text paragraphs, JSON lines validation, segment ids."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mlx_speechd.engine import SpeechdError
from mlx_speechd.narration import ScriptError, ScriptKind, Segment, make_segments, parse_script, read_script

MARKDOWN = """\
# Chapter *One*

The **quick** brown _fox_ jumps over the [lazy dog](https://example.com/dog "title").
It runs `make` at night.

## A list

- First point
* Second [point][ref]
1. Numbered item

> A quoted thought,
> over two lines.

```python
print("never read aloud")
```

    indented code, never read aloud

![a diagram](diagram.png) Caption after the image.

<div>raw html block</div>

Escaped \\*stars\\* and an &amp; entity.

[ref]: https://example.com/ref
"""


def _texts(segments: tuple[Segment, ...]) -> list[str]:
    return [segment.text for segment in segments]


def test_markdown_markup_is_not_read_aloud() -> None:
    segments = parse_script(MARKDOWN, ScriptKind.MARKDOWN)
    assert _texts(segments) == [
        "Chapter One",
        "The quick brown fox jumps over the lazy dog. It runs make at night.",
        "A list",
        "First point",
        "Second point",
        "Numbered item",
        "A quoted thought, over two lines.",
        "Caption after the image.",
        "Escaped *stars* and an & entity.",
    ]
    assert [segment.id for segment in segments] == [f"{i:03d}" for i in range(1, 10)]
    spoken = " ".join(_texts(segments))
    for markup in ("#", "**", "_fox_", "https://", "`", "never read aloud", "<div>", "diagram", "]"):
        assert markup not in spoken


def test_plain_text_is_split_on_blank_lines_and_kept_verbatim() -> None:
    text = "First line\nsame *paragraph*.\n\n  \n# Not a heading in a text file.\n\n\n"
    assert _texts(parse_script(text, ScriptKind.TEXT)) == [
        "First line same *paragraph*.",
        "# Not a heading in a text file.",
    ]


def test_ids_widen_with_the_segment_count() -> None:
    text = "\n\n".join(f"Paragraph {i}." for i in range(1200))
    ids = [segment.id for segment in parse_script(text, ScriptKind.TEXT)]
    assert ids[0] == "0001" and ids[-1] == "1200"


def test_kind_from_suffix_and_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("*kept* as is\n")
    (tmp_path / "a.md").write_text("*not kept*\n")
    (tmp_path / "a.jsonl").write_text('{"text": "from json"}\n')
    (tmp_path / "script").write_text('\n  {"text": "sniffed json", "id": "intro"}\n')
    assert _texts(read_script(tmp_path / "a.txt")) == ["*kept* as is"]
    assert _texts(read_script(tmp_path / "a.md")) == ["not kept"]
    assert _texts(read_script(tmp_path / "a.jsonl")) == ["from json"]
    assert read_script(tmp_path / "script") == (Segment("intro", "sniffed json"),)
    assert _texts(read_script(tmp_path / "a.txt", ScriptKind.MARKDOWN)) == ["kept as is"]
    monkeypatch.setattr("sys.stdin", io.StringIO("# Heading\n\nBody *text*.\n"))
    assert _texts(read_script("-")) == ["Heading", "Body text."]


def test_unreadable_or_empty_scripts(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="cannot read"):
        read_script(tmp_path / "missing.md")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ScriptError, match="cannot read"):
        read_script(tmp_path / "latin1.txt")
    with pytest.raises(ScriptError, match="nothing to speak"):
        parse_script("```\nonly code\n```\n", ScriptKind.MARKDOWN)
    with pytest.raises(ScriptError, match="nothing to speak"):
        parse_script("\n \n", ScriptKind.JSONL)


def test_json_lines_fields_and_defaults() -> None:
    lines = [
        {"id": "intro", "text": "  Hello\n there. ", "voice": "narrator", "seed": 3},
        {"text": "Second.", "language": "german", "instruct": "calmly", "voice": None},
        {"id": 7, "text": "Third."},
    ]
    script = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n"
    assert parse_script(script, ScriptKind.JSONL) == (
        Segment("intro", "Hello there.", voice="narrator", seed=3),
        Segment("002", "Second.", language="german", instruct="calmly"),
        Segment("7", "Third."),
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ('{"text": "x", "voise": "a"}', "line 2: unknown field(s) voise"),
        ('{"id": "b"}', 'line 2: "text" must be a non-empty string'),
        ('{"text": "   "}', 'line 2: "text" must be a non-empty string'),
        ('{"text": 5}', 'line 2: "text" must be a non-empty string'),
        ('{"text": "x", "voice": 3}', 'line 2: "voice" must be a non-empty string or null'),
        ('{"text": "x", "seed": "1"}', 'line 2: "seed" must be an integer'),
        ('{"text": "x", "seed": true}', 'line 2: "seed" must be an integer'),
        ('{"text": "x", "seed": -1}', 'line 2: "seed" must be an integer'),
        ('{"text": "x", "seed": 1.5}', 'line 2: "seed" must be an integer'),
        ('{"text": "x", "id": "../etc"}', "line 2: \"id\" '../etc' is not a safe file name"),
        ('{"text": "x", "id": "a/b"}', "not a safe file name"),
        ('{"text": "x", "id": ".hidden"}', "not a safe file name"),
        ('{"text": "x", "id": "trailing."}', "not a safe file name"),
        ('{"text": "x", "id": ""}', "not a safe file name"),
        ('{"text": "x", "id": "' + "a" * 101 + '"}', "not a safe file name"),
        ('{"text": "x", "id": -3}', "not a safe file name"),
        ('{"text": "x", "id": "FIRST"}', "line 2: id 'FIRST' repeats line 1's"),
        ('{"text": "x", "id": "002"}', None),  # its own index id: allowed, not a repeat
    ],
)
def test_json_lines_errors_name_the_line(line: str, message: str | None) -> None:
    script = '{"id": "first", "text": "Fine."}\n' + line + "\n"
    if message is None:
        assert [segment.id for segment in parse_script(script, ScriptKind.JSONL)] == ["first", "002"]
        return
    with pytest.raises(ScriptError, match="problem") as caught:
        parse_script(script, ScriptKind.JSONL, name="book.jsonl")
    assert str(caught.value).startswith("book.jsonl: 1 problem(s)")
    assert message in str(caught.value)


def test_json_lines_report_every_problem_and_index_id_clashes() -> None:
    script = '{"text": "a"}\n{"text": "b", "id": "001"}\n{"oops": 1}\n'
    with pytest.raises(ScriptError) as caught:
        parse_script(script, ScriptKind.JSONL)
    text = str(caught.value)
    assert "3 problem(s)" not in text and "2 problem(s)" in text
    assert "line 2: id '001' repeats line 1's" in text
    assert "line 3: unknown field(s) oops" in text
    assert isinstance(caught.value, SpeechdError) and caught.value.code == "invalid-script"


def test_many_problems_are_capped_in_the_message() -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script("{}\n" * 25, ScriptKind.JSONL)
    assert "25 problem(s)" in str(caught.value) and "... and 5 more" in str(caught.value)


def test_make_segments_numbers_texts_and_checks_ids() -> None:
    segments = make_segments(["First  text.", Segment("outro", "Last\ntext.", voice="ryan")])
    assert segments == (Segment("001", "First text."), Segment("outro", "Last text.", voice="ryan"))
    with pytest.raises(ScriptError, match="repeats"):
        make_segments(["One.", Segment("001", "Two.")])
    with pytest.raises(ScriptError, match="not a safe file name"):
        make_segments([Segment("../up", "Text.")])
    with pytest.raises(ScriptError, match="empty"):
        make_segments(["  "])
    with pytest.raises(ScriptError, match="nothing to speak"):
        make_segments([])
