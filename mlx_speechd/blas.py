"""An optimized BLAS under MLX's Linux CPU build, when Intel's MKL is installed.

MLX's Linux CPU wheel (`mlx[cpu]`) computes float32 matrix products with the reference BLAS it
bundles (netlib's, unoptimized): a row of activations costs the same whether it comes alone or
with hundreds of others, so prompt prefill and batches pay for every row. With MKL the same
products run 6x (4 rows) to 27x (400 rows) faster on the 2-core machine measured (docs/performance.md).

`pip install "mlx-speechd[mkl]"` (Linux x86-64) installs MKL; `load_mkl` then loads it with
`RTLD_GLOBAL` before MLX is loaded, so MLX's calls to `cblas_sgemm` resolve to MKL's. This has to
happen before `mlx.core` is first imported: importing `mlx_speechd` does it. bfloat16 and float16
products use MLX's own kernels either way. `MLX_SPEECHD_BLAS=reference` keeps MLX's bundled BLAS.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

BLAS_ENV = "MLX_SPEECHD_BLAS"
"""`reference` keeps MLX's bundled BLAS; a path names the MKL runtime library to load."""

loaded: Path | None = None
"""The MKL runtime library loaded under MLX, if one was (the model loader logs it)."""
failure: str | None = None
"""Why the library named by `MLX_SPEECHD_BLAS` did not load (the command line stops on it)."""


def _find_mkl() -> Path | None:
    """The MKL runtime the `mkl` wheel installs into this environment's `lib/`, if it is there."""
    choice = os.environ.get(BLAS_ENV, "")
    if choice:
        return None if choice == "reference" else Path(choice)
    found = sorted(Path(sys.prefix, "lib").glob("libmkl_rt.so*"))
    return found[-1] if found else None


def load_mkl() -> Path | None:
    """Load MKL for MLX to use, if it is installed and MLX is not loaded yet; return its path.

    A library that does not load leaves MLX's own BLAS in place and sets `failure`.
    """
    global loaded, failure
    if loaded is not None or sys.platform != "linux" or "mlx.core" in sys.modules:
        return loaded
    path = _find_mkl()
    if path is None:
        return None
    # MLX's own threads run the graph; MKL's thread pool on top only adds contention for small products.
    os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL")
    try:
        ctypes.CDLL(str(path), mode=os.RTLD_GLOBAL)
    except OSError as err:
        failure = f"{BLAS_ENV}: cannot load {path}: {err}"
        return None
    loaded = path
    return loaded
