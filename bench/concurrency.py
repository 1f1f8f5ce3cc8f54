"""Concurrency: four requests at once, batched (`--max-batch`) against one sentence at a time.

Three measurements, rounds interleaved so machine drift hits all variants alike:
- frame generation throughput (this process, codec decoder left out): the single-stream loop
  (`generate_utterance_fast`) against `BatchGenerator` with 2, 4 and 8 rows, in frames per second;
- end-to-end aggregate throughput through the engine (audio seconds per wall second): one request
  alone at `max_batch` 1, four concurrent requests at `max_batch` 1 and at 4, one alone at 4;
- Wyoming daemons (`--max-batch 4` and `1`): median first audio of one client alone (idle) and of
  four concurrent clients, and describe's answer time on another connection meanwhile.

`python -m bench.concurrency --model FOLDER [--rounds N] [--out FILE]` runs it alone (a fixed-length model).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

import mlx.core as mx
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe

from mlx_speechd.engine import AudioCacheSettings, Engine, EngineConfig, GuardSettings
from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.batch import BatchGenerator, RowFrame
from mlx_speechd.engine.fast_generation import generate_utterance_fast
from mlx_speechd.engine.generation import GenerationSettings, Utterance
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, ModelInfo

from .engine_bench import engine_request
from .frame_loop import SilentDecoder
from .measure import RequestResult, median
from .workers import setup_worker_logging, worker_parser, write_result
from .wyoming_bench import WyomingDaemon

TEXTS = (
    "Good morning, the kitchen lights are on now.",
    "It is twenty degrees outside with rain later.",
    "Your timer has finished, please check the oven.",
    "Playing some quiet jazz in the living room.",
)
VOICES = ("ryan", "vivian", "serena", "aiden")
BATCH_SIZES = (1, 2, 4, 8)


def _guards(frames: int) -> GuardSettings:
    """Every text runs to exactly `frames` frames on a fixed-length model."""
    return GuardSettings(frames_per_char=0.01, min_frames=frames)


def _single(model: Qwen3Model, info: ModelInfo, frames: int) -> float:
    settings = GenerationSettings(ChunkSchedule(), _guards(frames), CachePolicy.LIMIT, 1 << 30)
    utt = Utterance(TEXTS[0], VOICES[0], "auto", None, None, None)
    silent = SilentDecoder(model.decoder, info.decoder_window)
    started = time.perf_counter()
    chunks = generate_utterance_fast(model, info, silent, utt, settings, lambda: False)
    produced = sum(c.frames for c in chunks)
    assert produced == frames, "use a model that never emits EOS"
    return frames / (time.perf_counter() - started)


def _queue(batch: BatchGenerator) -> list[RowFrame]:
    frames = list(batch.step().values())
    mx.async_eval([a for frame in frames for a in (frame.token, frame.codes)])
    return frames


def _batched(model: Qwen3Model, rows: int, frames: int) -> float:
    """Frames per second of `rows` rows (prefills included), stepped as `BatchScheduler` steps them:
    every frame queued before the one before it is read."""
    sampling = model.sampling(cloning=False)
    started = time.perf_counter()
    batch = BatchGenerator(model, sampling)
    ahead = []
    for row in range(rows):
        prompt = model.prepare(TEXTS[row % 4], language="auto", speaker=VOICES[row % 4])
        ahead.append(batch.add(row, prompt, mx.random.key(row), sampling.repetition_penalty))
        mx.async_eval(ahead[-1].token, ahead[-1].codes)
    for step in range(frames):
        current, ahead = ahead, (_queue(batch) if step < frames - 1 else [])
        for frame in current:
            int(frame.token)
            mx.eval(frame.codes)
    return rows * frames / (time.perf_counter() - started)


def generation_throughput(model: Qwen3Model, info: ModelInfo, rounds: int, frames: int) -> dict[str, Any]:
    variants = {"single": lambda: _single(model, info, frames)}
    for rows in BATCH_SIZES:
        variants[f"batch {rows}"] = lambda rows=rows: _batched(model, rows, frames)  # type: ignore[misc]
    for run in variants.values():
        run()  # warm up: traces for every batch size
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            rates[name].append(run())
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "frames": frames,
        "frames_per_second": medians,
        "ratio_to_single": {name: rate / medians["single"] for name, rate in medians.items()},
    }


def _concurrent(engine: Engine, count: int) -> tuple[list[RequestResult], float]:
    results: list[RequestResult | None] = [None] * count

    def one(index: int) -> None:
        results[index] = engine_request(engine, TEXTS[index % 4], VOICES[index % 4])

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done = [r for r in results if r is not None]
    assert len(done) == count
    return done, wall


def engine_throughput(model: str, rounds: int, frames: int) -> dict[str, Any]:
    """Aggregate audio seconds per wall second through the engine, batched and not."""
    off = AudioCacheSettings(enabled=False)
    engines = {
        batch: Engine(EngineConfig(model=model, max_batch=batch, guards=_guards(frames), audio_cache=off))
        for batch in (1, 4)
    }
    for engine in engines.values():
        engine.start()
    variants = [(1, 1), (1, 4), (4, 4), (4, 1)]  # (max_batch, concurrent requests)
    rates: dict[str, list[float]] = {}
    ttfa: dict[str, list[float]] = {}
    try:
        for batch, count in variants:  # warm up: first requests, traces for every batch size
            _concurrent(engines[batch], count)
        for _ in range(rounds):
            for batch, count in variants:
                results, wall = _concurrent(engines[batch], count)
                key = f"max_batch {batch}, {count} at once"
                rates.setdefault(key, []).append(sum(r.audio_seconds for r in results) / wall)
                ttfa.setdefault(key, []).extend(r.ttfa for r in results)
    finally:
        for engine in engines.values():
            engine.close()
    medians = {key: statistics.median(values) for key, values in rates.items()}
    single = medians["max_batch 1, 1 at once"]
    return {
        "frames": frames,
        "audio_seconds_per_second": medians,
        "ratio_to_single": {key: rate / single for key, rate in medians.items()},
        "ttfa_median_s": {key: median(values) for key, values in ttfa.items()},
    }


async def _first_audio(daemon: WyomingDaemon, count: int) -> tuple[list[float], list[float]]:
    """First audio of `count` concurrent clients, and describe's answer times meanwhile."""
    describes: list[float] = []
    done = asyncio.Event()

    async def describe_loop() -> None:
        async with AsyncTcpClient("127.0.0.1", daemon.port) as client:
            while not done.is_set():
                started = time.perf_counter()
                await client.write_event(Describe().event())
                await client.read_event()
                describes.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

    prober = asyncio.create_task(describe_loop())
    results = await asyncio.gather(
        *(asyncio.to_thread(daemon.request, TEXTS[i % 4], VOICES[i % 4], False) for i in range(count))
    )
    done.set()
    await prober
    return [r.ttfa for r in results], describes


def wyoming_first_audio(model: str, rounds: int) -> dict[str, Any]:
    """Median first audio alone and with four concurrent clients, per `--max-batch` (the texts run to
    the daemon's default frame caps)."""
    result: dict[str, Any] = {}
    for batch in (4, 1):
        daemon = WyomingDaemon(model, "--max-batch", str(batch), "--no-audio-cache")
        try:
            daemon.wait_ready()
            for count in (1, 4):  # warm up
                asyncio.run(_first_audio(daemon, count))
            idle: list[float] = []
            busy: list[float] = []
            describes: list[float] = []
            for _ in range(rounds):
                idle.extend(asyncio.run(_first_audio(daemon, 1))[0])
                ttfas, answers = asyncio.run(_first_audio(daemon, 4))
                busy.extend(ttfas)
                describes.extend(answers)
        finally:
            daemon.server.stop()
        result[f"max_batch {batch}"] = {
            "idle_ttfa_median_s": median(idle),
            "concurrent_ttfa_median_s": median(busy),
            "ratio": median(busy) / median(idle),
            "describe_max_s": max(describes),
            "describe_median_s": median(describes),
            "describes": len(describes),
        }
    return result


def run_concurrency(model: str, rounds: int, frames: int) -> dict[str, Any]:
    loaded, info = load_model(model)
    generation = generation_throughput(loaded, info, rounds, frames)
    del loaded
    return {
        "generation": generation,
        "engine": engine_throughput(model, rounds, frames),
        "wyoming": wyoming_first_audio(model, rounds),
    }


def main() -> None:
    parser = worker_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    setup_worker_logging()
    write_result(args.out, run_concurrency(args.model, args.rounds, args.frames))


if __name__ == "__main__":
    main()
