"""Shared pytest fixtures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import mlx_speechd  # noqa: F401  (before any test module loads MLX: MKL when installed, see mlx_speechd/blas.py)

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the Hugging Face hub
# The audio cache is on by default: keep the tests' entries out of the user's cache folder
# (the command line, the Python API and subprocesses all take the default folder from here).
os.environ["MLX_SPEECHD_AUDIO_CACHE_DIR"] = tempfile.mkdtemp(prefix="mlx-speechd-test-cache-")
# Likewise the voice library: tests never read or write the user's voices.
os.environ["MLX_SPEECHD_VOICES_DIR"] = tempfile.mkdtemp(prefix="mlx-speechd-test-voices-")

ModelFactory = Callable[..., Path]
"""``model_factory(variant, fixed_length=True, ends_by_eos=False) -> Path`` of a cached tiny
random model; ``ends_by_eos`` (which overrides ``fixed_length``) ends sentences by EOS."""


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    """Tiny random-weight Qwen3-TTS model folders, written once per session and variant."""
    from mlx_speechd.testing.model_factory import make_test_model

    cache: dict[tuple[str, bool, bool], Path] = {}

    def get(variant: str, fixed_length: bool = True, ends_by_eos: bool = False) -> Path:
        fixed_length = fixed_length and not ends_by_eos
        key = (variant, fixed_length, ends_by_eos)
        if key not in cache:
            kind = "ends" if ends_by_eos else "fixed" if fixed_length else "eos"
            folder = tmp_path_factory.mktemp(f"tiny-{variant}-{kind}")
            cache[key] = make_test_model(
                folder, variant, "tiny", fixed_length=fixed_length, ends_by_eos=ends_by_eos
            )
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


@pytest.fixture(scope="session")
def tiny_custom_voice_ends(model_factory: ModelFactory) -> Path:
    """Tiny CustomVoice model whose sentences end by EOS after tens of frames, reproducibly
    per seed (for behaviour that needs a normal end, like the audio cache)."""
    return model_factory("custom_voice", ends_by_eos=True)


@pytest.fixture(scope="session")
def tiny_base_ends(model_factory: ModelFactory) -> Path:
    """Tiny Base model whose cloned sentences (in-context, with a reference and its transcript)
    end by EOS after tens of frames, reproducibly per seed."""
    return model_factory("base", ends_by_eos=True)
