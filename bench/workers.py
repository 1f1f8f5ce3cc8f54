"""Benchmarks that need a process of their own (clean memory figures, a fresh start) run as workers.

A worker is `python -m bench.<module> ... --out FILE` (with the repository root on PYTHONPATH); it writes
its result as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .servers import bench_env

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the folder that holds the `bench` package."""


def run_worker(module: str, args: list[str], timeout: float, **env: str) -> dict[str, Any]:
    """Run worker `module` to completion and return its JSON result."""
    with tempfile.TemporaryDirectory(prefix="mlx-speechd-bench-") as tmp:
        out = Path(tmp) / "result.json"
        argv = [sys.executable, "-m", f"bench.{module}", *args, "--out", str(out)]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=bench_env(PYTHONPATH=path, **env),
        )
        if done.returncode != 0 or not out.exists():
            tail = "\n  ".join(done.stderr.splitlines()[-20:])
            raise RuntimeError(f"bench worker {module} failed ({done.returncode}):\n  {tail}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def worker_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--out", type=Path, required=True, help="write the JSON result here")
    return parser


def setup_worker_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    # the fixed-length test models run every utterance to its frame cap, by design
    logging.getLogger("mlx_speechd.engine.generation").setLevel(logging.ERROR)


def write_result(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=1))
