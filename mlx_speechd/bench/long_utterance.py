"""Long utterances: per-chunk time and memory at points (5 s, 30 s, 60 s) into one utterance.

Three runs, each ours against mlx-audio's:
- `generation`: the whole pipeline (talker + code predictor + decoder) on the benchmark model;
  the talker's own KV cache grows with length in both (the language model needs its context).
- `decoder`: the same codes replayed through the codec decoder alone: our `StreamingDecoder`
  (KV cache trimmed to the 72-frame sliding window) against mlx-audio's `streaming_step`
  (unbounded KV cache).
- `decoder_full_transformer`: as `decoder`, with the codec decoder's transformer at Qwen3-TTS's
  real size (8 layers, 512 wide, 16 heads; random weights) and the benchmark model's small conv
  stack, because the tiny model's 1-layer, 32-wide transformer hides what the window changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import mlx.core as mx
import numpy as np

from ..engine.decoder import StreamingDecoder, raw_decoder
from ..engine.generation import GenerationSettings, Utterance, generate_utterance
from ..engine.loader import ModelInfo
from ..engine.types import CachePolicy, ChunkSchedule, GuardSettings
from .baseline import interval_for
from .measure import FRAME_SECONDS, median

TEXT = "This is a long benchmark utterance that keeps going."
REAL_CODEC_TRANSFORMER = {
    "hidden_size": 512,
    "intermediate_size": 1024,
    "head_dim": 64,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "num_hidden_layers": 8,
}


@dataclass(frozen=True)
class ChunkSample:
    start_seconds: float
    """Audio position where the chunk starts."""
    frames: int
    seconds: float
    active_bytes: int
    """MLX memory held by live arrays after the chunk (weights, KV caches, state)."""


@dataclass(frozen=True)
class PointSummary:
    at_seconds: float
    chunk_seconds: float
    active_bytes: int


def summarize(samples: list[ChunkSample], points: tuple[float, ...], half_width: float) -> list[PointSummary]:
    """Median chunk time and memory of the steady-size chunks within `half_width` s of each point."""
    steady = max(s.frames for s in samples)
    summaries = []
    for point in points:
        near = [s for s in samples if s.frames == steady and abs(s.start_seconds - point) <= half_width]
        if not near:
            raise ValueError(f"no {steady}-frame chunk within {half_width}s of {point}s")
        summaries.append(
            PointSummary(
                point, median([s.seconds for s in near]), int(median([s.active_bytes for s in near]))
            )
        )
    return summaries


def generate_ours(
    model: Any, info: ModelInfo, frames: int, voice: str, chunk_frames: int
) -> tuple[list[ChunkSample], mx.array]:
    """Our generation loop (CachePolicy.CHUNK); returns the chunk samples and all codes [1, groups, n]."""
    decoder = StreamingDecoder(raw_decoder(model), info.decoder_window)
    settings = GenerationSettings(
        ChunkSchedule(frames=chunk_frames),
        GuardSettings(max_silence_seconds=0, repetition_frames=0),
        CachePolicy.CHUNK,
        0,
    )
    utterance = Utterance(TEXT, voice, "auto", None, None, None)
    samples, codes = [], []
    position = 0
    for chunk in generate_utterance(model, info, decoder, utterance, settings, lambda: False, frames):
        if not chunk.frames:  # an empty last chunk
            continue
        samples.append(
            ChunkSample(position * FRAME_SECONDS, chunk.frames, chunk.compute_seconds, mx.get_active_memory())
        )
        codes.append(chunk.codes)
        position += chunk.frames
    return samples, mx.array(np.concatenate(codes, axis=1))[None]


def generate_mlx_audio(model: Any, frames: int, voice: str, chunk_frames: int) -> list[ChunkSample]:
    """mlx-audio's `generate(stream=True)` at `chunk_frames` per chunk."""
    samples = []
    position = 0
    for result in model.generate(
        TEXT,
        voice=voice,
        lang_code="auto",
        max_tokens=frames,
        stream=True,
        streaming_interval=interval_for(chunk_frames),
    ):
        samples.append(
            ChunkSample(
                position * FRAME_SECONDS,
                result.token_count,
                result.processing_time_seconds,
                mx.get_active_memory(),
            )
        )
        position += result.token_count
    return samples


def decode_chunks(
    step: Callable[[mx.array], mx.array], codes: mx.array, chunk_frames: int
) -> list[ChunkSample]:
    """Feed `codes` to a streaming decoder step `chunk_frames` at a time; time each step."""
    samples = []
    for start in range(0, codes.shape[2], chunk_frames):
        began = time.perf_counter()
        mx.eval(step(codes[:, :, start : start + chunk_frames]))
        elapsed = time.perf_counter() - began
        mx.clear_cache()
        frames = min(chunk_frames, codes.shape[2] - start)
        samples.append(ChunkSample(start * FRAME_SECONDS, frames, elapsed, mx.get_active_memory()))
    return samples


def decoder_pair(
    decoder: Any, window: int | None, codes: mx.array, chunk_frames: int
) -> dict[str, list[ChunkSample]]:
    """Ours (windowed) and mlx-audio's `streaming_step` (unbounded) on the same codes."""
    ours = StreamingDecoder(decoder, window)
    for step, reset in ((ours.step, ours.reset), (decoder.streaming_step, decoder.reset_streaming_state)):
        reset()  # warm-up: new shapes cost extra the first time
        decode_chunks(step, codes[:, :, : 3 * chunk_frames], chunk_frames)
    ours.reset()
    our_samples = decode_chunks(ours.step, codes, chunk_frames)
    decoder.reset_streaming_state()
    their_samples = decode_chunks(decoder.streaming_step, codes, chunk_frames)
    decoder.reset_streaming_state()
    return {"ours": our_samples, "mlx_audio": their_samples}


def full_size_codec_decoder(model: Any) -> Any:
    """The benchmark model's codec decoder config with the transformer at Qwen3-TTS's size (random)."""
    from mlx_audio.tts.models.qwen3_tts.config import Qwen3TTSTokenizerDecoderConfig
    from mlx_audio.tts.models.qwen3_tts.speech_tokenizer import Qwen3TTSSpeechTokenizerDecoder

    config = {**vars(model.speech_tokenizer.config.decoder_config), **REAL_CODEC_TRANSFORMER}
    decoder = Qwen3TTSSpeechTokenizerDecoder(Qwen3TTSTokenizerDecoderConfig(**config))
    mx.eval(decoder.parameters())
    return decoder


def run_long_utterance(
    model: Any,
    info: ModelInfo,
    *,
    frames: int,
    points: tuple[float, ...],
    half_width: float = 2.0,
    voice: str = "ryan",
    chunk_frames: int = 10,
) -> dict[str, Any]:
    """All three runs; returns {run: {impl: {points: [...], chunks: [...]}}}."""
    runs: dict[str, dict[str, list[ChunkSample]]] = {}
    warmup = 4 * chunk_frames  # first use of a model in a process pays for new shapes
    generate_ours(model, info, warmup, voice, chunk_frames)
    generate_mlx_audio(model, warmup, voice, chunk_frames)
    ours, codes = generate_ours(model, info, frames, voice, chunk_frames)
    runs["generation"] = {"ours": ours, "mlx_audio": generate_mlx_audio(model, frames, voice, chunk_frames)}
    runs["decoder"] = decoder_pair(raw_decoder(model), info.decoder_window, codes, chunk_frames)
    big = full_size_codec_decoder(model)
    runs["decoder_full_transformer"] = decoder_pair(big, info.decoder_window, codes, chunk_frames)
    del big
    mx.clear_cache()
    return {
        run: {
            impl: {
                "points": [asdict(p) for p in summarize(samples, points, half_width)],
                "chunks": [asdict(s) for s in samples],
            }
            for impl, samples in impls.items()
        }
        for run, impls in runs.items()
    }


def growth(result: dict[str, Any], run: str, impl: str) -> float:
    """Chunk time at the last point over chunk time at the first (1.0 = flat)."""
    points = result[run][impl]["points"]
    return float(points[-1]["chunk_seconds"] / points[0]["chunk_seconds"])
