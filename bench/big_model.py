"""A few-frame cost check on a full-size (0.6B-shaped, random-weight) model, ours against mlx-audio.

On a CPU such a model runs ~50x slower than real time, so each run generates only `frames`
frames: the first chunk is 2 frames for both (our schedule's first chunk; mlx-audio at
`streaming_interval=0.16`). Each implementation runs twice, alternating; the second runs count
(the first compiles kernels for the model's shapes and dtype).
"""

from __future__ import annotations

import time
from typing import Any

import mlx.core as mx

from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.generation import GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, GuardSettings, ModelInfo

from .baseline import interval_for
from .measure import process_memory
from .workers import run_worker, setup_worker_logging, worker_parser, write_result

TEXT = "Hello."
FIRST_FRAMES = 2


def _ours(model: Qwen3Model, info: ModelInfo, frames: int) -> dict[str, Any]:
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    settings = GenerationSettings(
        ChunkSchedule(FIRST_FRAMES, FIRST_FRAMES),
        GuardSettings(max_silence_seconds=0, repetition_frames=0),
        CachePolicy.CHUNK,
        0,
    )
    mx.reset_peak_memory()
    began = time.perf_counter()
    chunks = []
    for chunk in generate_utterance(
        model,
        info,
        decoder,
        Utterance(TEXT, "ryan", "auto", None, None, None),
        settings,
        lambda: False,
        frames,
    ):
        chunks.append((time.perf_counter() - began, chunk.frames))
    return _summary(chunks, time.perf_counter() - began)


def _mlx_audio(model: Qwen3Model, frames: int) -> dict[str, Any]:
    mx.reset_peak_memory()
    began = time.perf_counter()
    chunks = []
    for result in model.module.generate(
        TEXT,
        voice="ryan",
        lang_code="auto",
        max_tokens=frames,
        stream=True,
        streaming_interval=interval_for(FIRST_FRAMES),
    ):
        chunks.append((time.perf_counter() - began, result.token_count))
    return _summary(chunks, time.perf_counter() - began)


def _summary(chunks: list[tuple[float, int]], total: float) -> dict[str, Any]:
    frames = sum(f for _, f in chunks)
    return {
        "ttfa_s": chunks[0][0],
        "total_s": total,
        "frames": frames,
        "seconds_per_frame": total / frames,
        "chunks": chunks,
        "peak_mlx_bytes": mx.get_peak_memory(),
    }


def measure(model_path: str, frames: int) -> dict[str, Any]:
    began = time.perf_counter()
    model, info = load_model(model_path)
    load_seconds = time.perf_counter() - began
    runs: dict[str, list[dict[str, Any]]] = {"mlx_audio": [], "ours": []}
    for _ in range(2):
        runs["mlx_audio"].append(_mlx_audio(model, frames))
        runs["ours"].append(_ours(model, info, frames))
    return {
        "model": model_path,
        "size": info.size,
        "frames": frames,
        "load_s": load_seconds,
        "rss_bytes": process_memory().rss_bytes,
        "peak_rss_bytes": process_memory().peak_rss_bytes,
        "first_runs": {name: r[0] for name, r in runs.items()},
        "mlx_audio": runs["mlx_audio"][-1],
        "ours": runs["ours"][-1],
    }


def run_big_model(model: str, frames: int) -> dict[str, Any]:
    return run_worker("big_model", ["--model", model, "--frames", str(frames)], timeout=3600)


def main() -> None:
    parser = worker_parser("Few-frame cost check on a full-size model.")
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    setup_worker_logging()
    write_result(args.out, measure(args.model, args.frames))


if __name__ == "__main__":
    main()
