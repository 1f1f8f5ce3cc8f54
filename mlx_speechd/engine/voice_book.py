"""Which voices the engine offers and which loaded model speaks each: presets, the default model's
own voice and the voice library's voices, resolved per request (no MLX: any thread may ask)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidRequestError, UnknownVoiceError
from ..voices.store import Voice, VoiceKind, VoiceLibrary
from .loader import ISO_LANGUAGES
from .types import ModelInfo, ReferenceAudio, Variant, VoiceEntry, VoiceSettings

_LOGGER = logging.getLogger(__name__)

DEFAULT_DESIGN = "A clear, warm, natural voice speaking at a relaxed pace."


class VoiceBook:
    """The voices of the loaded models and of the library, and each request's resolved voice.

    Each voice belongs to one loaded model: preset speakers and style voices to a CustomVoice
    model, clone voices and reference audio to a Base model, designed voices to a VoiceDesign
    model; a request naming no voice goes to the default (first) model. The library is read
    afresh on every call, so voices added or removed while the engine runs are seen at once.
    """

    def __init__(
        self,
        defaults: VoiceSettings,
        library: VoiceLibrary | None,
        models: Callable[[], tuple[ModelInfo, ...]],
    ) -> None:
        """``defaults``: the configured voice settings; ``models``: the loaded models, default first."""
        self._defaults = defaults
        self.library = library
        self._models = models

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return self._models()

    @property
    def info(self) -> ModelInfo:
        """The default model."""
        return self._models()[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Voice names clients may ask for (library voices as the library is now)."""
        return tuple(entry.name for entry in self.entries())

    def entries(self) -> tuple[VoiceEntry, ...]:
        """Every voice clients may ask for, with its model: presets, then the library's voices.

        A library voice whose name is a preset speaker's is shadowed (presets win); one that no
        loaded model can speak is left out.
        """
        entries: list[VoiceEntry] = []
        for info in self.models:
            if info.variant is Variant.CUSTOM_VOICE:
                entries.extend(
                    VoiceEntry(s, info.name, s.replace("_", " ").title(), info.languages, "preset")
                    for s in info.speakers
                    if s not in {e.name for e in entries}
                )
        if self.info.variant is not Variant.CUSTOM_VOICE:
            entries.append(self._own_voice_entry())
        taken = {entry.name for entry in entries}
        for voice in self.library.list() if self.library is not None else []:
            speaker = self._model_for(voice)
            if voice.name not in taken and speaker is not None:
                languages = voice.languages or speaker.languages
                entries.append(
                    VoiceEntry(voice.name, speaker.name, _describe(voice), languages, voice.kind.value)
                )
        return tuple(entries)

    def library_voices(self, model: str) -> list[str]:
        """The names of the library voices `model` speaks."""
        kinds = {kind.value for kind in VoiceKind}
        return [e.name for e in self.entries() if e.model == model and e.kind in kinds]

    def _own_voice_entry(self) -> VoiceEntry:
        info, name = self.info, self.own_voice_name()
        if info.variant is Variant.VOICE_DESIGN:
            return VoiceEntry(name, info.name, "Designed voice (--instruct)", info.languages, "model")
        return VoiceEntry(name, info.name, f"Cloned voice ({name})", info.languages, "model")

    def own_voice_name(self) -> str:
        ref = self._defaults.ref_audio
        if self.info.variant is Variant.BASE and ref:
            return ref.name if isinstance(ref, ReferenceAudio) else Path(ref).stem
        return "designed" if self.info.variant is Variant.VOICE_DESIGN else "default"

    def _model_for(self, voice: Voice) -> ModelInfo | None:
        """The first loaded model that can speak a library voice."""
        for info in self.models:
            if info.variant is not voice.kind.variant:
                continue
            if voice.kind is VoiceKind.STYLE and voice.settings.speaker not in info.speakers:
                continue
            if voice.kind is VoiceKind.CLONE and not (info.has_codec_encoder or voice.settings.x_vector_only):
                continue
            return info
        return None

    @property
    def default_voice(self) -> str:
        """The voice used when a request names none."""
        voices = self.names
        speaker = (self._defaults.speaker or "").lower()
        if speaker in voices:
            return speaker
        if self.info.variant is not Variant.CUSTOM_VOICE:
            return self.own_voice_name()
        return "ryan" if "ryan" in self.info.speakers else self.info.speakers[0]

    def resolve(self, requested: VoiceSettings) -> VoiceSettings:
        """The voice and model for a request, merged over the defaults and checked.

        In order: explicit reference audio (a Base model), a preset speaker of a loaded CustomVoice
        model, the default model's own voice, a library voice (read from the library now). Raises
        UnknownVoiceError or InvalidRequestError.
        """
        if requested.ref_audio:
            return self._resolve_reference(requested.over(self._defaults), self._base_model())
        name = (requested.speaker or self._defaults.speaker or "").strip().lower() or None
        if name is None or (name == self.own_voice_name() and self.info.variant is not Variant.CUSTOM_VOICE):
            return self.resolve_default(requested.over(self._defaults))
        for info in self.models:
            if info.variant is Variant.CUSTOM_VOICE and name in info.speakers:
                return self._resolve_preset(info, name, requested.over(self._defaults))
        return self._resolve_library(self.library_voice(requested.speaker or name), requested)

    def resolve_default(self, voice: VoiceSettings) -> VoiceSettings:
        """The default model's voice for a request that names none."""
        info = self.info
        if info.variant is Variant.CUSTOM_VOICE:
            speaker = (voice.speaker or "").lower()
            if speaker not in info.speakers:
                speaker = "ryan" if "ryan" in info.speakers else info.speakers[0]
            return self._resolve_preset(info, speaker, voice)
        language = normalize_language(voice.language or "auto", info.languages)
        if info.variant is Variant.VOICE_DESIGN:
            return VoiceSettings(
                language=language, instruct=voice.instruct or DEFAULT_DESIGN, model=info.name
            )
        if not voice.ref_audio:
            raise InvalidRequestError(
                "This is a Base (voice cloning) model: give reference audio (--ref-audio) and "
                "its transcript (--ref-text), or name a clone voice of the voice library"
            )
        return self._resolve_reference(voice, info)

    def _resolve_preset(self, info: ModelInfo, speaker: str, voice: VoiceSettings) -> VoiceSettings:
        language = normalize_language(voice.language or "auto", info.languages)
        instruct = voice.instruct or None
        if instruct and info.size == "0b6":
            _LOGGER.warning("0.6B CustomVoice models ignore instruct; dropping it")
            instruct = None
        return VoiceSettings(speaker=speaker, language=language, instruct=instruct, model=info.name)

    def _resolve_reference(self, voice: VoiceSettings, info: ModelInfo) -> VoiceSettings:
        if isinstance(voice.ref_audio, str) and not Path(voice.ref_audio).expanduser().is_file():
            raise InvalidRequestError(f"Reference audio '{voice.ref_audio}' does not exist")
        language = normalize_language(voice.language or "auto", info.languages)
        return VoiceSettings(
            language=language, ref_audio=voice.ref_audio, ref_text=voice.ref_text or None, model=info.name
        )

    def _base_model(self) -> ModelInfo:
        for info in self.models:
            if info.variant is Variant.BASE:
                return info
        raise InvalidRequestError(
            "Reference audio needs a Base (voice cloning) model; loaded: "
            + ", ".join(f"{info.name} ({info.variant})" for info in self.models)
        )

    def library_voice(self, name: str) -> Voice:
        """The library voice `name`; UnknownVoiceError (listing the voices) for anything else."""
        try:
            if self.library is not None:
                return self.library.get(name)
        except (InvalidRequestError, UnknownVoiceError):
            pass
        raise UnknownVoiceError(f"Unknown voice '{name}'. Voices: {', '.join(self.names)}")

    def _resolve_library(self, voice: Voice, requested: VoiceSettings) -> VoiceSettings:
        info = self._model_for(voice)
        if info is None:
            needs = {
                VoiceKind.CLONE: "a Base model (with a codec encoder)",
                VoiceKind.STYLE: f"a CustomVoice model with speaker '{voice.settings.speaker}'",
                VoiceKind.DESIGNED: "a VoiceDesign model (or `mlx-speechd voice adopt` it for a Base model)",
            }[voice.kind]
            raise UnknownVoiceError(
                f"Voice '{voice.name}' is a {voice.kind} voice: it needs {needs}, and none is loaded "
                f"(loaded: {', '.join(f'{i.name} ({i.variant})' for i in self.models)})"
            )
        language = requested.language or voice.settings.language or self._defaults.language or "auto"
        if voice.kind is VoiceKind.STYLE:
            assert voice.settings.speaker is not None  # checked when the voice was added
            instruct = requested.instruct if requested.instruct is not None else voice.settings.instruct
            styled = VoiceSettings(language=language, instruct=instruct)
            return self._resolve_preset(info, voice.settings.speaker, styled)
        language = normalize_language(language, info.languages)
        if voice.kind is VoiceKind.DESIGNED:
            return VoiceSettings(
                language=language,
                instruct=voice.settings.description,
                model=info.name,
                seed=voice.settings.seed,
            )
        return VoiceSettings(
            language=language, ref_text=voice.settings.ref_text, library=voice.name, model=info.name
        )


def _describe(voice: Voice) -> str:
    """A library voice in a few words, for clients' voice lists."""
    settings = voice.settings
    if voice.kind is VoiceKind.STYLE:
        return ", ".join(filter(None, (settings.speaker, settings.instruct)))
    if voice.kind is VoiceKind.DESIGNED:
        return f"designed: {settings.description}"
    if voice.source and voice.source.startswith("adopted"):
        return f"cloned, {voice.source}"
    return f"cloned from {Path(voice.source).name}" if voice.source else "cloned voice"


def normalize_language(language: str, supported: tuple[str, ...]) -> str:
    """Map 'en', 'en-US', 'English' etc. to the model's language names."""
    key = language.strip().lower().replace("-", "_")
    key = ISO_LANGUAGES.get(key.split("_")[0], key) if key not in supported else key
    if key not in supported:
        raise InvalidRequestError(f"Unsupported language '{language}'. Supported: {', '.join(supported)}")
    return key
