"""Sentence segmentation: overlong sentences are cut at the best boundary within the limit."""

from __future__ import annotations

import random

import pytest

from mlx_speechd.text.sentences import MAX_SENTENCE_CHARS, SentenceStream, split_sentences

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "watches"]
CJK_COMMA = "\uff0c"


def _words(count: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(count))


def _streamed(text: str, max_chars: int, seed: int) -> list[str]:
    """`text` through a SentenceStream in random pieces (1 to 40 characters)."""
    rng = random.Random(seed)
    stream = SentenceStream(max_chars)
    sentences: list[str] = []
    position = 0
    while position < len(text):
        size = rng.randint(1, 40)
        sentences += stream.add(text[position : position + size])
        position += size
    return sentences + stream.finish()


def test_short_sentences_are_unchanged() -> None:
    text = "Hello there. How are you today? I am fine, thanks!"
    assert split_sentences(text) == ["Hello there.", "How are you today?", "I am fine, thanks!"]


def test_a_text_without_punctuation_is_cut_between_words() -> None:
    text = _words(2000)  # about 10,000 characters, no sentence punctuation at all
    pieces = split_sentences(text)
    assert all(MAX_SENTENCE_CHARS // 2 <= len(p) <= MAX_SENTENCE_CHARS for p in pieces[:-1])
    assert 0 < len(pieces[-1]) <= MAX_SENTENCE_CHARS
    assert " ".join(pieces) == text  # nothing lost, no word cut in two


def test_clause_punctuation_is_preferred_to_a_word_boundary() -> None:
    clause = _words(30, seed=1)  # ~150 characters
    text = f"{clause}, {clause}; {clause} and {clause}."
    pieces = split_sentences(text, max_chars=200)
    assert pieces[0] == f"{clause},"
    assert pieces[1] == f"{clause};"
    assert all(len(p) <= 200 for p in pieces)


def test_line_breaks_of_a_list_are_preferred() -> None:
    items = [f"- item {n}: {_words(8, seed=n)}" for n in range(40)]  # single line breaks, no full stops
    pieces = split_sentences("\n".join(items), max_chars=300)
    assert len(pieces) > 5 and all(len(p) <= 300 for p in pieces)
    for piece in pieces:  # every cut is at the end of an item
        assert piece.startswith("- item ")
        assert piece.split("\n")[-1] in items


def test_a_run_without_spaces_is_cut_at_the_limit() -> None:
    assert split_sentences("x" * 1000, max_chars=300) == ["x" * 300] * 3 + ["x" * 100]
    cjk = "我们今天去公园散步然后回家吃饭" * 40  # no punctuation, no spaces
    pieces = split_sentences(cjk, max_chars=100)
    assert "".join(pieces) == cjk and all(len(p) <= 100 for p in pieces)


def test_cjk_clause_marks_are_boundaries() -> None:
    clause = "我们今天去公园散步然后回家吃饭" * 4  # 60 characters
    pieces = split_sentences(CJK_COMMA.join([clause] * 3), max_chars=100)
    assert pieces == [clause + CJK_COMMA] * 2 + [clause]


@pytest.mark.parametrize("seed", range(5))
def test_streamed_text_is_cut_like_the_whole_text(seed: int) -> None:
    rng = random.Random(seed)
    parts = []
    for _ in range(30):
        kind = rng.choice(["sentence", "long", "list", "clauses"])
        if kind == "sentence":
            parts.append(_words(rng.randint(3, 15), seed=rng.random()).capitalize() + ".")
        elif kind == "long":
            parts.append(_words(rng.randint(60, 200), seed=rng.random()).capitalize() + ".")
        elif kind == "list":
            parts.append("\n".join(f"- {_words(rng.randint(2, 10), seed=rng.random())}" for _ in range(20)))
        else:
            parts.append(", ".join(_words(rng.randint(5, 25), seed=rng.random()) for _ in range(8)) + ".")
    text = " ".join(parts)
    whole = split_sentences(text, max_chars=120)
    assert all(len(p) <= 120 for p in whole)
    assert _streamed(text, 120, seed) == whole


def test_streamed_text_without_punctuation_is_spoken_while_it_arrives() -> None:
    stream = SentenceStream(max_chars=100)
    spoken: list[str] = []
    for word in _words(100).split():
        spoken += stream.add(word + " ")
    assert len(spoken) >= 4  # before the end of the text, not all at once at finish()
    assert all(len(p) <= 100 for p in spoken)
    rest = stream.finish()
    assert " ".join(spoken + rest) == _words(100)


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SentenceStream(0)
    with pytest.raises(ValueError):
        split_sentences("text", max_chars=0)
