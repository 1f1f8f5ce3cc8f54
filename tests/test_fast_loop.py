"""The compiled, pipelined frame loop gives exactly the current loop's output for the same seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest

from mlx_speechd.audio.pcm import SAMPLE_RATE
from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.fast_generation import generate_utterance_fast
from mlx_speechd.engine.generation import GeneratedChunk, GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, GuardSettings, ModelInfo

Loaded = tuple[Qwen3Model, ModelInfo, StreamingDecoder]
Run = tuple[list[GeneratedChunk], list[np.ndarray]]
SETTINGS = GenerationSettings(ChunkSchedule(2, 4), GuardSettings(), CachePolicy.CHUNK, 0)
"""Chunks of 2, 4, 4, ... frames: chunk boundaries after frames 2, 6, 10, 14, ..."""


def _load(path: Path) -> Loaded:
    model, info = load_model(str(path))
    return model, info, StreamingDecoder(model.decoder, info.decoder_window)


@pytest.fixture(scope="module")
def fixed(tiny_custom_voice: Path) -> Loaded:
    return _load(tiny_custom_voice)


@pytest.fixture(scope="module")
def eos_model(tiny_custom_voice_eos: Path) -> Loaded:
    return _load(tiny_custom_voice_eos)


def _run(
    loop: Any, loaded: Loaded, utt: Utterance, seed: int, max_frames: int | None, settings: GenerationSettings
) -> Run:
    model, info, decoder = loaded
    codes: list[np.ndarray] = []
    mx.random.seed(seed)
    chunks = list(
        loop(
            model,
            info,
            decoder,
            utt,
            settings,
            lambda: False,
            max_frames,
            lambda c: codes.append(np.array(c)),
        )
    )
    return chunks, codes


def _both(
    loaded: Loaded,
    utt: Utterance,
    seed: int,
    max_frames: int | None = None,
    settings: GenerationSettings = SETTINGS,
) -> list[GeneratedChunk]:
    """Both loops from one seed: asserts the same chunks, codes and audio; returns the fast loop's chunks."""
    current, current_codes = _run(generate_utterance, loaded, utt, seed, max_frames, settings)
    fast, fast_codes = _run(generate_utterance_fast, loaded, utt, seed, max_frames, settings)
    assert [(c.frames, c.finish_reason) for c in fast] == [(c.frames, c.finish_reason) for c in current]
    for ours, theirs in zip(fast_codes, current_codes, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours_chunk, theirs_chunk in zip(fast, current, strict=True):
        np.testing.assert_array_equal(ours_chunk.audio, theirs_chunk.audio)
    return fast


def test_compiled_predictor_gives_mlx_audio_codes(fixed: Loaded) -> None:
    model = fixed[0]
    sampling = model.sampling(cloning=False)
    predictor = model.code_predictor(sampling)
    width = model.module.config.talker_config.hidden_size
    mx.random.seed(0)
    inputs = [(mx.random.randint(0, 256, (1, 1)), mx.random.normal((1, 1, width))) for _ in range(40)]
    mx.random.seed(11)
    expected = []
    for token, hidden in inputs:
        tokens, all_codes = model.predict_codes(token, hidden, sampling, model.new_caches())
        expected.append((np.array(all_codes), np.array(model.codec_embeds(tokens))))
    mx.random.seed(11)
    for (token, hidden), (codes, embeds) in zip(inputs, expected, strict=True):
        ours_codes, ours_embeds = predictor(token, hidden)
        np.testing.assert_array_equal(np.array(ours_codes), codes)
        np.testing.assert_array_equal(np.array(ours_embeds), embeds)
    assert len({tuple(c[0]) for c, _ in expected}) > 30  # the frames really differ


@pytest.mark.parametrize("seed", [3, 4])
def test_same_audio_as_the_current_loop(fixed: Loaded, seed: int) -> None:
    utt = Utterance("Hello there, how are you?", "ryan", "auto", None, None, None)
    fast = _both(fixed, utt, seed, max_frames=23)
    assert sum(c.frames for c in fast) == 23 and fast[-1].finish_reason == "frame-cap"


@pytest.mark.parametrize(
    ("text", "seed", "frames"),
    [("Hi.", 51, 2), ("Hello there.", 44, 6), ("Hi.", 42, 14), ("Hi.", 22, 9), ("Hi.", 86, 1)],
)
def test_same_audio_when_eos_ends_the_utterance(eos_model: Loaded, text: str, seed: int, frames: int) -> None:
    """EOS exactly on a chunk boundary (2, 6, 14 frames), inside a chunk, and after one frame."""
    fast = _both(eos_model, Utterance(text, "ryan", "auto", None, None, None), seed)
    assert sum(c.frames for c in fast) == frames and fast[-1].finish_reason == "eos"
    if frames in (2, 6, 14):
        assert fast[-1].frames == 0  # the last chunk ended the audio; EOS came right after it


def test_same_audio_when_eos_comes_first(tiny_custom_voice_eos: Path) -> None:
    loaded = _load(tiny_custom_voice_eos)
    head = loaded[0].module.talker.codec_head
    eos = loaded[0].eos_token
    head.weight = mx.concatenate([head.weight[:eos], head.weight[eos : eos + 1] * 50, head.weight[eos + 1 :]])
    fast = _both(loaded, Utterance("Hi.", "ryan", "auto", None, None, None), 0)
    assert [(c.frames, c.finish_reason) for c in fast] == [(0, "eos")]


def test_same_audio_when_a_guard_ends_it(fixed: Loaded) -> None:
    settings = GenerationSettings(
        ChunkSchedule(2, 4), GuardSettings(repetition_frames=3), CachePolicy.CHUNK, 0
    )
    utt = Utterance("Hello there, how are you?", "ryan", "auto", None, None, None)
    fast = _both(fixed, utt, 10, max_frames=60, settings=settings)
    assert fast[-1].finish_reason is not None and "repetition" in fast[-1].finish_reason


def test_same_audio_for_a_clone(tiny_base: Path) -> None:
    """Cloning raises the repetition penalty to 1.5 and primes the decoder with the reference."""
    ref = mx.array(np.random.default_rng(1).normal(0, 0.1, SAMPLE_RATE).astype(np.float32))
    utt = Utterance("Cloned voice.", None, "auto", None, ref, "This is the reference.")
    fast = _both(_load(tiny_base), utt, 2, max_frames=15)
    assert sum(c.frames for c in fast) == 15


def test_cancel_stops_the_fast_loop(fixed: Loaded) -> None:
    model, info, decoder = fixed
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls > 5

    utt = Utterance("Hello there.", "ryan", "auto", None, None, None)
    chunks = list(generate_utterance_fast(model, info, decoder, utt, SETTINGS, cancelled, 40))
    assert sum(c.frames for c in chunks) <= 4 and all(c.finish_reason is None for c in chunks)
