"""MKL under MLX's float32 products when it is installed; MLX's bundled BLAS otherwise or on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_speechd.blas import BLAS_ENV

_PROBE = """
import json, sys
first = sys.argv[1]
if first == "mlx":
    import mlx.core
import mlx_speechd, mlx.core as mx, numpy as np
from mlx_speechd import blas
rng = np.random.default_rng(0)
a, b = rng.standard_normal((400, 64), np.float32), rng.standard_normal((64, 300), np.float32)
error = float(np.abs(np.array(mx.array(a) @ mx.array(b)) - a.astype(np.float64) @ b).max())
maps = open("/proc/self/maps").read()
print(json.dumps({"loaded": str(blas.loaded) if blas.loaded else None, "failure": blas.failure,
                  "mapped": "libmkl_rt" in maps, "error": error}))
"""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="MKL is loaded on Linux only")
MKL_INSTALLED = bool(list(Path(sys.prefix, "lib").glob("libmkl_rt.so*")))


def _probe(first: str = "mlx_speechd", blas: str | None = None) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key != BLAS_ENV}
    if blas is not None:
        env[BLAS_ENV] = blas
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, first],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_importing_the_package_puts_mkl_under_mlx_when_installed() -> None:
    result = _probe()
    assert result["mapped"] is MKL_INSTALLED
    assert (result["loaded"] is not None) is MKL_INSTALLED
    assert result["failure"] is None
    assert isinstance(result["error"], float) and result["error"] < 1e-3  # the products stay right


def test_the_reference_setting_and_an_earlier_mlx_import_keep_mlxs_own_blas() -> None:
    for result in (_probe(blas="reference"), _probe(first="mlx")):
        assert result["mapped"] is False and result["loaded"] is None
        assert isinstance(result["error"], float) and result["error"] < 1e-3


def test_a_blas_that_does_not_load_is_one_clear_error_before_the_model_loads(
    tiny_custom_voice: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "libnothing.so"
    env = {**os.environ, BLAS_ENV: str(missing)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_speechd",
            "--model",
            str(tiny_custom_voice),
            "-o",
            str(tmp_path / "a.wav"),
        ],
        input="Hello.",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"{BLAS_ENV}: cannot load {missing}" in done.stderr
    assert "Loaded" not in done.stderr and not (tmp_path / "a.wav").exists()
