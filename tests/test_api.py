"""The Python API (`mlx_speechd.load`, `TTS`) on a tiny random-weight CustomVoice model."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

import mlx_speechd
from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from mlx_speechd.engine import GuardSettings

LONG_TEXT = " ".join(["This sentence keeps going for quite a while without any end in sight"] * 6) + "."


@pytest.fixture(scope="module")
def tts(tiny_custom_voice: Path) -> Iterator[mlx_speechd.TTS]:
    # short frame caps keep the fixed-length test model quick: about one frame per character
    with mlx_speechd.load(
        str(tiny_custom_voice), guards=GuardSettings(frames_per_char=1.0, min_frames=8)
    ) as loaded:
        yield loaded


class _Speaker:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, pcm: bytes) -> None:
        self.written += pcm


def test_the_readme_snippet_runs_unchanged(tiny_custom_voice: Path, tmp_path: Path) -> None:
    async def llm_tokens() -> AsyncIterator[str]:
        for piece in ["Hel", "lo there. How", " are you?"]:
            await asyncio.sleep(0)
            yield piece

    speaker = _Speaker()
    streamed: list[mlx_speechd.AudioChunk] = []

    async def consume(tts: mlx_speechd.TTS) -> None:
        async for chunk in tts.astream(llm_tokens(), voice="ryan"):
            streamed.append(chunk)

    with mlx_speechd.load(str(tiny_custom_voice)) as tts:
        audio = tts.generate("Hello there. How are you?", voice="ryan", seed=1)
        audio.save(tmp_path / "hello.wav")
        audio.samples, audio.sample_rate, audio.duration, audio.pcm, audio.stats  # noqa: B018
        for chunk in tts.stream(["Hel", "lo there. How", " are you?"], voice="ryan"):
            speaker.write(chunk.pcm)
        asyncio.run(consume(tts))
    assert audio.stats.sentences == 2 and audio.stats.frames > 0
    assert len(speaker.written) > 0 and streamed


def test_generate_returns_the_whole_audio(tts: mlx_speechd.TTS) -> None:
    audio = tts.generate("Hello there. How are you?", voice="ryan", seed=1)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert np.abs(audio.samples).max() <= 1.0
    assert len(audio.pcm) == 2 * len(audio.samples) == 2 * audio.stats.frames * FRAME_SAMPLES
    np.testing.assert_array_equal(np.frombuffer(audio.pcm, "<i2"), np.round(audio.samples * 32767))
    assert audio.duration == pytest.approx(audio.stats.audio_seconds)
    assert audio.stats.sentences == 2 and audio.stats.finish_reason == "frame-cap"
    assert audio.stats.time_to_first_audio is not None and audio.stats.real_time_factor > 0
    again = tts.generate("Hello there. How are you?", voice="ryan", seed=1)
    assert again.pcm == audio.pcm


def test_stream_over_pieces_gives_the_same_audio_as_generate(tts: mlx_speechd.TTS) -> None:
    whole = tts.generate("Hello there. How are you?", voice="ryan", seed=3)
    chunks = list(tts.stream(iter(["Hel", "lo there. How", " are you?"]), voice="ryan", seed=3))
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    assert {c.sentence for c in chunks} == {0, 1}
    assert b"".join(c.pcm for c in chunks) == whole.pcm
    # the daemon's schedule: 2 frames first, then doubling
    assert [c.frames for c in chunks if c.sentence == 0][:2] == [2, 4]
    np.testing.assert_array_equal(chunks[0].samples, whole.samples[: len(chunks[0].samples)])


def test_astream_takes_async_and_sync_iterables(tts: mlx_speechd.TTS) -> None:
    whole = tts.generate("Hello there. How are you?", voice="ryan", seed=4).pcm

    async def pieces() -> AsyncIterator[str]:
        for piece in ["Hello there.", " How are", " you?"]:
            await asyncio.sleep(0.01)
            yield piece

    async def collect(text: object) -> bytes:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        pcm = b"".join([c.pcm async for c in tts.astream(text, voice="ryan", seed=4)])  # type: ignore[arg-type]
        task.cancel()
        assert ticks > 0  # the event loop kept running while the engine worked
        return pcm

    assert asyncio.run(collect(pieces())) == whole
    assert asyncio.run(collect(["Hello there.", " How are", " you?"])) == whole
    assert asyncio.run(collect("Hello there. How are you?")) == whole


def test_breaking_out_cancels_the_rest(tts: mlx_speechd.TTS, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlx_speechd.engine.engine")
    for chunk in tts.stream(LONG_TEXT, voice="ryan"):
        assert chunk.frames > 0
        break
    # The engine serves the next request; the long one was cancelled within a frame or so.
    assert tts.generate("Next one.", voice="ryan").stats.frames > 0
    summaries = [r.getMessage() for r in caplog.records if "finished: cancelled" in r.getMessage()]
    assert len(summaries) == 1
    frames = int(re.search(r"(\d+) frames", summaries[0])[1])  # type: ignore[index]
    assert frames < 60  # uncancelled it would run to its cap of hundreds of frames


def test_breaking_out_of_astream_cancels_the_rest(
    tts: mlx_speechd.TTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlx_speechd.engine.engine")

    async def first_chunk() -> None:
        async for _ in tts.astream(LONG_TEXT, voice="ryan"):
            break

    asyncio.run(first_chunk())
    assert tts.generate("Next one.", voice="ryan").stats.frames > 0
    summaries = [r.getMessage() for r in caplog.records if "finished: cancelled" in r.getMessage()]
    assert len(summaries) == 1
    assert int(re.search(r"(\d+) frames", summaries[0])[1]) < 60  # type: ignore[index]


def test_unknown_voice_is_refused_before_any_work(tts: mlx_speechd.TTS) -> None:
    with pytest.raises(mlx_speechd.UnknownVoiceError) as err:
        tts.stream("Hello.", voice="nobody")  # raised at the call, not at the first chunk
    assert err.value.code == "unknown-voice"
    assert isinstance(err.value, mlx_speechd.SpeechdError)
    with pytest.raises(mlx_speechd.UnknownVoiceError):
        tts.generate("Hello.", voice="nobody")


def test_unknown_keywords_are_type_errors(tiny_custom_voice: Path, tts: mlx_speechd.TTS) -> None:
    with pytest.raises(TypeError, match="'speaker'"):
        tts.generate("Hello.", speaker="ryan")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'chunk_size'"):
        mlx_speechd.load(str(tiny_custom_voice), chunk_size=4)  # type: ignore[call-arg]
    with pytest.raises(mlx_speechd.InvalidRequestError, match="at least one frame"):
        mlx_speechd.load(str(tiny_custom_voice), chunk_frames=0)


def test_text_pieces_must_be_strings(tts: mlx_speechd.TTS) -> None:
    with pytest.raises(TypeError, match="must be str"):
        list(tts.stream(["Hello there.", 42], voice="ryan"))  # type: ignore[list-item]


def test_two_threads_share_one_model(tts: mlx_speechd.TTS) -> None:
    texts = {"a": "The first thread speaks. It has two sentences.", "b": "The second one is short."}
    expected = {name: tts.generate(text, voice="ryan", seed=9).pcm for name, text in texts.items()}
    results: dict[str, bytes] = {}

    def speak(name: str) -> None:
        results[name] = tts.generate(texts[name], voice="ryan", seed=9).pcm

    threads = [threading.Thread(target=speak, args=(name,)) for name in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_save_wav_flac_and_clear_errors(tts: mlx_speechd.TTS, tmp_path: Path) -> None:
    audio = tts.generate("Saved.", voice="ryan", seed=2)
    ogg, _ = soundfile.read(audio.save(tmp_path / "out.ogg"), dtype="float32")
    assert len(ogg) == len(audio.samples)
    for name in ("out.wav", "out.flac"):
        path = audio.save(tmp_path / name)
        samples, rate = soundfile.read(path, dtype="int16")
        assert rate == SAMPLE_RATE
        assert samples.tobytes() == audio.pcm  # 16-bit, lossless
    with pytest.raises(mlx_speechd.InvalidRequestError, match=r"\.wav, \.flac or \.ogg"):
        audio.save(tmp_path / "out.mp4")
    with pytest.raises(mlx_speechd.InvalidRequestError, match="does not exist"):
        audio.save(tmp_path / "missing" / "out.wav")


def test_reference_audio_as_numpy_clones_on_a_base_model(tiny_base: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    soundfile.write(tmp_path / "ref.wav", reference, SAMPLE_RATE, subtype="FLOAT")
    with mlx_speechd.load(str(tiny_base), warmup=False, guards=GuardSettings(min_frames=8)) as tts:
        speech = {"ref_text": "This is the reference.", "seed": 5}
        from_array = tts.generate("Cloned voice.", ref_audio=reference, **speech)  # type: ignore[arg-type]
        from_file = tts.generate("Cloned voice.", ref_audio=tmp_path / "ref.wav", **speech)  # type: ignore[arg-type]
        assert from_array.stats.frames > 0 and np.abs(from_array.samples).max() > 0
        assert from_array.pcm == from_file.pcm


def test_closed_tts_refuses_work(tiny_custom_voice: Path) -> None:
    tts = mlx_speechd.load(str(tiny_custom_voice), warmup=False)
    tts.close()
    with pytest.raises(mlx_speechd.EngineClosedError) as err:
        tts.generate("Too late.", voice="ryan")
    assert err.value.code == "engine-closed"


def test_a_stream_left_unread_is_cancelled_after_the_stall_timeout(
    tiny_custom_voice: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`load(max_unsent_seconds=..., stall_timeout=...)`: a consumer that stops taking chunks holds at most
    a sentence or two of audio, then gets ClientTooSlowError."""
    with mlx_speechd.load(tiny_custom_voice, warmup=False, max_unsent_seconds=1.0, stall_timeout=1.0) as tts:
        chunks = tts.stream("One. Two. Three. Four. Five. Six.", voice="ryan")
        first = next(chunks)
        deadline = time.monotonic() + 60
        while "the client read no audio" not in caplog.text:
            assert time.monotonic() < deadline, "the unread stream was never cancelled"
            time.sleep(0.1)
        taken = [first]
        with pytest.raises(mlx_speechd.ClientTooSlowError):
            taken.extend(chunks)
        assert {chunk.sentence for chunk in taken} <= {0, 1}  # not the six asked for
