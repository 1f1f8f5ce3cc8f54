"""Cache policy: clear MLX's buffer cache at every chunk (the default) or only over a limit.

Runs the same utterance under both policies in blocks whose order alternates by round (so drift
on a shared machine hits both alike) and records the steady-size chunk compute time, the real-time
factor (wall clock and process CPU time), and the MLX buffer cache and peak memory after each
utterance.
"""

from __future__ import annotations

import time
from typing import Any

import mlx.core as mx

from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.generation import GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.loader import ModelInfo
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, GuardSettings

from .measure import FRAME_SECONDS, median, percentile

TEXT = "The cache policy benchmark sentence."


def _utterance(
    model: Qwen3Model,
    info: ModelInfo,
    decoder: StreamingDecoder,
    settings: GenerationSettings,
    frames: int,
    voice: str,
) -> tuple[list[float], float, float]:
    """One utterance: (steady-size chunk compute times, total compute, audio seconds)."""
    chunks = list(
        generate_utterance(
            model,
            info,
            decoder,
            Utterance(TEXT, voice, "auto", None, None, None),
            settings,
            lambda: False,
            frames,
        )
    )
    steady = settings.schedule.frames
    times = [c.compute_seconds for c in chunks if c.frames == steady]
    return times, sum(c.compute_seconds for c in chunks), sum(c.frames for c in chunks) * FRAME_SECONDS


def run_cache_policy(
    model: Qwen3Model,
    info: ModelInfo,
    *,
    rounds: int,
    per_block: int = 2,
    frames: int = 100,
    limit_mb: int = 1024,
    voice: str = "ryan",
) -> dict[str, Any]:
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    guards = GuardSettings(max_silence_seconds=0, repetition_frames=0)
    collected: dict[str, dict[str, list[float]]] = {
        p.value: {"chunk_s": [], "rtf": [], "cpu_rtf": [], "cache_bytes": [], "peak_bytes": []}
        for p in CachePolicy
    }
    mx.clear_cache()
    policies = list(CachePolicy)
    for round_index in range(rounds):
        for policy in policies if round_index % 2 == 0 else policies[::-1]:
            settings = GenerationSettings(ChunkSchedule(), guards, policy, limit_mb * 1024 * 1024)
            for _ in range(per_block):
                mx.reset_peak_memory()
                began_cpu = time.process_time()
                times, compute, audio = _utterance(model, info, decoder, settings, frames, voice)
                data = collected[policy.value]
                data["cpu_rtf"].append((time.process_time() - began_cpu) / audio)
                data["chunk_s"].extend(times)
                data["rtf"].append(compute / audio)
                data["cache_bytes"].append(mx.get_cache_memory())
                data["peak_bytes"].append(mx.get_peak_memory())
    mx.clear_cache()
    return {
        "frames": frames,
        "limit_mb": limit_mb,
        "utterances_per_policy": rounds * per_block,
        "policies": {
            name: {
                "chunk_median_s": median(data["chunk_s"]),
                "chunk_p95_s": percentile(data["chunk_s"], 95),
                "rtf_median": median(data["rtf"]),
                "cpu_rtf_median": median(data["cpu_rtf"]),
                "cache_max_bytes": max(data["cache_bytes"]),
                "peak_max_bytes": max(data["peak_bytes"]),
            }
            for name, data in collected.items()
        },
    }


def chunk_cost_ratio(result: dict[str, Any]) -> float:
    """Per-chunk time with clear-every-chunk over per-chunk time with the limit policy."""
    policies = result["policies"]
    return float(policies["chunk"]["chunk_median_s"] / policies["limit"]["chunk_median_s"])
