"""MLX's matrix products on Linux: the BLAS bundled with MLX's wheel against MKL (`mlx_speechd/blas.py`).

`python -m bench.blas` times one product per shape (rows x width -> outputs; 1 and 4 rows are a frame
step alone and in a batch of 4, 400 rows a cloning prompt's prefill) in float32 and bfloat16, once in
a process with MKL loaded under MLX and once with `MLX_SPEECHD_BLAS=reference`, and prints medians.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = ((1, 64, 2048), (4, 64, 2048), (400, 64, 2048), (1, 1024, 3072), (4, 1024, 3072), (400, 1024, 3072))
"""(rows, width, outputs): the tiny model's code-predictor head, the 0.6B-shaped model's MLP."""


def measure(repeats: int) -> dict[str, float]:
    """Median milliseconds per product, keyed `dtype rows x width -> outputs`; run in a fresh process."""
    import mlx.core as mx

    times = {}
    for dtype in (mx.float32, mx.bfloat16):
        for rows, width, outputs in SHAPES:
            x = mx.random.normal((rows, width)).astype(dtype)
            w = mx.random.normal((outputs, width)).astype(dtype)
            mx.eval(x, w)
            samples = []
            for _ in range(repeats + 2):
                began = time.perf_counter()
                mx.eval(x @ w.T)
                samples.append(time.perf_counter() - began)
            times[f"{dtype} {rows}x{width}->{outputs}"] = statistics.median(samples[2:]) * 1000
    return times


def _run(blas: str) -> dict[str, float | str | None]:
    code = (
        "import json, sys, mlx_speechd; from mlx_speechd import blas; from bench.blas import measure;"
        "loaded = str(blas.loaded) if blas.loaded else None;"
        "print(json.dumps({**measure(int(sys.argv[1])), 'loaded': loaded}))"
    )
    env = {**os.environ, "MLX_SPEECHD_BLAS": blas} if blas else dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-c", code, "15"], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, float | str | None] = json.loads(done.stdout)
    return result


def main() -> None:
    reference, mkl = _run("reference"), _run("")
    if mkl["loaded"] is None:
        sys.exit('MKL is not installed here: pip install -e ".[mkl]"')
    print(f"MKL: {mkl['loaded']}")
    print("| product | bundled BLAS ms | MKL ms | speed-up |\n|---|---|---|---|")
    for key, before in reference.items():
        after = mkl[key]
        if isinstance(before, float) and isinstance(after, float):
            print(f"| {key} | {before:.3f} | {after:.3f} | {before / after:.1f}x |")


if __name__ == "__main__":
    main()
