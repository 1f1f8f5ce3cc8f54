"""Continuous batching in the engine (`max_batch` > 1) on tiny random-weight models."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import soundfile
from wyoming.tts import SynthesizeVoice

from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE, float_to_pcm16
from mlx_speechd.engine import (
    AudioCacheSettings,
    Engine,
    EngineConfig,
    GuardSettings,
    ReplyOptions,
    VoiceSettings,
)
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.fast_generation import generate_utterance_fast
from mlx_speechd.engine.generation import GenerationSettings, Utterance
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.reply import Reply
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule
from tests.test_wyoming import _audio, _launch, _stop, _synthesize, _wait_ready

GUARDS = GuardSettings(frames_per_char=0.5, min_frames=8)
"""Frame caps of max(8, characters / 2): the fixed-length model runs every sentence to its cap."""
NO_CACHE = AudioCacheSettings(enabled=False)


def _cap(text: str) -> int:
    return max(GUARDS.min_frames, round(len(text.replace(" ", "")) * GUARDS.frames_per_char))


def _engine(model: Path, **overrides: object) -> Iterator[Engine]:
    config: dict[str, object] = {"max_batch": 4, "guards": GUARDS, "audio_cache": NO_CACHE, **overrides}
    engine = Engine(EngineConfig(model=str(model), **config))  # type: ignore[arg-type]
    engine.start()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def engine(tiny_custom_voice: Path) -> Iterator[Engine]:
    yield from _engine(tiny_custom_voice)


@dataclass
class _Heard:
    """What one reply's reader got, and when (perf_counter) each chunk arrived."""

    pcm: bytes = b""
    arrivals: list[float] = field(default_factory=list)
    sentences: list[int] = field(default_factory=list)


def _start(engine: Engine, text: str, voice: VoiceSettings | None = None, seed: int | None = 1) -> Reply:
    reply = engine.reply(ReplyOptions(voice=voice or VoiceSettings(), seed=seed))
    reply.speak(text)
    reply.finish()
    return reply


def _read(reply: Reply, heard: _Heard, first: threading.Event | None = None) -> None:
    for chunk in reply:
        heard.pcm += chunk.pcm
        heard.arrivals.append(time.perf_counter())
        heard.sentences.append(chunk.sentence)
        if first is not None:
            first.set()


def _reading(reply: Reply) -> tuple[_Heard, threading.Thread, threading.Event]:
    """Read `reply` on a thread; the event is set at its first chunk."""
    heard, first = _Heard(), threading.Event()
    thread = threading.Thread(target=_read, args=(reply, heard, first))
    thread.start()
    return heard, thread, first


def _alone(engine: Engine, text: str, voice: VoiceSettings | None = None, seed: int = 1) -> bytes:
    heard = _Heard()
    _read(_start(engine, text, voice, seed), heard)
    return heard.pcm


LONG = "This one runs on for a good while longer than the others do."
MIXED = [
    (LONG, VoiceSettings(speaker="ryan", language="english"), 5),
    ("Kurz und bündig, bitte sehr.", VoiceSettings(speaker="vivian", language="german"), 6),
    ("A short line.", VoiceSettings(speaker="serena"), 7),
]


def test_seeded_rows_of_mixed_voices_sound_the_same_alone_and_batched(engine: Engine) -> None:
    """Rows join a running batch at frame boundaries; each seeded row is the same audio as alone."""
    alone = [_alone(engine, text, voice, seed) for text, voice, seed in MIXED]
    text, voice, seed = MIXED[0]
    heard, thread, first = _reading(_start(engine, text, voice, seed))
    assert first.wait(30)  # the long row is running: the others join it mid-sentence
    others = [_reading(_start(engine, text, voice, seed)) for text, voice, seed in MIXED[1:]]
    for _, other, _ in others:
        other.join()
    thread.join()
    together = [heard, *(other for other, _, _ in others)]
    for (text, _, _), pcm, got in zip(MIXED, alone, together, strict=True):
        assert len(pcm) == _cap(text) * FRAME_SAMPLES * 2
        assert got.pcm == pcm
    assert all(other.arrivals[0] < heard.arrivals[-1] for other in together[1:])  # they overlapped
    assert len({pcm[:4000] for pcm in alone}) == 3


def test_a_short_sentence_does_not_wait_for_a_long_one(engine: Engine) -> None:
    long_heard, long_thread, first = _reading(_start(engine, LONG * 2, seed=2))
    assert first.wait(30)
    short = _start(engine, "Quick one.", seed=3)
    short_heard = _Heard()
    _read(short, short_heard)
    long_thread.join()
    assert short_heard.arrivals[-1] < long_heard.arrivals[-1]  # it left at once, the long one went on
    assert short.stats is not None and short.stats.frames == _cap("Quick one.")
    assert len(long_heard.pcm) == _cap(LONG * 2) * FRAME_SAMPLES * 2


def test_cancel_in_a_batch_leaves_the_other_rows_untouched(engine: Engine) -> None:
    kept_alone = _alone(engine, LONG, seed=4)
    kept, kept_thread, kept_first = _reading(_start(engine, LONG, seed=4))
    doomed = _start(engine, LONG * 2, VoiceSettings(speaker="vivian"), seed=8)
    chunks = iter(doomed)
    next(chunks)
    assert kept_first.wait(30)
    doomed.cancel()
    rest = list(chunks)
    kept_thread.join()
    assert doomed.stats is not None and doomed.stats.finish_reason == "cancelled"
    assert doomed.stats.frames < _cap(LONG * 2) // 2
    assert len(rest) <= 1  # the row left at the next frame boundary
    assert kept.pcm == kept_alone


def test_guards_count_per_row(tiny_custom_voice: Path) -> None:
    """With a 3-frame repetition window random rows soon loop: each row ends where it ends alone."""
    guards = GuardSettings(repetition_frames=3, frames_per_char=0.5, min_frames=8)
    for engine in _engine(tiny_custom_voice, guards=guards, warmup=False):
        seeds = [11, 12, 13, 14]
        alone = []
        for seed in seeds:
            reply = _start(engine, LONG * 3, seed=seed)
            list(reply)
            assert reply.stats is not None
            alone.append((reply.stats.frames, reply.stats.finish_reason))
        replies = [_start(engine, LONG * 3, seed=seed) for seed in seeds]
        threads = [threading.Thread(target=list, args=(reply,)) for reply in replies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        together = [(r.stats.frames, r.stats.finish_reason) for r in replies if r.stats is not None]
        assert together == alone
        ended = [frames for frames, reason in alone if reason.startswith("repetition")]
        assert len(set(ended)) >= 2  # rows looped and ended at different frames


def test_replies_keep_their_sentence_order(engine: Engine) -> None:
    texts = [
        "The first sentence is here. The second sentence follows it. And a third one ends.",
        "Good morning to you. The kitchen light is on.",
        "Timer done. Your timer has finished. Check the oven. It smells good.",
    ]
    replies = [_start(engine, text, seed=None) for text in texts]
    heard = [_Heard() for _ in texts]
    threads = [threading.Thread(target=_read, args=(r, h)) for r, h in zip(replies, heard, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for text, got, reply in zip(texts, heard, replies, strict=True):
        count = text.count(".")
        assert got.sentences == sorted(got.sentences) and set(got.sentences) == set(range(count))
        assert reply.stats is not None and reply.stats.sentences == count


def test_max_batch_1_is_the_one_sentence_path(tiny_custom_voice: Path) -> None:
    """max_batch 1 generates one sentence at a time: the single-stream loop's audio for the seed."""
    for engine in _engine(tiny_custom_voice, max_batch=1, warmup=False):
        served = _alone(engine, "Bit for bit.", seed=21)
    model, info = load_model(str(tiny_custom_voice))
    settings = GenerationSettings(ChunkSchedule(), GUARDS, CachePolicy.CHUNK, 1024 * 1024 * 1024)
    utt = Utterance("Bit for bit.", "ryan", "auto", None, None, None)
    mx.random.seed(21)
    chunks = generate_utterance_fast(
        model, info, StreamingDecoder(model.decoder, info.decoder_window), utt, settings, lambda: False
    )
    assert served == b"".join(float_to_pcm16(chunk.audio) for chunk in chunks if chunk.audio.size)


def test_clone_references_share_a_batch(tiny_base: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    refs = []
    for name in ("one", "two"):
        refs.append(tmp_path / f"{name}.wav")
        soundfile.write(refs[-1], rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    voices = [
        VoiceSettings(ref_audio=str(refs[0]), ref_text="The first reference."),
        VoiceSettings(ref_audio=str(refs[1]), ref_text="Another reference here."),
        VoiceSettings(ref_audio=str(refs[1])),  # its speaker embedding alone
    ]
    for engine in _engine(tiny_base, warmup=False):
        alone = [_alone(engine, LONG, voice, seed=3) for voice in voices]
        readers = [_reading(_start(engine, LONG, voice, seed=3)) for voice in voices]
        for _, thread, _ in readers:
            thread.join()
        assert [heard.pcm for heard, _, _ in readers] == alone
        assert len(set(alone)) == 3


def test_eos_ended_rows_are_cached_and_replayed_without_a_row(
    tiny_custom_voice_ends: Path, tmp_path: Path
) -> None:
    cache = AudioCacheSettings(folder=tmp_path / "cache")
    text = "Stored once. Then replayed."
    for engine in _engine(tiny_custom_voice_ends, audio_cache=cache, guards=GuardSettings()):
        first = _start(engine, text, seed=9)
        pcm = b"".join(chunk.pcm for chunk in first)
        again = _start(engine, text, seed=9)
        assert b"".join(chunk.pcm for chunk in again) == pcm
        assert first.stats is not None and again.stats is not None
        assert first.stats.finish_reason == "eos" and again.stats.cached_sentences == 2
    for engine in _engine(tiny_custom_voice_ends, audio_cache=cache, max_batch=1, warmup=False):
        single = _start(engine, text, seed=9)
        list(single)
        # the same seed gives other audio one sentence at a time: its own cache entries
        assert single.stats is not None and single.stats.cached_sentences == 0


def test_daemon_serves_four_concurrent_wyoming_clients(tiny_custom_voice_ends: Path, tmp_path: Path) -> None:
    daemon = _launch(tiny_custom_voice_ends, tmp_path, "--max-batch", "4", "--seed", "5", "--no-audio-cache")
    texts = [
        ("ryan", "Good morning. The kitchen light is on."),
        ("vivian", "It is twenty degrees outside. Rain later."),
        ("serena", "Timer done. Your timer has finished. Check the oven."),
        ("eric", "Playing music in the living room."),
    ]

    async def one(voice: str, text: str) -> bytes:
        async with daemon.client() as client:
            return _audio(await _synthesize(client, text, SynthesizeVoice(name=voice)))

    async def together() -> list[bytes]:
        return list(await asyncio.gather(*(one(voice, text) for voice, text in texts)))

    try:
        _wait_ready(daemon)
        concurrent = asyncio.run(together())
        alone = [asyncio.run(one(voice, text)) for voice, text in texts]
    finally:
        _stop(daemon)
    assert concurrent == alone  # complete, and each reply's sentences in order
    assert all(len(pcm) > 0 and len(pcm) % (FRAME_SAMPLES * 2) == 0 for pcm in alone)
