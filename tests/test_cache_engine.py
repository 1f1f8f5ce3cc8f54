"""The audio cache in the engine: hits replay the exact audio, only EOS-ended sentences are stored."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlx_speechd
from mlx_speechd.api import TTS
from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_WIDTH
from mlx_speechd.cache import AudioCache
from mlx_speechd.cli import build_parser, engine_config
from mlx_speechd.engine import AudioChunk, ChunkSchedule, ReplyOptions, SynthesisStats, VoiceSettings
from mlx_speechd.settings import parse_size

TWO_SENTENCES = "Hello there. The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio-cache")


@pytest.fixture(scope="module")
def tts(tiny_custom_voice_ends: Path, cache_dir: Path) -> Iterator[TTS]:
    with mlx_speechd.load(tiny_custom_voice_ends, warmup=False, audio_cache_dir=cache_dir) as tts:
        yield tts


def _chunks(
    tts: TTS, text: str, seed: int | None = None, voice: str | None = None, language: str | None = None
) -> tuple[list[AudioChunk], SynthesisStats]:
    reply = tts.engine.reply(ReplyOptions(VoiceSettings(speaker=voice, language=language), seed=seed))
    reply.speak(text)
    reply.finish()
    chunks = list(reply)
    assert reply.stats is not None
    return chunks, reply.stats


def _entries(folder: Path) -> int:
    with AudioCache(folder, size_limit_bytes=None) as cache:
        return cache.info().entries


def test_second_identical_request_is_replayed_from_the_cache(tts: TTS) -> None:
    fresh, fresh_stats = _chunks(tts, TWO_SENTENCES, seed=5)
    again, again_stats = _chunks(tts, TWO_SENTENCES, seed=5)
    assert fresh_stats.finish_reason == "eos" and fresh_stats.cached_sentences == 0
    assert again_stats.cached_sentences == again_stats.sentences == 2
    assert b"".join(c.pcm for c in again) == b"".join(c.pcm for c in fresh)
    # Same chunks in the same order: sentence by sentence, with the same frame counts.
    assert [(c.sentence, c.frames, len(c.pcm)) for c in again] == [
        (c.sentence, c.frames, len(c.pcm)) for c in fresh
    ]
    first = again[0]
    assert (
        first.frames == ChunkSchedule().size(0)
        and len(first.pcm) == first.frames * FRAME_SAMPLES * SAMPLE_WIDTH
    )
    assert again_stats.frames == fresh_stats.frames and again_stats.finish_reason == "eos"
    assert again_stats.time_to_first_audio is not None


def test_each_sentence_is_keyed_on_its_own(tts: TTS) -> None:
    _chunks(tts, "One sentence here.", seed=7)
    _, stats = _chunks(tts, "One sentence here. And a new one after it.", seed=7)
    assert (stats.sentences, stats.cached_sentences) == (2, 1)


def test_the_seed_is_part_of_the_key(tts: TTS) -> None:
    first, _ = _chunks(tts, "Seeds matter.", seed=1)
    other, stats = _chunks(tts, "Seeds matter.", seed=2)
    assert stats.cached_sentences == 0
    assert b"".join(c.pcm for c in other) != b"".join(c.pcm for c in first)
    unseeded, stats = _chunks(tts, "Seeds matter.")
    assert stats.cached_sentences == 0
    again, stats = _chunks(tts, "Seeds matter.")
    assert stats.cached_sentences == 1
    assert b"".join(c.pcm for c in again) == b"".join(c.pcm for c in unseeded)


def test_voice_and_language_are_part_of_the_key(tts: TTS) -> None:
    _chunks(tts, "Voices differ.", seed=3, voice="ryan")
    assert _chunks(tts, "Voices differ.", seed=3, voice="vivian")[1].cached_sentences == 0
    assert _chunks(tts, "Voices differ.", seed=3, voice="ryan", language="german")[1].cached_sentences == 0
    assert _chunks(tts, "Voices differ.", seed=3, voice="ryan")[1].cached_sentences == 1


def test_corrupt_entry_is_regenerated(tts: TTS, cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "A sentence long enough that its entry is written to a file of its own, for corruption."
    # A seed whose sentence runs 20 frames or more: over the size diskcache keeps inline.
    seed, (fresh, _) = next(
        (seed, run) for seed in range(100, 140) if (run := _chunks(tts, text, seed=seed))[1].frames >= 20
    )
    before = {p: p.stat().st_mtime_ns for p in cache_dir.rglob("*.val")}
    newest = max(before, key=before.__getitem__)
    newest.write_bytes(newest.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING, logger="mlx_speechd.cache.store"):
        again, stats = _chunks(tts, text, seed=seed)
    assert stats.cached_sentences == 0
    assert "bad entry" in caplog.text
    assert b"".join(c.pcm for c in again) == b"".join(c.pcm for c in fresh)
    assert _chunks(tts, text, seed=seed)[1].cached_sentences == 1  # stored again


def test_sentences_a_guard_or_the_cap_ended_are_not_stored(tiny_custom_voice: Path, tmp_path: Path) -> None:
    with mlx_speechd.load(tiny_custom_voice, warmup=False, audio_cache_dir=tmp_path) as tts:
        for _ in range(2):
            audio = tts.generate("Never ends.", seed=1)
            assert audio.stats.finish_reason == "frame-cap" and audio.stats.cached_sentences == 0
    assert _entries(tmp_path) == 0


def test_cache_off(tiny_custom_voice_ends: Path, tmp_path: Path) -> None:
    folder = tmp_path / "unused"
    with mlx_speechd.load(
        tiny_custom_voice_ends, warmup=False, audio_cache=False, audio_cache_dir=folder
    ) as tts:
        first = tts.generate("Off.", seed=1)
        second = tts.generate("Off.", seed=1)
    assert first.pcm == second.pcm and second.stats.cached_sentences == 0
    assert not folder.exists()


def test_a_folder_that_cannot_be_opened_is_a_warning(
    tiny_custom_voice_ends: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with (
        caplog.at_level(logging.WARNING),
        mlx_speechd.load(tiny_custom_voice_ends, warmup=False, audio_cache_dir=blocker / "cache") as tts,
    ):
        audio = tts.generate("Still speaks.", seed=1)
    assert audio.stats.finish_reason == "eos"
    assert "Audio cache off" in caplog.text


def test_size_bound_is_passed_to_the_store(tiny_custom_voice_ends: Path, tmp_path: Path) -> None:
    """Eviction itself is tested on the store (test_audio_cache.py)."""
    with mlx_speechd.load(
        tiny_custom_voice_ends, warmup=False, audio_cache_dir=tmp_path, audio_cache_size="3M"
    ) as tts:
        for seed in range(3):
            tts.generate("Fill the cache with sentences.", seed=seed)
    with AudioCache(tmp_path, size_limit_bytes=None) as cache:
        info = cache.info()
    assert (info.size_limit, info.entries) == (3 * 2**20, 3)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1073741824", 2**30), ("1G", 2**30), ("500M", 500 * 2**20), ("1.5GiB", 3 * 2**29), ("64kb", 65536)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "1X", "-1", "0", "1 2"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_command_line_options(tmp_path: Path) -> None:
    parser = build_parser()
    default = engine_config(parser.parse_args([])).audio_cache
    assert default.enabled and default.folder is None and default.size_limit_bytes == 2**30
    args = parser.parse_args(
        ["--audio-cache-dir", str(tmp_path), "--audio-cache-size", "2G", "--no-audio-cache"]
    )
    settings = engine_config(args).audio_cache
    assert (settings.enabled, settings.folder, settings.size_limit_bytes) == (False, tmp_path, 2 * 2**30)
