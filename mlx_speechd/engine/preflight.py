"""Mistakes in an engine's configuration found before its models load (which takes many seconds
with real weights): a missing model folder, unreadable reference audio, an unknown voice."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidRequestError, UnknownVoiceError
from ..voices.store import VoiceLibrary
from .loader import looks_local, missing_folder_error
from .types import EngineConfig, ReferenceAudio

_OWN_VOICE_NAMES = frozenset({"default", "designed"})
"""Names the default model's own voice answers to (engine.py), besides presets and library voices."""


def check_before_loading(config: EngineConfig, library: VoiceLibrary | None) -> None:
    """Raise the error loading would raise later, where it can be known from files alone."""
    for model in config.models:
        if looks_local(model) and not Path(model).expanduser().is_dir():
            raise missing_folder_error(model)
    ref_audio = config.voice.ref_audio
    if ref_audio is not None and not isinstance(ref_audio, ReferenceAudio):
        _check_readable(Path(ref_audio).expanduser(), str(ref_audio))
    elif config.voice.speaker:
        _check_voice(config, library, config.voice.speaker)


def _check_readable(path: Path, name: str) -> None:
    if not path.is_file():
        raise InvalidRequestError(f"Reference audio '{name}' does not exist (or is not a file)")
    try:
        with path.open("rb") as audio:
            audio.read(1)
    except OSError as err:
        raise InvalidRequestError(f"Reference audio '{name}' cannot be read: {err.strerror}") from err


def _check_voice(config: EngineConfig, library: VoiceLibrary | None, name: str) -> None:
    """An unknown `--voice`, when every model is a local folder whose config.json names its speakers."""
    wanted = name.strip().lower()
    speakers: list[str] = []
    for model in config.models:
        path = Path(model).expanduser() / "config.json"
        if not looks_local(model) or not path.is_file():
            return  # a hub model: its voices are known once it is found
        try:
            model_config = json.loads(path.read_text())
            if model_config.get("tts_model_type") == "custom_voice":
                speakers.extend(key.lower() for key in model_config["talker_config"]["spk_id"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # loading reports a broken config.json
    if wanted in speakers or wanted in _OWN_VOICE_NAMES:
        return
    voices = list(dict.fromkeys(speakers))
    if library is not None:
        try:
            library.get(name)
            return
        except (InvalidRequestError, UnknownVoiceError):
            voices += library.names()
    raise UnknownVoiceError(f"Unknown voice '{name}'. Voices: {', '.join(voices) or 'none'}")
