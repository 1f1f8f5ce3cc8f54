"""Generation throughput, ours against mlx-audio's, on one thread with no server or queue in between.

The side-by-side table measures what clients see; its real-time factors move by several percent
from run to run on a shared machine. This section isolates the generation loops: each variant
generates the same `frames`-frame utterance, round after round in alternating order, and both
wall-clock and process CPU time are recorded (CPU time is less disturbed by other processes).
Every chunk is converted to 16-bit PCM, as any consumer must.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from mlx_speechd.audio.pcm import float_to_pcm16
from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.generation import GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.loader import ModelInfo
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, GuardSettings

from .baseline import interval_for
from .measure import FRAME_SECONDS, median

TEXT = "Hello from the benchmark."
BASELINE = "mlx-audio-10"


def _mlx_audio(model: Qwen3Model, voice: str, frames: int, chunk_frames: int) -> None:
    for result in model.module.generate(
        TEXT,
        voice=voice,
        lang_code="auto",
        max_tokens=frames,
        stream=True,
        streaming_interval=interval_for(chunk_frames),
    ):
        float_to_pcm16(np.asarray(result.audio))


def _ours(
    model: Qwen3Model,
    info: ModelInfo,
    decoder: StreamingDecoder,
    voice: str,
    frames: int,
    schedule: ChunkSchedule,
) -> None:
    settings = GenerationSettings(schedule, GuardSettings(), CachePolicy.CHUNK, 0)
    utterance = Utterance(TEXT, voice, "auto", None, None, None)
    for chunk in generate_utterance(model, info, decoder, utterance, settings, lambda: False, frames):
        float_to_pcm16(chunk.audio)


def run_pipeline(
    model: Qwen3Model, info: ModelInfo, *, rounds: int, frames: int = 75, voice: str = "ryan"
) -> dict[str, Any]:
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    variants: dict[str, Callable[[], None]] = {
        BASELINE: partial(_mlx_audio, model, voice, frames, 10),
        "mlx-audio-2": partial(_mlx_audio, model, voice, frames, 2),
        "ours-2-10": partial(_ours, model, info, decoder, voice, frames, ChunkSchedule(2, 10)),
        "ours-10": partial(_ours, model, info, decoder, voice, frames, ChunkSchedule(10, 10)),
    }
    for generate in variants.values():  # warm-up: first-use costs of each shape
        generate()
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for round_index in range(rounds):
        for name in order if round_index % 2 == 0 else order[::-1]:
            began, began_cpu = time.perf_counter(), time.process_time()
            variants[name]()
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
    audio = frames * FRAME_SECONDS
    return {
        "frames": frames,
        "rounds": rounds,
        "variants": {
            name: {
                "rtf_median": median(wall[name]) / audio,
                "rtf_best": min(wall[name]) / audio,
                "cpu_rtf_median": median(cpu[name]) / audio,
                "cpu_rtf_best": min(cpu[name]) / audio,
            }
            for name in variants
        },
    }


def rtf_ratio(result: dict[str, Any], variant: str, key: str = "rtf_median") -> float:
    """`variant`'s real-time factor over mlx-audio's at 10-frame chunks."""
    variants = result["variants"]
    return float(variants[variant][key] / variants[BASELINE][key])
