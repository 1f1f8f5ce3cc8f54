"""Library voices in the engine and the Python API: several models in one engine, routing by voice,
saved prompts and decoder state giving the same audio as fresh ones, and a library read live."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from test_voices import REF_TEXT, write_reference

import mlx_speechd
from mlx_speechd.engine import GuardSettings, ReferenceAudio, UnknownVoiceError, Variant, VoiceSettings
from mlx_speechd.fingerprint import model_fingerprint
from mlx_speechd.voices import VoiceKind, VoiceLibrary, VoiceParams
from mlx_speechd.voices.reference import load_reference, read_audio

THREE_SENTENCES = "The first sentence is short. Then comes a second one. And a third to end."
GUARDS = GuardSettings(frames_per_char=0.25, min_frames=6)
"""Short frame caps keep the fixed-length test models quick."""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> VoiceLibrary:
    """The seed scenario's library: a ~19 s ref.wav and its transcript as 'alice', and a style voice."""
    folder = tmp_path_factory.mktemp("library")
    lib = VoiceLibrary(folder / "voices")
    wav = write_reference(folder, seconds=19.0)
    settings = VoiceParams(ref_text=REF_TEXT, language="english")
    lib.add("alice", VoiceKind.CLONE, settings, audio=load_reference(wav).audio, source=str(wav))
    lib.add("calm", VoiceKind.STYLE, VoiceParams(speaker="vivian", instruct="Speak calmly."))
    lib.add("narrator", VoiceKind.DESIGNED, VoiceParams(description="A deep voice.", seed=5))
    return lib


@pytest.fixture(scope="module")
def tts(tiny_custom_voice: Path, tiny_base: Path, library: VoiceLibrary) -> Iterator[mlx_speechd.TTS]:
    """A CustomVoice model (the default) and a Base model in one engine."""
    with mlx_speechd.load(
        [str(tiny_custom_voice), str(tiny_base)], voices_dir=library.folder, guards=GUARDS
    ) as loaded:
        yield loaded


def test_two_models_offer_presets_and_library_voices(tts: mlx_speechd.TTS, tiny_base: Path) -> None:
    assert [m.variant for m in tts.models] == [Variant.CUSTOM_VOICE, Variant.BASE]
    assert tts.info is tts.models[0]
    entries = {entry.name: entry for entry in tts.engine.voice_entries()}
    assert entries["ryan"].kind == "preset" and entries["ryan"].model == tts.models[0].name
    assert entries["alice"].kind == "clone" and entries["alice"].model == str(tiny_base)
    assert entries["alice"].languages == ("english",)
    assert entries["alice"].description.startswith("cloned from ref-19s")
    assert (
        entries["calm"].model == tts.models[0].name and entries["calm"].description == "vivian, Speak calmly."
    )
    assert "narrator" not in entries  # a designed voice needs a VoiceDesign model, and none is loaded
    assert "default" not in entries  # the default model is CustomVoice: no stand-in voice
    assert tts.engine.default_voice == "ryan"


def test_each_voice_goes_to_its_model(tts: mlx_speechd.TTS, tiny_base: Path) -> None:
    engine = tts.engine
    preset = engine.resolve_voice(VoiceSettings(speaker="Ryan"))
    assert (preset.speaker, preset.model) == ("ryan", tts.models[0].name)
    style = engine.resolve_voice(VoiceSettings(speaker="calm"))
    assert (style.speaker, style.instruct, style.model) == ("vivian", "Speak calmly.", tts.models[0].name)
    clone = engine.resolve_voice(VoiceSettings(speaker="alice"))
    assert (clone.library, clone.model, clone.language) == ("alice", str(tiny_base), "english")
    assert engine.resolve_voice(VoiceSettings(speaker="alice", language="de")).language == "german"
    samples = read_audio(VoiceLibrary(engine.library.folder).get("alice").ref_audio_path)  # type: ignore[union-attr]
    explicit = engine.resolve_voice(VoiceSettings(ref_audio=ReferenceAudio(samples), ref_text="Hi."))
    assert explicit.model == str(tiny_base) and explicit.library is None
    with pytest.raises(UnknownVoiceError, match="VoiceDesign"):
        engine.resolve_voice(VoiceSettings(speaker="narrator"))
    for audio in (tts.generate("Hello there.", voice="ryan"), tts.generate("Hello there.", voice="alice")):
        assert audio.stats.frames > 0 and audio.stats.finish_reason == "frame-cap"


def test_library_voice_sounds_exactly_like_fresh_reference_audio(
    tts: mlx_speechd.TTS, library: VoiceLibrary, tiny_base: Path, tiny_custom_voice: Path
) -> None:
    """The saved prompt and decoder state give the same audio as encoding and priming afresh."""
    voice = library.get("alice")
    samples = read_audio(voice.ref_audio_path)
    fresh = tts.generate(THREE_SENTENCES, ref_audio=samples, ref_text=REF_TEXT, language="english", seed=7)
    first = tts.generate(THREE_SENTENCES, voice="alice", seed=7)  # computes and saves the prompt
    again = tts.generate(THREE_SENTENCES, voice="alice", seed=7)  # from memory
    assert fresh.stats.sentences == first.stats.sentences == 3
    assert fresh.stats.frames > 0 and np.array_equal(
        np.frombuffer(fresh.pcm, "<i2"), np.frombuffer(first.pcm, "<i2")
    )
    assert again.pcm == first.pcm
    prompt_file = voice.prompt_path(model_fingerprint(tiny_base))
    assert prompt_file.is_file()
    keys = set(mx.load(str(prompt_file)))
    assert {"ref_codes", "ref_text_ids", "speaker_embedding"} <= keys
    assert any(key.startswith("decoder.cache.") for key in keys)
    assert any(key.startswith("decoder.conv.") for key in keys)
    with mlx_speechd.load(
        str(tiny_base),
        extra_models=[str(tiny_custom_voice)],
        voices_dir=library.folder,
        guards=GUARDS,
        warmup=False,
    ) as other:  # a new engine reads the prompt and decoder state from the file
        assert other.generate(THREE_SENTENCES, voice="alice", seed=7).pcm == first.pcm


def test_a_voice_added_or_removed_while_running_is_seen_at_once(
    tts: mlx_speechd.TTS, library: VoiceLibrary
) -> None:
    assert "bob" not in tts.voices
    samples = read_audio(library.get("alice").ref_audio_path)
    library.add("bob", VoiceKind.CLONE, VoiceParams(x_vector_only=True), audio=samples[: 24000 * 4])
    try:
        assert "bob" in tts.voices
        audio = tts.generate("Hi there.", voice="bob", seed=1)
        assert audio.stats.frames > 0
    finally:
        library.remove("bob")
    assert "bob" not in tts.voices
    with pytest.raises(UnknownVoiceError, match="Unknown voice 'bob'"):
        tts.generate("Hi there.", voice="bob")


@pytest.mark.parametrize("name", ["../voices/alice", "alice/../alice", "/etc/passwd", "al ice", "élan", ".."])
def test_names_with_path_separators_or_odd_characters_are_refused(tts: mlx_speechd.TTS, name: str) -> None:
    with pytest.raises(UnknownVoiceError, match="Unknown voice"):
        tts.engine.resolve_voice(VoiceSettings(speaker=name))


def test_a_base_model_warns_about_its_missing_default_voice_only_without_library_voices(
    tiny_base: Path, library: VoiceLibrary, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warning = "every request must bring its own reference audio"
    with caplog.at_level(logging.INFO, logger="mlx_speechd.engine.engine"):
        with mlx_speechd.load(str(tiny_base), voices_dir=library.folder, warmup=False):
            pass
        assert warning not in caplog.text
        assert "its library voices: alice" in caplog.text
        caplog.clear()
        with mlx_speechd.load(str(tiny_base), voices_dir=tmp_path / "empty", warmup=False):
            pass
        assert warning in caplog.text
