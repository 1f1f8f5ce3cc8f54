"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the Hugging Face hub

ModelFactory = Callable[..., Path]
"""``model_factory(variant, fixed_length=True) -> Path`` of a cached tiny random model."""


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    """Tiny random-weight Qwen3-TTS model folders, written once per session and variant."""
    from mlx_speechd.testing.model_factory import make_test_model

    cache: dict[tuple[str, bool], Path] = {}

    def get(variant: str, fixed_length: bool = True) -> Path:
        key = (variant, fixed_length)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"tiny-{variant}-{'fixed' if fixed_length else 'eos'}")
            cache[key] = make_test_model(folder, variant, "tiny", fixed_length=fixed_length)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def tiny_custom_voice(model_factory: ModelFactory) -> Path:
    """Tiny CustomVoice model that never emits EOS (exactly max_tokens frames)."""
    return model_factory("custom_voice")


@pytest.fixture(scope="session")
def tiny_voice_design(model_factory: ModelFactory) -> Path:
    """Tiny VoiceDesign model that never emits EOS."""
    return model_factory("voice_design")


@pytest.fixture(scope="session")
def tiny_base(model_factory: ModelFactory) -> Path:
    """Tiny Base (voice cloning) model that never emits EOS."""
    return model_factory("base")


@pytest.fixture(scope="session")
def tiny_custom_voice_eos(model_factory: ModelFactory) -> Path:
    """Tiny CustomVoice model whose random weights emit EOS at random."""
    return model_factory("custom_voice", fixed_length=False)
