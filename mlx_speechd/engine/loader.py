"""Find a Qwen3-TTS model (local folder or Hugging Face hub id) and load it through the adapter."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .adapter import Qwen3Model
from .types import ModelInfo

_LOGGER = logging.getLogger(__name__)

HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]

ISO_LANGUAGES = {
    "zh": "chinese",
    "en": "english",
    "de": "german",
    "it": "italian",
    "pt": "portuguese",
    "es": "spanish",
    "ja": "japanese",
    "ko": "korean",
    "fr": "french",
    "ru": "russian",
}


def looks_local(model: str) -> bool:
    """Whether `model` names a folder rather than a hub repository id."""
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def resolve_model_path(model: str) -> Path:
    """Return a local folder for `model`, downloading it from the hub if allowed.

    Raises ModelLoadError with a one-paragraph explanation when that is not possible.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if looks_local(model):
        raise ModelLoadError(
            f"Model folder '{model}' does not exist (or is not a folder). Pass a folder that "
            "holds config.json and *.safetensors, or a Hugging Face repo id such as "
            "mlx-community/Qwen3-TTS-12Hz-0.6B-CustomVoice-8bit."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, allow_patterns=HUB_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelLoadError(not_cached_message(model, "HF_HUB_OFFLINE is set"))
    _LOGGER.info("Downloading %s from the Hugging Face hub (first run only)", model)
    try:
        return Path(snapshot_download(model, allow_patterns=HUB_FILES))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise ModelLoadError(not_cached_message(model, f"download failed: {err}")) from err


def not_cached_message(model: str, why: str) -> str:
    """The one-paragraph explanation when a model is neither cached nor downloadable."""
    return (
        f"Model '{model}' is not in the local Hugging Face cache and could not be downloaded "
        f"({why}). On a machine with internet access run `mlx-speechd download {model}` "
        "(or `hf download MODEL`), or copy the model folder over and pass its path with --model; "
        "the cache lives in $HF_HOME (default ~/.cache/huggingface)."
    )


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send anything written to file descriptor 1 to stderr (libraries print while loading)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def load_model(model: str) -> tuple[Qwen3Model, ModelInfo]:
    """Load a Qwen3-TTS 12 Hz model. Must run on the thread that will use it."""
    path = resolve_model_path(model)
    check_qwen3_tts(model, path)
    with stdout_to_stderr():
        loaded = Qwen3Model.load(path)
    return loaded, loaded.describe(model, path)


def check_qwen3_tts(model: str, path: Path) -> dict[str, Any]:
    """`path`'s config.json, if it is a Qwen3-TTS model's; ModelLoadError otherwise."""
    try:
        config: dict[str, Any] = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Cannot read {path / 'config.json'}: {err}") from err
    if not isinstance(config, dict) or config.get("model_type") != "qwen3_tts":
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise ModelLoadError(
            f"'{model}' is not a Qwen3-TTS model (model_type is {model_type!r}); "
            "mlx-speechd runs Qwen3-TTS 12 Hz models."
        )
    return config
