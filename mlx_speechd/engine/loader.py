"""Find a Qwen3-TTS model (local folder or Hugging Face hub id) and load it through the adapter."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import blas
from ..errors import ModelLoadError
from .adapter import Qwen3Model
from .types import ModelInfo, Variant

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
    """Whether `model` names a folder rather than a hub repository id: it starts with `.`, `/` or `~`,
    is not OWNER/NAME, is no valid repo id, or its OWNER part is a folder here (`models/nope`)."""
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        return True
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        return True
    return Path(model.split("/")[0]).is_dir()


def missing_folder_error(model: str) -> ModelLoadError:
    return ModelLoadError(
        f"No such folder: '{model}'. Pass a folder that holds config.json and *.safetensors, "
        "or a Hugging Face repo id such as mlx-community/Qwen3-TTS-12Hz-0.6B-CustomVoice-8bit."
    )


def resolve_model_path(model: str) -> Path:
    """Return a local folder for `model`, downloading it from the hub if allowed.

    Raises ModelLoadError with a one-paragraph explanation when that is not possible.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if looks_local(model):
        raise missing_folder_error(model)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, allow_patterns=HUB_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelLoadError(not_cached_message(model, "HF_HUB_OFFLINE is set"))
    _check_on_hub(model)
    _LOGGER.info("Downloading %s from the Hugging Face hub (first run only)", model)
    try:
        return Path(snapshot_download(model, allow_patterns=HUB_FILES))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise ModelLoadError(not_cached_message(model, f"download failed: {first_line(err)}")) from err


def _check_on_hub(model: str) -> None:
    """Ask the hub about `model` (one small request) before announcing a download; ModelLoadError if
    the hub is out of reach or has no such model."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(model)
    except RepositoryNotFoundError as err:
        raise ModelLoadError(
            f"Model '{model}' is neither in the local Hugging Face cache nor on the hub (or it is private). "
            "Check the repo id, or pass a local model folder with --model."
        ) from err
    except Exception as err:  # the hub client's transport errors differ between its versions
        why = f"the Hugging Face hub is out of reach: {first_line(err)}"
        raise ModelLoadError(not_cached_message(model, why)) from err


def first_line(err: BaseException) -> str:
    """An exception's message as one line: its first non-empty line, whitespace collapsed."""
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def not_cached_message(model: str, why: str) -> str:
    """The one-paragraph explanation when a model is neither cached nor downloadable."""
    return (
        f"Model '{model}' is not in the local Hugging Face cache and could not be downloaded "
        f"({why}). On a machine with internet access run `mlx-speechd download {model}` "
        "(or `hf download MODEL`), or copy the model folder over and pass its path with --model; "
        "the cache lives in $HF_HOME (default ~/.cache/huggingface)."
    )


_TRANSFORMERS_CONFIG_LOGGER = "transformers.configuration_utils"
_CAPTURING = threading.Lock()


class _LoadNoiseFilter(logging.Filter):
    """transformers' "model of type `qwen3_tts` to instantiate a model of type ``" warning (mlx-audio
    reads a config through a generic class) says nothing to a user: it becomes a DEBUG line of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "to instantiate a model of type" not in record.getMessage():
            return True
        _LOGGER.debug("transformers: %s", record.getMessage())
        return False


@contextlib.contextmanager
def library_output_to_debug() -> Iterator[None]:
    """While libraries load a model: what they print (sys.stdout or file descriptor 1, as C code
    writes) is logged at DEBUG, and transformers' config-class warning too; nothing reaches stdout.
    File descriptor 1 is the process's: one capture runs at a time."""
    noise = _LoadNoiseFilter()
    config_logger = logging.getLogger(_TRANSFORMERS_CONFIG_LOGGER)
    with _CAPTURING, tempfile.TemporaryFile() as written:
        sys.stdout.flush()
        saved = os.dup(1)
        printed = io.StringIO()
        config_logger.addFilter(noise)
        try:
            os.dup2(written.fileno(), 1)
            with contextlib.redirect_stdout(printed):
                yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            config_logger.removeFilter(noise)
            written.seek(0)
            output = printed.getvalue() + written.read().decode(errors="replace")
            for line in output.splitlines():
                if line.strip():
                    _LOGGER.debug("while loading: %s", line.strip())


def load_model(model: str) -> tuple[Qwen3Model, ModelInfo]:
    """Load a Qwen3-TTS 12 Hz model. Must run on the thread that will use it."""
    path = resolve_model_path(model)
    check_qwen3_tts(model, path)
    with library_output_to_debug():
        loaded = Qwen3Model.load(path)
    _log_blas()
    return loaded, loaded.describe(model, path)


def _log_blas() -> None:
    if blas.failure:
        _LOGGER.warning("%s; float32 products use MLX's bundled BLAS", blas.failure)
    elif blas.loaded:
        _LOGGER.info("float32 matrix products run on MKL (%s)", blas.loaded)


def model_variant(model: str) -> Variant:
    """The variant of a Qwen3-TTS model from its config.json, without loading its weights."""
    config = check_qwen3_tts(model, resolve_model_path(model))
    variant = config.get("tts_model_type")
    if variant not in tuple(Variant):
        raise ModelLoadError(f"'{model}' is not a Qwen3-TTS 12 Hz model (tts_model_type {variant!r})")
    return Variant(variant)


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
