"""Long utterances: per-chunk time and decoder memory at points (5 s, 30 s, 60 s) into one utterance.

Three runs, each ours against mlx-audio's, interleaved chunk by chunk (one chunk of ours, one of
theirs, ...) so that load from other processes hits both alike:
- `generation`: the whole pipeline (talker + code predictor + decoder) on the benchmark model;
  the talker's own KV cache grows with length in both (the language model needs its context).
- `decoder`: `frames` frames of codes through the codec decoder alone: our `StreamingDecoder` (KV
  cache trimmed to the 72-frame sliding window) against mlx-audio's `streaming_step` (unbounded
  cache). The codes are seeded random codes within the codebook: the decoder's work per frame does
  not depend on the code values, and the timing needs no generated speech.
- `decoder_full_transformer`: as `decoder`, with the codec decoder's transformer at Qwen3-TTS's
  real size (8 layers, 512 wide, 16 heads; random weights) and the benchmark model's small conv
  stack, because the tiny model's 1-layer, 32-wide transformer hides what the window changes.

Each implementation decodes with its own instance of the decoder (same weights), since the
decoder's convolutions keep their streaming state in the module. Memory is the bytes held by
the decoder transformer's KV cache after each chunk. The decoder runs interleave a third, control
decoder that decodes every chunk from a fresh state (the same work every time): each chunk's time
relative to the control's cancels the machine getting faster or slower during the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import mlx.core as mx

from mlx_speechd.engine.adapter import CodecDecoder, Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.generation import GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.loader import ModelInfo
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, GuardSettings

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

CONTROL = "control"
Step = tuple[int, int]
"""What one chunk of an implementation reports: (frames, decoder KV cache bytes)."""


@dataclass(frozen=True)
class ChunkSample:
    start_seconds: float
    """Audio position where the chunk starts."""
    frames: int
    seconds: float
    cache_bytes: int


@dataclass(frozen=True)
class PointSummary:
    at_seconds: float
    chunk_seconds: float
    cache_bytes: int
    relative: float | None = None
    """Median of chunk time over the control's time for the same chunk (decoder runs only)."""


def mlx_audio_decoder(model: Qwen3Model) -> Any:
    """mlx-audio's own codec decoder module (it wraps it in `mx.compile` after loading)."""
    decoder = model.module.speech_tokenizer.decoder
    return getattr(decoder.streaming_step, "__self__", decoder)


def their_cache_bytes(decoder: Any) -> int:
    """Bytes in mlx-audio's codec decoder's streaming KV cache (mlx-lm `KVCache`s)."""
    caches = decoder._transformer_cache or []  # noqa: SLF001 - mlx-audio's state has no public size; read only
    return sum(c.keys.nbytes + c.values.nbytes for c in caches if c.keys is not None)


def random_codes(decoder: Any, frames: int, seed: int = 0) -> mx.array:
    """`frames` frames of seeded random codes for mlx-audio's `decoder`: shape (1, quantizers, frames)."""
    config = decoder.config
    shape = (1, config.num_quantizers, frames)
    return mx.random.randint(0, config.codebook_size, shape, key=mx.random.key(seed))


def interleave(runs: dict[str, Iterator[Step]]) -> dict[str, list[ChunkSample]]:
    """Advance each run one chunk in turn, timing every step, until all are exhausted."""
    samples: dict[str, list[ChunkSample]] = {name: [] for name in runs}
    positions = dict.fromkeys(runs, 0)
    active = dict(runs)
    while active:
        for name, run in list(active.items()):
            began = time.perf_counter()
            step = next(run, None)
            elapsed = time.perf_counter() - began
            if step is None:
                del active[name]
                continue
            frames, cache = step
            if frames:
                samples[name].append(ChunkSample(positions[name] * FRAME_SECONDS, frames, elapsed, cache))
                positions[name] += frames
    return samples


def summarize(
    samples: list[ChunkSample],
    points: tuple[float, ...],
    half_width: float,
    control: list[ChunkSample] | None = None,
) -> list[PointSummary]:
    """Median chunk time and cache size of the steady-size chunks within `half_width` s of each point.

    With a `control` run (one sample per chunk, interleaved with these), also the median ratio of
    each chunk's time to the control's, which cancels the machine's speed at that moment.
    """
    steady = max(s.frames for s in samples)
    summaries = []
    for point in points:
        near = [
            i
            for i, s in enumerate(samples)
            if s.frames == steady and abs(s.start_seconds - point) <= half_width
        ]
        if not near:
            raise ValueError(f"no {steady}-frame chunk within {half_width}s of {point}s")
        relative = median([samples[i].seconds / control[i].seconds for i in near]) if control else None
        summaries.append(
            PointSummary(
                point,
                median([samples[i].seconds for i in near]),
                int(median([samples[i].cache_bytes for i in near])),
                relative,
            )
        )
    return summaries


def our_generation(
    model: Qwen3Model,
    info: ModelInfo,
    decoder: StreamingDecoder,
    frames: int,
    voice: str,
    chunk_frames: int,
) -> Iterator[Step]:
    """Our generation loop (CachePolicy.CHUNK, no runaway guards)."""
    settings = GenerationSettings(
        ChunkSchedule(frames=chunk_frames),
        GuardSettings(max_silence_seconds=0, repetition_frames=0),
        CachePolicy.CHUNK,
        0,
    )
    utterance = Utterance(TEXT, voice, "auto", None, None, None)
    for chunk in generate_utterance(model, info, decoder, utterance, settings, lambda: False, frames):
        yield chunk.frames, decoder.cache_bytes


def their_generation(model: Qwen3Model, frames: int, voice: str, chunk_frames: int) -> Iterator[Step]:
    """mlx-audio's `generate(stream=True)` at `chunk_frames` per chunk."""
    decoder = mlx_audio_decoder(model)
    for result in model.module.generate(
        TEXT,
        voice=voice,
        lang_code="auto",
        max_tokens=frames,
        stream=True,
        streaming_interval=interval_for(chunk_frames),
    ):
        yield result.token_count, their_cache_bytes(decoder)


def our_decoding(decoder: StreamingDecoder, codes: mx.array, chunk_frames: int) -> Iterator[Step]:
    decoder.reset()
    for start in range(0, codes.shape[2], chunk_frames):
        mx.eval(decoder.step(codes[:, :, start : start + chunk_frames]))
        mx.clear_cache()
        yield min(chunk_frames, codes.shape[2] - start), decoder.cache_bytes


def control_decoding(decoder: StreamingDecoder, codes: mx.array, chunk_frames: int) -> Iterator[Step]:
    """The same chunks, each from a fresh decoder state: constant work, so its time tracks the machine."""
    for start in range(0, codes.shape[2], chunk_frames):
        decoder.reset()
        mx.eval(decoder.step(codes[:, :, start : start + chunk_frames]))
        mx.clear_cache()
        yield min(chunk_frames, codes.shape[2] - start), 0


def their_decoding(decoder: Any, codes: mx.array, chunk_frames: int) -> Iterator[Step]:
    decoder.reset_streaming_state()
    for start in range(0, codes.shape[2], chunk_frames):
        mx.eval(decoder.streaming_step(codes[:, :, start : start + chunk_frames]))
        mx.clear_cache()
        yield min(chunk_frames, codes.shape[2] - start), their_cache_bytes(decoder)


def decoder_runs(
    decoder: Any, window: int | None, codes: mx.array, chunk_frames: int
) -> dict[str, list[ChunkSample]]:
    """Ours (windowed, on a copy of mlx-audio's `decoder`), its `streaming_step`, and the control."""
    codec = CodecDecoder(decoder)
    ours = StreamingDecoder(codec.copy(), window)
    control = StreamingDecoder(codec.copy(), window)

    def run(part: mx.array) -> dict[str, list[ChunkSample]]:
        return interleave(
            {
                "ours": our_decoding(ours, part, chunk_frames),
                "mlx_audio": their_decoding(decoder, part, chunk_frames),
                CONTROL: control_decoding(control, part, chunk_frames),
            }
        )

    run(codes[:, :, : 3 * chunk_frames])  # warm-up: new shapes cost extra the first time
    return run(codes)


def full_size_codec_decoder(model: Qwen3Model) -> Any:
    """The benchmark model's codec decoder config with the transformer at Qwen3-TTS's size (random)."""
    from mlx_audio.tts.models.qwen3_tts.config import Qwen3TTSTokenizerDecoderConfig
    from mlx_audio.tts.models.qwen3_tts.speech_tokenizer import Qwen3TTSSpeechTokenizerDecoder

    config = {**vars(model.module.speech_tokenizer.config.decoder_config), **REAL_CODEC_TRANSFORMER}
    decoder = Qwen3TTSSpeechTokenizerDecoder(Qwen3TTSTokenizerDecoderConfig(**config))
    mx.eval(decoder.parameters())
    return decoder


def run_long_utterance(
    model: Qwen3Model,
    info: ModelInfo,
    *,
    frames: int,
    points: tuple[float, ...],
    half_width: float = 2.0,
    repeats: int = 1,
    voice: str = "ryan",
    chunk_frames: int = 10,
) -> dict[str, Any]:
    """All three runs, the decoder runs `repeats` times (each point: the median over the repeats).

    Returns {run: {implementation: {"points": [...], "chunks": [...]}}} (the chunks of the first repeat).
    """
    ours = StreamingDecoder(model.decoder.copy(), info.decoder_window)

    def generation(length: int) -> dict[str, list[ChunkSample]]:
        return interleave(
            {
                "ours": our_generation(model, info, ours, length, voice, chunk_frames),
                "mlx_audio": their_generation(model, length, voice, chunk_frames),
            }
        )

    generation(4 * chunk_frames)  # warm-up
    runs = {"generation": [generation(frames)]}
    decoder = mlx_audio_decoder(model)
    all_codes = random_codes(decoder, frames)
    runs["decoder"] = [
        decoder_runs(decoder, info.decoder_window, all_codes, chunk_frames) for _ in range(repeats)
    ]
    big = full_size_codec_decoder(model)
    runs["decoder_full_transformer"] = [
        decoder_runs(big, info.decoder_window, all_codes, chunk_frames) for _ in range(repeats)
    ]
    del big
    mx.clear_cache()
    return {
        run: {
            impl: {
                "points": _median_points(
                    [summarize(r[impl], points, half_width, r.get(CONTROL)) for r in repeated]
                ),
                "chunks": [asdict(s) for s in repeated[0][impl]],
            }
            for impl in repeated[0]
            if impl != CONTROL
        }
        for run, repeated in runs.items()
    }


def _median_points(repeats: list[list[PointSummary]]) -> list[dict[str, Any]]:
    """Each point's fields as the median over the repeats."""
    merged = []
    for same_point in zip(*repeats, strict=True):
        relatives = [p.relative for p in same_point if p.relative is not None]
        merged.append(
            asdict(
                PointSummary(
                    same_point[0].at_seconds,
                    median([p.chunk_seconds for p in same_point]),
                    int(median([p.cache_bytes for p in same_point])),
                    median(relatives) if relatives else None,
                )
            )
        )
    return merged


def growth(result: dict[str, Any], run: str, impl: str, key: str = "chunk_seconds") -> float:
    """Chunk time (or `relative` time) at the last point over that at the first (1.0 = flat)."""
    points = result[run][impl]["points"]
    return float(points[-1][key] / points[0][key])
