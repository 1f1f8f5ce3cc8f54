"""The engine on tiny random-weight models of the real Qwen3-TTS architecture."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import soundfile

from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE, pcm16_to_float
from mlx_speechd.engine import (
    AudioChunk,
    ChunkSchedule,
    Engine,
    EngineConfig,
    InvalidRequestError,
    ModelLoadError,
    ReplyOptions,
    TextTooLongError,
    UnknownVoiceError,
    VoiceSettings,
)
from mlx_speechd.engine.decoder import StreamingDecoder, decode_reference
from mlx_speechd.engine.generation import GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.guards import RunawayGuard, frame_cap, repeating_period
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.types import CachePolicy, GuardSettings

LONG_TEXT = " ".join(["This sentence keeps going for quite a while without any end in sight"] * 6) + "."


def _engine(model: Path, **overrides: object) -> Iterator[Engine]:
    engine = Engine(EngineConfig(model=str(model), **overrides))  # type: ignore[arg-type]
    engine.start()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def engine(tiny_custom_voice: Path) -> Iterator[Engine]:
    yield from _engine(tiny_custom_voice)


def test_chunks_stream_before_generation_ends(engine: Engine) -> None:
    reply = engine.reply()
    reply.speak("Hello there, this is a streaming test.")
    reply.finish()
    chunks: list[AudioChunk] = []
    stats_at_first_chunk: object = "unset"
    for chunk in reply:
        if not chunks:
            stats_at_first_chunk = reply.stats  # None while the engine is still generating
        chunks.append(chunk)
    assert stats_at_first_chunk is None
    sizes = [c.frames for c in chunks]
    # fixed-length model: runs to the frame cap; schedule 2, 4, 8, 10, 10, ...
    assert sizes[:4] == [2, 4, 8, 10]
    assert all(s == 10 for s in sizes[4:-1])
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    assert all(len(c.pcm) == c.frames * FRAME_SAMPLES * 2 for c in chunks)
    assert reply.stats is not None
    assert reply.stats.frames == sum(sizes)
    assert reply.stats.finish_reason == "frame-cap"
    assert reply.stats.time_to_first_audio is not None
    assert reply.stats.real_time_factor > 0


def test_streamed_audio_equals_one_shot_decode(tiny_custom_voice: Path) -> None:
    """Seams: the concatenated chunks are the same audio as decoding all codes at once."""
    model, info = load_model(str(tiny_custom_voice))
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    settings = GenerationSettings(ChunkSchedule(2, 5), GuardSettings(), CachePolicy.CHUNK, 0)
    utt = Utterance("Seams must not click.", "ryan", "auto", None, None, None)
    mx.random.seed(3)
    observed: list[np.ndarray] = []
    chunks = list(
        generate_utterance(
            model,
            info,
            decoder,
            utt,
            settings,
            lambda: False,
            max_frames=40,
            on_frames=lambda codes: observed.append(np.array(codes[0])),
        )
    )
    streamed = np.concatenate([c.audio for c in chunks])
    codes = np.concatenate(observed, axis=1)
    assert [o.shape[1] for o in observed] == [c.frames for c in chunks if c.frames]
    assert codes.shape == (16, 40) and streamed.shape == (40 * FRAME_SAMPLES,)
    reference = decode_reference(model.decoder, mx.array(codes)[None], info.decoder_window)
    np.testing.assert_allclose(streamed, np.array(reference), atol=2e-4)
    # Within the 72-frame window this is also exactly mlx-audio's own one-shot decoder.
    upstream = model.decoder.decode_upstream(mx.array(codes)[None])
    np.testing.assert_allclose(streamed, np.array(upstream), atol=2e-4)


def test_sliding_window_keeps_long_utterances_equal_to_windowed_reference(
    tiny_custom_voice: Path,
) -> None:
    model, info = load_model(str(tiny_custom_voice))
    assert info.decoder_window == 72
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    codes = mx.random.randint(0, 200, (1, 16, 100))
    streamed = np.concatenate([np.array(decoder.step(codes[:, :, i : i + 7])) for i in range(0, 100, 7)])
    reference = np.array(decode_reference(model.decoder, codes, info.decoder_window))
    np.testing.assert_allclose(streamed, reference, atol=2e-4)
    # The KV cache holds the window less one frame; a copy of the decoder has its own state.
    assert decoder.cache_bytes > 0
    first = decoder.cache_bytes
    mx.eval(decoder.step(codes[:, :, :7]))
    assert decoder.cache_bytes == first
    copied = StreamingDecoder(model.decoder.copy(), info.decoder_window)
    again = np.concatenate([np.array(copied.step(codes[:, :, i : i + 10])) for i in range(0, 100, 10)])
    np.testing.assert_allclose(again, reference, atol=2e-4)
    # Past 72 frames the window matters: an unbounded decode is measurably different audio.
    seam_error = np.abs(streamed - reference).max()
    unbounded = np.array(decode_reference(model.decoder, codes, None))
    window_effect = np.abs(unbounded[72 * FRAME_SAMPLES :] - reference[72 * FRAME_SAMPLES :]).max()
    assert np.abs(unbounded[: 72 * FRAME_SAMPLES] - reference[: 72 * FRAME_SAMPLES]).max() <= 2e-4
    assert window_effect > 10 * seam_error


def _speak(engine: Engine, text: str, **options: object) -> bytes:
    reply = engine.reply(ReplyOptions(**options))  # type: ignore[arg-type]
    reply.speak(text)
    reply.finish()
    return b"".join(c.pcm for c in reply)


def test_seed_gives_reproducible_audio(engine: Engine) -> None:
    first = _speak(engine, "Same seed, same audio.", seed=7)
    second = _speak(engine, "Same seed, same audio.", seed=7)
    other = _speak(engine, "Same seed, same audio.", seed=8)
    assert first == second
    assert first != other


def test_one_reply_handle_iterates_sync_or_async(engine: Engine) -> None:
    """Created outside any event loop, a reply can still be read with `async for`."""
    sync_pcm = _speak(engine, "Either way works.", seed=11)
    reply = engine.reply(ReplyOptions(seed=11))
    reply.speak("Either way works.")
    reply.finish()

    async def read() -> bytes:
        return b"".join([chunk.pcm async for chunk in reply])

    assert asyncio.run(read()) == sync_pcm
    assert reply.stats is not None and reply.stats.finish_reason == "frame-cap"


def test_leaving_the_loop_early_cancels_the_reply(engine: Engine) -> None:
    reply = engine.reply()
    reply.speak(LONG_TEXT)
    reply.finish()
    for _ in reply:
        break
    assert reply.cancelled
    assert len(_speak(engine, "Next one.")) > 0
    assert reply.stats is not None and reply.stats.finish_reason == "cancelled"
    assert reply.stats.frames < 60


def test_cancel_stops_within_a_frame_and_frees_the_engine(engine: Engine) -> None:
    reply = engine.reply()
    reply.speak(LONG_TEXT)
    reply.finish()
    chunks = iter(reply)
    next(chunks)
    cancelled_at = time.perf_counter()
    reply.cancel()
    rest = list(chunks)
    ended_after = time.perf_counter() - cancelled_at
    assert reply.stats is not None and reply.stats.finish_reason == "cancelled"
    # Uncancelled, this reply would run to its frame cap (hundreds of frames, many seconds).
    assert reply.stats.frames < 60
    assert len(rest) <= 1
    assert ended_after < 2.0
    # The engine is free for the next request at once.
    assert len(_speak(engine, "Next one.")) > 0


def test_cancel_of_a_queued_reply(engine: Engine) -> None:
    running = engine.reply()
    running.speak(LONG_TEXT)
    running.finish()
    queued = engine.reply()
    queued.speak("Never spoken.")
    queued.finish()
    queued.cancel()
    assert list(queued) == []
    assert queued.stats is not None and queued.stats.finish_reason == "cancelled"
    running.cancel()
    list(running)


def test_replies_take_turns_by_sentence(engine: Engine) -> None:
    long_reply = engine.reply()
    long_reply.speak("The first one. The second one. The third one. The fourth one.")
    long_reply.finish()
    short_reply = engine.reply()
    short_reply.speak("Short.")
    short_reply.finish()
    order: list[tuple[str, int]] = []
    lock = threading.Lock()

    def drain(name: str, reply: object) -> None:
        for chunk in reply:  # type: ignore[attr-defined]
            with lock:
                order.append((name, chunk.sentence))

    threads = [
        threading.Thread(target=drain, args=("long", long_reply)),
        threading.Thread(target=drain, args=("short", short_reply)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last_short = max(i for i, (name, _) in enumerate(order) if name == "short")
    first_long_sentence_3 = min(i for i, item in enumerate(order) if item == ("long", 3))
    assert last_short < first_long_sentence_3


def test_long_text_is_split_into_sentences_with_pauses(engine: Engine) -> None:
    reply = engine.reply(ReplyOptions(sentence_pause=0.25, lead_in=0.1))
    reply.speak("First sentence. Second sentence! Third?")
    reply.finish()
    chunks = list(reply)
    silences = [c for c in chunks if c.frames == 0]
    assert [c.sentence for c in silences] == [0, 1, 2]
    assert len(silences[0].pcm) == int(0.1 * SAMPLE_RATE) * 2
    assert all(not any(c.pcm) for c in silences)
    assert reply.stats is not None and reply.stats.sentences == 3


def test_frame_cap_is_generous_and_bounded() -> None:
    settings = GuardSettings()
    assert frame_cap("Hi.", settings, 2048) == settings.min_frames
    text = "word " * 200
    assert frame_cap(text, settings, 4096) >= 3 * len(text.replace(" ", ""))
    assert frame_cap("你好" * 50, settings, 4096) > frame_cap("ab" * 50, settings, 4096)
    assert frame_cap(text * 10, settings, 2048) == 2048


def test_repetition_and_silence_guards() -> None:
    assert repeating_period([5] * 60, 60) == 1
    assert repeating_period([1, 2, 3] * 20, 60) == 3
    rng = np.random.default_rng(0)
    assert repeating_period(list(rng.integers(0, 2048, 60)), 60) is None
    guard = RunawayGuard(GuardSettings(max_silence_seconds=1.0))
    assert guard.add_audio(rng.normal(0, 0.1, FRAME_SAMPLES * 20).astype(np.float32)) is None
    assert guard.add_audio(np.zeros(FRAME_SAMPLES * 12, np.float32)) is not None
    loop_guard = RunawayGuard(GuardSettings(repetition_frames=30))
    reasons = [loop_guard.add_token(t) for t in [7, 8] * 15]
    assert reasons[-1] is not None and "repetition" in reasons[-1]


def test_repetition_guard_ends_the_utterance(tiny_custom_voice: Path) -> None:
    """A guard that fires ends the utterance cleanly, with the reason in the stats."""
    # one sentence, as written: LONG_TEXT is longer than the default cut (max_sentence_chars)
    guards = GuardSettings(repetition_frames=3)
    engine = next(_engine(tiny_custom_voice, guards=guards, warmup=False, max_sentence_chars=len(LONG_TEXT)))
    try:
        reply = engine.reply(ReplyOptions(seed=1))
        reply.speak(LONG_TEXT)
        reply.finish()
        list(reply)
        assert reply.stats is not None
        # With a 3-frame window random tokens soon loop (a 1-period needs 3 equal tokens),
        # long before the frame cap.
        assert reply.stats.finish_reason.startswith("repetition (the last 3 frames loop every 1)")
        assert reply.stats.frames < frame_cap(LONG_TEXT, GuardSettings(), 2048)
    finally:
        engine.close()


def test_unknown_voice_lists_the_valid_ones(engine: Engine) -> None:
    with pytest.raises(UnknownVoiceError) as err:
        engine.reply(ReplyOptions(voice=VoiceSettings(speaker="nobody")))
    assert "ryan" in str(err.value) and "vivian" in str(err.value)
    assert engine.resolve_voice(VoiceSettings(speaker="Vivian")).speaker == "vivian"


def test_languages_take_names_and_codes(engine: Engine) -> None:
    assert engine.resolve_voice(VoiceSettings(language="en")).language == "english"
    assert engine.resolve_voice(VoiceSettings(language="English")).language == "english"
    with pytest.raises(InvalidRequestError, match="Supported"):
        engine.resolve_voice(VoiceSettings(language="klingon"))


def test_text_over_the_limit_is_refused(tiny_custom_voice: Path) -> None:
    for engine in _engine(tiny_custom_voice, max_text_chars=20, warmup=False):
        reply = engine.reply()
        with pytest.raises(TextTooLongError):
            reply.speak("x" * 21)
        assert list(reply) == []


def test_voice_design_uses_the_instruct(tiny_voice_design: Path) -> None:
    for engine in _engine(tiny_voice_design, warmup=False):
        assert engine.voices == ("designed",)
        assert engine.resolve_voice(VoiceSettings()).instruct  # a default description
        pcm = _speak(engine, "Designed voice.", voice=VoiceSettings(instruct="A deep calm voice."))
        assert len(pcm) > 0


def test_base_model_clones_reference_audio(tiny_base: Path, tmp_path: Path) -> None:
    ref = tmp_path / "narrator.wav"
    rng = np.random.default_rng(1)
    soundfile.write(ref, rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    for engine in _engine(tiny_base, warmup=False):
        with pytest.raises(InvalidRequestError, match="ref-audio"):
            engine.reply()
        voice = VoiceSettings(ref_audio=str(ref), ref_text="This is the reference.")
        pcm = _speak(engine, "Cloned voice.", voice=voice)
        assert len(pcm) % (FRAME_SAMPLES * 2) == 0 and len(pcm) > 0
        assert np.abs(pcm16_to_float(pcm)).max() > 0


def test_missing_local_model_is_a_clear_error(tmp_path: Path) -> None:
    engine = Engine(EngineConfig(model=str(tmp_path / "nope")))
    with pytest.raises(ModelLoadError, match="No such folder"):
        engine.start()


def test_uncached_hub_model_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    engine = Engine(EngineConfig(model="mlx-community/Qwen3-TTS-12Hz-0.6B-CustomVoice-8bit"))
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        engine.start()


def test_same_audio_as_mlx_audio_generate_for_the_same_seed(tiny_custom_voice: Path) -> None:
    """Our frame loop and streaming decoder reproduce mlx-audio's own one-shot generate exactly."""
    model, info = load_model(str(tiny_custom_voice))
    mx.random.seed(5)
    upstream = np.concatenate(
        [np.array(r.audio) for r in model.module.generate("Hello there.", voice="ryan", max_tokens=30)]
    )
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    settings = GenerationSettings(ChunkSchedule(), GuardSettings(), CachePolicy.CHUNK, 0)
    utt = Utterance("Hello there.", "ryan", "auto", None, None, None)
    mx.random.seed(5)
    ours = np.concatenate(
        [
            c.audio
            for c in generate_utterance(model, info, decoder, utt, settings, lambda: False, max_frames=30)
        ]
    )
    assert ours.shape == upstream.shape == (30 * FRAME_SAMPLES,)
    np.testing.assert_allclose(ours, upstream, atol=2e-4)


def test_the_engine_gives_freed_memory_back_once_it_is_idle(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims = threading.Semaphore(0)
    monkeypatch.setattr("mlx_speechd.engine.memory.release_freed_memory", trims.release)
    _speak(engine, "Then the engine rests.", seed=3)
    assert not trims.acquire(timeout=1)  # not between the requests of a burst
    assert trims.acquire(timeout=10)  # once the engine has been idle for IDLE_TRIM_AFTER_S
    assert not trims.acquire(timeout=3)  # and once per idle spell, not on every wake-up
