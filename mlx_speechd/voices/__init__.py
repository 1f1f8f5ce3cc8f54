"""The voice library: named voices (cloned, styled, designed) stored once and offered by name."""

from .store import Voice, VoiceKind, VoiceLibrary, VoiceParams, check_name, default_voices_dir

__all__ = ["Voice", "VoiceKind", "VoiceLibrary", "VoiceParams", "check_name", "default_voices_dir"]
