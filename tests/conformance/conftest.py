"""Fixtures for the conformance tests: the goldens and the random model they were made on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conformance_goldens import GOLDEN, Goldens, load_goldens

from mlx_speechd.testing.official_layout import make_official_model, weights_digest


@pytest.fixture(scope="session")
def goldens() -> Goldens:
    return load_goldens(GOLDEN)


@pytest.fixture(scope="session")
def official_model_folder(tmp_path_factory: pytest.TempPathFactory, goldens: Goldens) -> Path:
    """The conformance model, rebuilt from its seed; the same bytes the goldens were made on."""
    folder = make_official_model(tmp_path_factory.mktemp("official") / "model", seed=goldens.meta["seed"])
    assert weights_digest(folder) == goldens.meta["weights_sha256"], (
        "the rebuilt weights differ from the ones the goldens were made on: regenerate them with "
        "tests/conformance/make_golden.py (see docs/conformance.md)"
    )
    return folder


@pytest.fixture(scope="session")
def official_qwen3(official_model_folder: Path) -> Any:
    """The conformance model loaded through our loader (our adapter over mlx-audio), float32."""
    from mlx_speechd.engine.loader import load_model

    model, info = load_model(str(official_model_folder))
    assert info.decoder_window == 72
    return model


@pytest.fixture(scope="session")
def official_model(official_qwen3: Any) -> Any:
    """The mlx-audio model object inside our adapter (for comparing mlx-audio's port directly)."""
    return official_qwen3.module
