"""Soak: many sequential requests, then concurrent clients, on one engine in a process of its own.

Records process RSS and MLX memory (active and buffer cache) at start (after warm-up), after
the first 10 requests, after all sequential requests and after the concurrent phase, and the
time to first audio throughout. Texts vary in length (so prompt and chunk shapes vary, the
usual cause of MLX cache growth). Memory is read once the engine has idled long enough to give the
heap's freed pages back (`_SETTLE_S` after a request), as a daemon between requests would be.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import mlx.core as mx

from mlx_speechd.engine import Engine, EngineConfig, GuardSettings
from mlx_speechd.engine.memory import IDLE_TRIM_AFTER_S

from .engine_bench import engine_request, engine_request_async
from .measure import RequestResult, median, percentile, process_memory
from .workers import run_worker, setup_worker_logging, worker_parser, write_result

TEXTS = (
    "Good morning.",
    "The lights are on.",
    "It is ten past seven.",
    "Door locked.",
    "Rain expected later today.",
    "Timer done.",
    "The oven is preheated.",
    "Two new messages.",
    "Playing jazz in the kitchen.",
    "Alarm set for six.",
    "Humidity is forty percent.",
)
_CHECKPOINT_AFTER = 10
_SETTLE_S = IDLE_TRIM_AFTER_S + 0.5
"""How long after a request's last chunk memory is read: the engine has trimmed the heap by then."""
GUARDS = GuardSettings(frames_per_char=1.5, min_frames=20)
"""Shorter frame caps than the default (the fixed-length test model always runs to its cap): 20-40
frames (1.6-3.2 s of audio) per text, so 200 requests take minutes on a CPU."""


@dataclass(frozen=True)
class Checkpoint:
    label: str
    requests: int
    seconds: float
    rss_bytes: int
    mlx_active_bytes: int
    mlx_cache_bytes: int


def latency(results: list[RequestResult]) -> dict[str, float]:
    ttfas = [r.ttfa for r in results]
    return {
        "requests": len(results),
        "ttfa_median_s": median(ttfas),
        "ttfa_p95_s": percentile(ttfas, 95),
        "ttfa_max_s": max(ttfas),
        "rtf_median": median([r.rtf for r in results]),
        "audio_seconds": sum(r.audio_seconds for r in results),
    }


async def concurrent(engine: Engine, clients: int, per_client: int) -> list[RequestResult]:
    async def client(index: int) -> list[RequestResult]:
        return [
            await engine_request_async(engine, TEXTS[(index + 3 * i) % len(TEXTS)]) for i in range(per_client)
        ]

    batches = await asyncio.gather(*(client(i) for i in range(clients)))
    return [result for batch in batches for result in batch]


def soak(model: str, requests: int, clients: int, per_client: int) -> dict[str, Any]:
    engine = Engine(EngineConfig(model=model, guards=GUARDS))
    engine.start()
    started = time.perf_counter()
    checkpoints: list[Checkpoint] = []
    done = 0

    def checkpoint(label: str) -> None:
        time.sleep(_SETTLE_S)
        checkpoints.append(
            Checkpoint(
                label,
                done,
                time.perf_counter() - started,
                process_memory().rss_bytes,
                mx.get_active_memory(),
                mx.get_cache_memory(),
            )
        )

    checkpoint("start")
    sequential: list[RequestResult] = []
    trace: list[tuple[int, int, int]] = []
    """(requests done, RSS, MLX cache) every 10 sequential requests."""
    for i in range(requests):
        sequential.append(engine_request(engine, TEXTS[i % len(TEXTS)]))
        done += 1
        if done == _CHECKPOINT_AFTER:
            checkpoint(f"after {done}")
        if done % _CHECKPOINT_AFTER == 0:
            time.sleep(_SETTLE_S)
            trace.append((done, process_memory().rss_bytes, mx.get_cache_memory()))
    checkpoint(f"after {done} sequential")
    parallel = asyncio.run(concurrent(engine, clients, per_client))
    done += len(parallel)
    checkpoint(f"after {clients} concurrent clients x {per_client}")
    engine.close()
    first = sequential[:_CHECKPOINT_AFTER]
    return {
        "requests": requests,
        "clients": clients,
        "per_client": per_client,
        "checkpoints": [asdict(c) for c in checkpoints],
        "trace": trace,
        "sequential": latency(sequential),
        "sequential_first": latency(first),
        "sequential_last": latency(sequential[-len(first) :]),
        "concurrent": latency(parallel),
    }


def run_soak(model: str, requests: int, clients: int, per_client: int) -> dict[str, Any]:
    """Run the soak in a worker process and return its result."""
    args = ["--model", model, "--requests", str(requests), "--clients", str(clients)]
    args += ["--per-client", str(per_client)]
    return run_worker("soak", args, timeout=3600)


def rss_growth(result: dict[str, Any]) -> float:
    """RSS after all sequential requests over RSS after the first 10 (1.0 = flat)."""
    by_label = {c["label"]: c for c in result["checkpoints"]}
    after_first = by_label[f"after {_CHECKPOINT_AFTER}"]["rss_bytes"]
    after_all = by_label[f"after {result['requests']} sequential"]["rss_bytes"]
    return float(after_all / after_first)


def main() -> None:
    parser = worker_parser("Soak one engine with sequential and concurrent requests.")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=10)
    args = parser.parse_args()
    if args.requests < _CHECKPOINT_AFTER:
        parser.error(f"--requests must be at least {_CHECKPOINT_AFTER}")
    setup_worker_logging()
    write_result(args.out, soak(args.model, args.requests, args.clients, args.per_client))


if __name__ == "__main__":
    main()
