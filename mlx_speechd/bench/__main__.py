"""`python -m mlx_speechd.bench`: run the benchmarks, print the tables, optionally save JSON.

See docs/performance.md for what each section measures and the numbers of a full run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

SECTIONS = ("compare", "pipeline", "long", "cache", "soak", "cold", "big")
QUICK_SKIPS = ("cold", "big")

_LOGGER = logging.getLogger("mlx_speechd.bench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlx_speechd.bench",
        description="Benchmark mlx-speechd against mlx-audio's own streaming on one model and machine.",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help="model folder (a fixed-length test model keeps requests equal)")
    model.add_argument(
        "--make",
        choices=("tiny", "0.6b"),
        default="tiny",
        help="write a random fixed-length model of this size",
    )
    parser.add_argument("--quick", action="store_true", help="small counts (the CI mode); skips cold and big")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], help="skip these sections")
    parser.add_argument("--rounds", type=int, help="rounds of the comparison (default 30, quick 1)")
    parser.add_argument("--no-http", action="store_true", help="leave out mlx-audio's HTTP server")
    parser.add_argument("--no-stdio", action="store_true", help="leave out the stdio daemon")
    parser.add_argument(
        "--big-model",
        type=Path,
        help="0.6B-shaped model folder for `big` (written there if missing; default: a temporary one)",
    )
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress in detail")
    return parser


def _sections(args: argparse.Namespace) -> list[str]:
    chosen = list(args.only or SECTIONS)
    skipped = set(args.skip) | (set(QUICK_SKIPS) if args.quick and not args.only else set())
    return [s for s in chosen if s not in skipped]


def _make_model(folder: Path, size: str) -> str:
    from ..testing.model_factory import make_test_model

    _LOGGER.info("Writing a random %s model to %s", size, folder)
    return str(make_test_model(folder, "custom_voice", size, fixed_length=True))


def _machine() -> dict[str, Any]:
    import mlx.core as mx

    cpuinfo = Path("/proc/cpuinfo")
    models = (
        re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE) if cpuinfo.exists() else []
    )
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": models[0] if models else platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "mlx": importlib.metadata.version("mlx"),
        "mlx_device": str(mx.default_device()),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


@dataclass(frozen=True)
class Plan:
    """How much of each section to run."""

    rounds: int
    pipeline_rounds: int
    pipeline_frames: int
    long_frames: int
    long_points: tuple[float, ...]
    long_half_width: float
    long_repeats: int
    cache_rounds: int
    cache_per_block: int
    cache_frames: int
    soak_requests: int
    soak_clients: int
    soak_per_client: int
    big_frames: int = 4


FULL = Plan(
    rounds=30,
    pipeline_rounds=12,
    pipeline_frames=75,
    long_frames=800,
    long_points=(5.0, 30.0, 60.0),
    long_half_width=2.0,
    long_repeats=3,
    cache_rounds=6,
    cache_per_block=2,
    cache_frames=150,
    soak_requests=200,
    soak_clients=4,
    soak_per_client=10,
)
QUICK = Plan(
    rounds=1,
    pipeline_rounds=1,
    pipeline_frames=24,
    long_frames=64,
    long_points=(1.5, 3.0, 4.5),
    long_half_width=0.8,
    long_repeats=1,
    cache_rounds=1,
    cache_per_block=1,
    cache_frames=40,
    soak_requests=10,
    soak_clients=2,
    soak_per_client=1,
)


def run(args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    """Run the chosen sections, printing each table to `out` as it completes."""
    from . import report
    from .compare import BASELINE, CompareSettings, run_comparison
    from .targets import check

    plan = QUICK if args.quick else FULL
    results: dict[str, Any] = {"machine": _machine(), "command": " ".join(sys.argv), "quick": args.quick}
    seconds: dict[str, float] = {}
    results["seconds"] = seconds
    sections = _sections(args)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlx-speechd-bench-")))
        model = args.model or _make_model(work / f"model-{args.make}", args.make)
        results["model"] = model
        began = time.perf_counter()

        def section(name: str, title: str, body: str) -> None:
            nonlocal began
            seconds[name] = time.perf_counter() - began
            began = time.perf_counter()
            print(f"\n## {title}\n\n{body}", file=out, flush=True)

        if "compare" in sections:
            settings = CompareSettings(
                rounds=args.rounds or plan.rounds,
                http=not args.no_http,
                stdio=not args.no_stdio,
                warmup=not args.quick,
            )
            columns = run_comparison(model, settings)
            summaries = [c.summary() for c in columns]
            engine = next(c for c in columns if c.key == "engine")
            results["compare"] = {
                "settings": asdict(settings),
                "summaries": summaries,
                "engine_first_chunk_frames": max(r.chunk_frames[0] for r in engine.requests),
                "requests": {c.key: [asdict(r) for r in c.requests] for c in columns},
            }
            section(
                "compare",
                f"Side by side: {settings.rounds} rounds, {settings.frames} frames per request; ratios "
                "against mlx-audio at 10-frame chunks; * = this benchmark's own process",
                report.comparison_table(summaries, BASELINE),
            )
        if {"pipeline", "long", "cache"} & set(sections):
            from ..engine.loader import load_model

            bench_model, info = load_model(model)
            if "pipeline" in sections:
                from .pipeline import run_pipeline

                results["pipeline"] = run_pipeline(
                    bench_model, info, rounds=plan.pipeline_rounds, frames=plan.pipeline_frames
                )
                section(
                    "pipeline",
                    "Generation loops alone (one thread, no server)",
                    report.pipeline_table(results["pipeline"]),
                )
            if "long" in sections:
                from .long_utterance import run_long_utterance

                results["long"] = run_long_utterance(
                    bench_model,
                    info,
                    frames=plan.long_frames,
                    points=plan.long_points,
                    half_width=plan.long_half_width,
                    repeats=plan.long_repeats,
                )
                section("long", "Long utterance", report.long_table(results["long"]))
            if "cache" in sections:
                from .cache_policy import run_cache_policy

                results["cache"] = run_cache_policy(
                    bench_model,
                    info,
                    rounds=plan.cache_rounds,
                    per_block=plan.cache_per_block,
                    frames=plan.cache_frames,
                )
                section("cache", "Cache policy", report.cache_table(results["cache"]))
            del bench_model
        if "soak" in sections:
            from .soak import run_soak

            results["soak"] = run_soak(model, plan.soak_requests, plan.soak_clients, plan.soak_per_client)
            section("soak", "Soak", report.soak_table(results["soak"]))
        if "cold" in sections:
            from .cold_start import run_cold_start

            results["cold"] = run_cold_start(model)
            section("cold", "Cold start", report.cold_table(results["cold"]))
        if "big" in sections:
            from .big_model import run_big_model

            big = args.big_model or work / "model-0.6b"
            if not (big / "config.json").exists():
                _make_model(big, "0.6b")
            results["big"] = run_big_model(str(big), frames=plan.big_frames)
            section("big", f"0.6B-shaped model, {plan.big_frames} frames", report.big_table(results["big"]))
        results["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
        targets = check(results, BASELINE)
        results["targets"] = [asdict(t) for t in targets]
        section(
            "targets",
            "Targets",
            report.table(
                ["target", "measured", "limit", "met"],
                [[t.name, t.value, t.limit, {True: "yes", False: "NO", None: "-"}[t.met]] for t in targets],
            ),
        )
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _LOGGER.setLevel(logging.INFO)
    # the fixed-length test models run every utterance to its frame cap, by design
    logging.getLogger("mlx_speechd.engine.generation").setLevel(logging.ERROR)
    results = run(args, sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
