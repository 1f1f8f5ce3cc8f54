"""A clone voice's prompt and primed decoder state, computed once per model and kept in the voice folder.

mlx-audio builds the cloning prompt afresh for every sentence (it encodes the reference with the codec
encoder, runs the speaker encoder, tokenizes the transcript), and the engine primes the codec decoder
with the reference's last `window` frames before every sentence. `voice_prompt` does both once per
model: the prompt pieces come from `Qwen3Model.clone_prompt` (the adapter knows mlx-audio's layout),
the decoder state from `StreamingDecoder.state()`; both are saved as `prompts/<fingerprint>.safetensors`,
tagged with the model fingerprint, the reference digest and the decoder window. Speaking a sentence
from them (`Qwen3Model.prepare_clone`, `StreamingDecoder.restore`) gives the same audio bit for bit
as computing them afresh. Everything here runs on the thread that owns the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import mlx.core as mx
import numpy as np

from ..engine.adapter import ClonePrompt, Qwen3Model
from ..engine.decoder import DecoderState, StreamingDecoder
from .reference import read_audio
from .store import Voice

_LOGGER = logging.getLogger(__name__)

PROMPT_FORMAT = "2"
_PROMPT_KEYS = ("speaker_embedding", "ref_codes", "ref_text_ids")
_DECODER_PREFIX = "decoder."


@dataclass(frozen=True)
class VoicePrompt:
    """What speaking a clone voice needs per sentence besides the text."""

    clone: ClonePrompt
    decoder: DecoderState | None
    """The decoder primed with the reference's last `window` frames (in-context clones with a window)."""


def compute_voice_prompt(
    model: Qwen3Model, decoder: StreamingDecoder, audio: np.ndarray, ref_text: str | None
) -> VoicePrompt:
    """Encode the reference and prime `decoder` with its end (the decoder is left reset)."""
    clone = model.clone_prompt(audio, ref_text)
    state = None
    if clone.ref_codes is not None and decoder.window:
        decoder.reset()
        mx.eval(decoder.step(clone.ref_codes[:, :, -decoder.window :]))
        state = decoder.state()
        mx.eval(list(state.arrays.values()))
        decoder.reset()
    return VoicePrompt(clone, state)


def reference_digest(audio: np.ndarray, ref_text: str | None) -> str:
    """Identity of what a prompt is computed from: the samples and the transcript (None: x-vector only)."""
    digest = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    digest.update(b"\0x-vector-only" if ref_text is None else b"\0" + ref_text.encode())
    return digest.hexdigest()[:32]


def _metadata(fingerprint: str, digest: str, window: int | None) -> dict[str, str]:
    return {
        "format": PROMPT_FORMAT,
        "model_fingerprint": fingerprint,
        "reference_digest": digest,
        "decoder_window": str(window),
    }


def save_prompt(path: Path, prompt: VoicePrompt, fingerprint: str, digest: str, window: int | None) -> None:
    """Write the prompt as safetensors tagged with model, reference and decoder window (atomically)."""
    arrays = {name: value for name in _PROMPT_KEYS if (value := getattr(prompt.clone, name)) is not None}
    if prompt.decoder is not None:
        arrays.update({_DECODER_PREFIX + key: value for key, value in prompt.decoder.arrays.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.safetensors")
    try:
        mx.save_safetensors(str(temporary), arrays, metadata=_metadata(fingerprint, digest, window))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_prompt(path: Path, fingerprint: str, digest: str, window: int | None) -> VoicePrompt | None:
    """The prompt saved at `path` if it was computed for this model, reference and window, else None."""
    if not path.is_file():
        return None
    try:
        loaded = mx.load(str(path), return_metadata=True)
    except (OSError, RuntimeError, ValueError) as err:
        _LOGGER.warning("Ignoring unreadable voice prompt %s: %s", path, err)
        return None
    arrays, metadata = cast(tuple[dict[str, mx.array], dict[str, str]], loaded)
    expected = _metadata(fingerprint, digest, window)
    if any(metadata.get(key) != value for key, value in expected.items()):
        _LOGGER.info("Voice prompt %s is for another model, reference or window; recomputing it", path)
        return None
    clone = ClonePrompt(*(arrays.get(name) for name in _PROMPT_KEYS))
    decoder = {k[len(_DECODER_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_DECODER_PREFIX)}
    return VoicePrompt(clone, DecoderState(window, decoder) if decoder else None)


def voice_prompt(model: Qwen3Model, decoder: StreamingDecoder, voice: Voice, fingerprint: str) -> VoicePrompt:
    """A clone voice's prompt for the model with `fingerprint`: read from its folder, or computed and saved.

    A prompt that can't be saved (read-only library) is still returned; the next call computes it again.
    """
    audio = read_audio(voice.ref_audio_path)
    ref_text = None if voice.settings.x_vector_only else voice.settings.ref_text
    digest = reference_digest(audio, ref_text)
    path = voice.prompt_path(fingerprint)
    prompt = load_prompt(path, fingerprint, digest, decoder.window)
    if prompt is None:
        prompt = compute_voice_prompt(model, decoder, audio, ref_text)
        try:
            save_prompt(path, prompt, fingerprint, digest, decoder.window)
        except OSError as err:
            _LOGGER.warning("Cannot save the prompt of voice '%s' in %s: %s", voice.name, path, err)
    return prompt
