"""Cold start: the first request after start, with and without warm-up, with and without kept kernels.

MLX's CPU backend compiles the kernels of `mx.compile`d functions (mlx-audio compiles its
activations and its codec decoder) with the system C++ compiler and keeps the shared libraries
in `compiled_kernel_dir()`: `std::filesystem::temp_directory_path()/mlx/<mlx version>/cpu`,
that is `$TMPDIR/mlx/<version>/cpu` (or /tmp/... when TMPDIR is unset). A process that finds a
kernel's library there loads it instead of compiling it. Each start is measured in a fresh worker
process whose TMPDIR is a new, empty folder ("cold kernels") or the folder a previous worker
filled ("kept kernels").
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from pathlib import Path
from typing import Any

from mlx_speechd.engine import Engine, EngineConfig

from .engine_bench import engine_request
from .workers import run_worker, setup_worker_logging, worker_parser, write_result

TEXT = "Hello from the benchmark."


def compiled_kernel_dir() -> Path:
    """Where MLX's CPU backend keeps compiled kernels (this process's TMPDIR)."""
    return Path(tempfile.gettempdir()) / "mlx" / importlib.metadata.version("mlx") / "cpu"


def _kernels(folder: Path) -> int:
    return len(list(folder.glob("*.so"))) if folder.is_dir() else 0


def measure_start(model: str, warmup: bool) -> dict[str, Any]:
    folder = compiled_kernel_dir()
    kernels_before = _kernels(folder)
    began = time.perf_counter()
    engine = Engine(EngineConfig(model=model, warmup=warmup))
    engine.start()
    start_seconds = time.perf_counter() - began
    kernels_after_start = _kernels(folder)
    first = engine_request(engine, TEXT)
    second = engine_request(engine, TEXT)
    engine.close()
    return {
        "warmup": warmup,
        "kernel_dir": str(folder),
        "kernels_before": kernels_before,
        "kernels_after_start": kernels_after_start,
        "kernels_after": _kernels(folder),
        "start_s": start_seconds,
        "first_ttfa_s": first.ttfa,
        "first_total_s": first.end,
        "second_ttfa_s": second.ttfa,
        "ready_to_first_audio_s": start_seconds + first.ttfa,
    }


def run_cold_start(model: str) -> list[dict[str, Any]]:
    """Four fresh starts: {cold, kept} kernels x {no warm-up, warm-up}."""
    results = []
    for warmup in (False, True):
        with tempfile.TemporaryDirectory(prefix="mlx-speechd-kernels-") as tmp:
            for kernels in ("cold", "kept"):
                args = ["--model", model] + ([] if warmup else ["--no-warmup"])
                result = run_worker("cold_start", args, timeout=900, TMPDIR=tmp)
                results.append({"kernels": kernels, **result})
    return results


def main() -> None:
    parser = worker_parser("Start an engine and time its first requests.")
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args()
    setup_worker_logging()
    write_result(args.out, measure_start(args.model, warmup=not args.no_warmup))


if __name__ == "__main__":
    main()
