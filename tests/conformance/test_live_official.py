"""Live check against the official package: runs only where its environment exists.

For whoever upgrades the official package or mlx-audio: regenerates the goldens with the official
package (``make_golden.py`` in ``.venv-official``, or the Python named by
``MLX_SPEECHD_OFFICIAL_PYTHON``) and compares them with the committed ones, and checks that the
tiny ``make-test-model`` folders load in the official classes too. docs/conformance.md has the setup.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conformance_goldens import Goldens, load_goldens

from mlx_speechd.testing.model_factory import make_test_model

HERE = Path(__file__).resolve().parent
OFFICIAL_PYTHON = Path(
    os.environ.get("MLX_SPEECHD_OFFICIAL_PYTHON", HERE.parents[1] / ".venv-official" / "bin" / "python")
)
pytestmark = pytest.mark.skipif(
    not OFFICIAL_PYTHON.exists(), reason=f"no official qwen-tts environment at {OFFICIAL_PYTHON}"
)


def _run_official(*args: str) -> str:
    result = subprocess.run(
        [str(OFFICIAL_PYTHON), str(HERE / "make_golden.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_regenerated_goldens_equal_the_committed_ones(tmp_path: Path, goldens: Goldens) -> None:
    _run_official("--out", str(tmp_path / "golden.npz"))
    fresh = load_goldens(tmp_path / "golden.npz")
    assert fresh.meta["weights_sha256"] == goldens.meta["weights_sha256"]
    assert fresh.arrays.keys() == goldens.arrays.keys()
    for name, expected in goldens.arrays.items():
        if np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(fresh[name], expected, err_msg=name)
        else:
            np.testing.assert_allclose(fresh[name], expected, rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("variant", ["custom_voice", "base"])
def test_tiny_test_models_load_in_the_official_classes(tmp_path: Path, variant: str) -> None:
    folder = make_test_model(tmp_path / variant, variant, "tiny")
    assert "loads in the official classes" in _run_official("--check-folder", str(folder))
