"""Find a Qwen3-TTS model (local folder or Hugging Face hub id) and load it with mlx-audio."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .types import ModelLoadError, Variant

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


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model can do; immutable, so any thread may read it."""

    name: str
    path: Path
    variant: Variant
    size: str
    speakers: tuple[str, ...]
    languages: tuple[str, ...]
    sample_rate: int
    max_frames: int
    decoder_window: int | None
    has_codec_encoder: bool


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


def load_model(model: str) -> tuple[Any, ModelInfo]:
    """Load a Qwen3-TTS 12 Hz model. Must run on the thread that will use it."""
    path = resolve_model_path(model)
    config = _read_config(path)
    if config.get("model_type") != "qwen3_tts":
        raise ModelLoadError(
            f"'{model}' is not a Qwen3-TTS model (model_type is {config.get('model_type')!r}); "
            "mlx-speechd runs Qwen3-TTS 12 Hz models."
        )
    from mlx_audio.tts.utils import load_model as mlx_audio_load

    try:
        with stdout_to_stderr():
            loaded = mlx_audio_load(path)
    except Exception as err:
        raise ModelLoadError(f"Could not load the model in '{path}': {err}") from err
    if loaded.tokenizer is None or loaded.speech_tokenizer is None:
        raise ModelLoadError(
            f"The model in '{path}' is incomplete: its text tokenizer or speech_tokenizer/ "
            "folder did not load (see the warnings above)."
        )
    return loaded, _describe(model, path, loaded)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Cannot read {path / 'config.json'}: {err}") from err
    return config


def _describe(name: str, path: Path, model: Any) -> ModelInfo:
    talker = model.config.talker_config
    languages = tuple(lang for lang in (talker.codec_language_id or {}) if "dialect" not in lang)
    decoder_config = model.speech_tokenizer.config.decoder_config
    generate_config = model.generate_config or {}
    return ModelInfo(
        name=name,
        path=path,
        variant=Variant(model.config.tts_model_type),
        size=str(getattr(model.config, "tts_model_size", "")),
        speakers=tuple(model.get_supported_speakers()),
        languages=("auto", *languages),
        sample_rate=model.sample_rate,
        max_frames=int(generate_config.get("max_new_tokens") or 2048),
        decoder_window=getattr(decoder_config, "sliding_window", None),
        has_codec_encoder=bool(model.speech_tokenizer.has_encoder),
    )
