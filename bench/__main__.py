"""`python -m bench` (from the repository root): run the benchmarks, print the tables, save JSON.

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
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from .sections import FULL, QUICK, SECTIONS, Context

_LOGGER = logging.getLogger("bench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
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
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--skip", nargs="+", choices=list(SECTIONS), default=[], help="skip these sections")
    parser.add_argument("--rounds", type=int, help="rounds of the comparison (default 30, quick 1)")
    parser.add_argument("--no-http", action="store_true", help="leave out mlx-audio's HTTP server")
    parser.add_argument("--no-stdio", action="store_true", help="leave out the stdio daemon")
    parser.add_argument(
        "--big-model",
        type=Path,
        help="0.6B-shaped model folder for `big` (written there if missing; default: a temporary one)",
    )
    parser.add_argument(
        "--voice-models",
        type=Path,
        help="folder of `voices`' models, SIZE-base and SIZE-custom_voice (written there if missing; "
        "default: a temporary one)",
    )
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress in detail")
    return parser


def _sections(args: argparse.Namespace) -> list[str]:
    """The chosen sections, in the registry's order."""
    chosen = set(args.only or SECTIONS)
    skipped = set(args.skip)
    if args.quick and not args.only:
        skipped |= {name for name, section in SECTIONS.items() if not section.quick}
    return [name for name in SECTIONS if name in chosen and name not in skipped]


def _make_model(folder: Path, size: str, variant: str = "custom_voice") -> str:
    from mlx_speechd.testing.model_factory import make_test_model

    _LOGGER.info("Writing a random %s %s model to %s", size, variant, folder)
    return str(make_test_model(folder, variant, size, fixed_length=True))


def _machine() -> dict[str, Any]:
    import mlx.core as mx

    from mlx_speechd import blas

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
        "blas": str(blas.loaded) if blas.loaded else "MLX's own",
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def run(args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    """Run the chosen sections, printing each table to `out` as it completes."""
    from . import report
    from .compare import BASELINE
    from .targets import check

    results: dict[str, Any] = {"machine": _machine(), "command": " ".join(sys.argv), "quick": args.quick}
    seconds: dict[str, float] = {}
    results["seconds"] = seconds
    with tempfile.TemporaryDirectory(prefix="mlx-speechd-bench-") as tmp:
        work = Path(tmp)
        model = args.model or _make_model(work / f"model-{args.make}", args.make)
        results["model"] = model
        ctx = Context(model, QUICK if args.quick else FULL, args, work, _make_model)
        for name in _sections(args):
            section = SECTIONS[name]
            if not section.in_process:
                ctx.release()
            began = time.perf_counter()
            outcome = section.run(ctx)
            seconds[name] = time.perf_counter() - began
            results[name] = outcome.result
            print(f"\n## {outcome.title}\n\n{outcome.table}", file=out, flush=True)
        ctx.release()
    results["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    began = time.perf_counter()
    targets = check(results, BASELINE)
    results["targets"] = [asdict(t) for t in targets]
    rows = [[t.name, t.value, t.limit, {True: "yes", False: "NO", None: "-"}[t.met]] for t in targets]
    print(
        f"\n## Targets\n\n{report.table(['target', 'measured', 'limit', 'met'], rows)}", file=out, flush=True
    )
    seconds["targets"] = time.perf_counter() - began
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
