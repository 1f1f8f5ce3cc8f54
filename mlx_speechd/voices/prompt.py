"""A clone voice's prompt, computed once per model and kept in the voice folder.

mlx-audio builds the cloning prompt afresh for every sentence: it encodes the reference with
the codec encoder (cached in memory by mlx-audio), runs the speaker encoder on the reference's
mel spectrogram (not cached), and tokenizes the transcript. `compute_clone_prompt` does those
three once; `clone_inputs` builds a sentence's prefill from them with the same operations in the
same order as mlx-audio 0.6.2's `_prepare_icl_generation_inputs` (in-context cloning) and
`_prepare_generation_inputs(ref_audio=...)` (speaker embedding only), so the embeddings are
bit-identical to mlx-audio's. Everything here runs on the thread that owns the model.

Not kept yet (phase 2): the codec decoder's state after priming it with the last `window`
reference frames (`StreamingDecoder.step(ref_codes[:, :, -window:])`, 297 ms per sentence on the
tiny model). That state is `StreamingDecoder`'s per-layer `_WindowCache` (keys, values, offset)
plus the streaming tails of the codec decoder's modules, found the way mlx-audio's
`reset_streaming_state` finds them (`named_modules()`): each causal conv's `_buffer` and each
upsampling block's `_overflow` (None for the tiny model after priming; 7 `_buffer`s set). MLX arrays
are immutable, so one snapshot serves every sentence: restoring it into a reset decoder and decoding
the same frames gave bit-identical audio in a prototype (tiny Base model, 72-frame window: priming
1.7 s, restoring 1 ms, on this loaded 2-core CPU). Saving it means adding those arrays, keyed by module
path, to the prompt file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import numpy as np

from ..errors import InvalidRequestError
from .reference import read_audio
from .store import Voice

_LOGGER = logging.getLogger(__name__)

PROMPT_FORMAT = "1"


@dataclass(frozen=True)
class ClonePrompt:
    """The per-voice, per-model part of a cloning prompt."""

    speaker_embedding: mx.array | None
    """[1, enc_dim] float32 from the speaker encoder; None if the model has none."""
    ref_codes: mx.array | None
    """[1, code_groups, frames] codec codes of the reference; None for speaker-embedding-only cloning."""
    ref_text_ids: mx.array | None
    """[1, n] token ids of the transcript; None for speaker-embedding-only cloning."""

    @property
    def in_context(self) -> bool:
        """In-context cloning (reference codes and transcript), not the speaker embedding alone."""
        return self.ref_codes is not None


def compute_clone_prompt(model: Any, audio: np.ndarray | mx.array, ref_text: str | None) -> ClonePrompt:
    """Encode 24 kHz mono reference `audio`: in-context with `ref_text`, else speaker embedding only.

    Raises InvalidRequestError when the model lacks what that needs (a codec encoder, a speaker encoder).
    """
    ref_audio = mx.array(audio, dtype=mx.float32) if isinstance(audio, np.ndarray) else audio
    speaker_embedding = None
    if model.speaker_encoder is not None:
        speaker_embedding = model.extract_speaker_embedding(ref_audio)
    if ref_text is None:
        if speaker_embedding is None:
            raise InvalidRequestError(
                "this model has no speaker encoder: it cannot clone from a speaker embedding"
            )
        return ClonePrompt(speaker_embedding, None, None)
    if not model.speech_tokenizer.has_encoder:
        raise InvalidRequestError("this model's codec has no encoder: it cannot clone from a reference")
    ref_codes = model.speech_tokenizer.encode(ref_audio[None, None, :])
    ref_ids = mx.array(model.tokenizer.encode(f"<|im_start|>assistant\n{ref_text}<|im_end|>\n"))[None, :]
    ref_text_ids = ref_ids[:, 3:-2]  # without the role (3 tokens) and "<|im_end|>\n" (2)
    mx.eval(ref_codes, ref_text_ids)
    return ClonePrompt(speaker_embedding, ref_codes, ref_text_ids)


def clone_inputs(
    model: Any, prompt: ClonePrompt, text: str, language: str = "auto"
) -> tuple[mx.array, mx.array, mx.array, mx.array | None]:
    """Prefill embeddings, trailing text, pad embedding and reference codes for speaking `text`.

    Equal to mlx-audio's `_prepare_icl_generation_inputs(text, ref_audio, ref_text, language)`
    (in-context prompts) or `_prepare_generation_inputs(text, language, ref_audio=ref_audio)` plus
    None (speaker-embedding-only prompts) for the reference the prompt was computed from.
    """
    if prompt.ref_codes is not None and prompt.ref_text_ids is not None:
        return _in_context_inputs(
            model, prompt.ref_codes, prompt.ref_text_ids, prompt.speaker_embedding, text, language
        )
    embeds, trailing, pad = _speaker_only_inputs(model, prompt.speaker_embedding, text, language)
    return embeds, trailing, pad, None


def _in_context_inputs(
    model: Any,
    ref_codes: mx.array,
    ref_text_ids: mx.array,
    speaker_embedding: mx.array | None,
    text: str,
    language: str,
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """mlx-audio 0.6.2's `_prepare_icl_generation_inputs` after its encoding steps, line for line."""
    config = model.config.talker_config
    talker = model.talker
    target_ids = mx.array(
        model.tokenizer.encode(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
    )[None, :]
    text_ids = target_ids[:, 3:-5]
    bos_embed, eos_embed, pad_embed = _tts_special_embeds(model)

    text_embed = talker.text_projection(
        talker.get_text_embeddings()(mx.concatenate([ref_text_ids, text_ids], axis=1))
    )
    text_embed = mx.concatenate([text_embed, eos_embed], axis=1)
    ref_codec_embed = talker.get_input_embeddings()(ref_codes[:, 0, :])
    for i in range(config.num_code_groups - 1):
        ref_codec_embed = ref_codec_embed + talker.code_predictor.codec_embedding[i](ref_codes[:, i + 1, :])
    codec_bos_embed = talker.get_input_embeddings()(mx.array([[config.codec_bos_id]]))
    codec_embed = mx.concatenate([codec_bos_embed, ref_codec_embed], axis=1)
    codec_pad_embed = talker.get_input_embeddings()(mx.array([[config.codec_pad_id]]))
    hidden = codec_pad_embed.shape[-1]
    icl_embed = mx.concatenate(
        [
            text_embed + mx.broadcast_to(codec_pad_embed, (1, text_embed.shape[1], hidden)),
            codec_embed + mx.broadcast_to(pad_embed, (1, codec_embed.shape[1], hidden)),
        ],
        axis=1,
    )
    codec_prefix, _ = _codec_prefix(model, language, speaker_embedding)
    role_embed = talker.text_projection(talker.get_text_embeddings()(target_ids[:, :3]))
    input_embeds = mx.concatenate(
        [role_embed, _prefix_overlay(codec_prefix, bos_embed, pad_embed), icl_embed], axis=1
    )
    return input_embeds, pad_embed, pad_embed, ref_codes


def _speaker_only_inputs(
    model: Any, speaker_embedding: mx.array | None, text: str, language: str
) -> tuple[mx.array, mx.array, mx.array]:
    """mlx-audio 0.6.2's `_prepare_generation_inputs` for a reference alone (no speaker, no instruct)."""
    talker = model.talker
    input_ids = mx.array(
        model.tokenizer.encode(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
    )[None, :]
    text_embed = talker.text_projection(talker.get_text_embeddings()(input_ids))
    bos_embed, eos_embed, pad_embed = _tts_special_embeds(model)
    codec_prefix, codec_suffix = _codec_prefix(model, language, speaker_embedding)
    input_embeds = mx.concatenate(
        [text_embed[:, :3, :], _prefix_overlay(codec_prefix, bos_embed, pad_embed)], axis=1
    )
    full_text_embed = mx.concatenate([text_embed[:, 3:-5, :], eos_embed], axis=1)
    input_embeds = mx.concatenate(
        [input_embeds, full_text_embed + codec_suffix[:, :1, :], pad_embed + codec_suffix[:, 1:, :]], axis=1
    )
    return input_embeds, pad_embed, pad_embed


def _tts_special_embeds(model: Any) -> tuple[mx.array, mx.array, mx.array]:
    """The text-side bos, eos and pad embeddings."""
    tokens = mx.array(
        [[model.config.tts_bos_token_id, model.config.tts_eos_token_id, model.config.tts_pad_token_id]]
    )
    embeds = model.talker.text_projection(model.talker.get_text_embeddings()(tokens))
    return embeds[:, 0:1, :], embeds[:, 1:2, :], embeds[:, 2:3, :]


def _codec_prefix(model: Any, language: str, speaker_embedding: mx.array | None) -> tuple[mx.array, mx.array]:
    """Codec-side prefix (think/nothink, language, speaker, pad, bos) and its pad+bos suffix alone."""
    config = model.config.talker_config
    embed = model.talker.get_input_embeddings()
    language_id = None
    if (
        language.lower() != "auto"
        and config.codec_language_id
        and language.lower() in config.codec_language_id
    ):
        language_id = config.codec_language_id[language.lower()]
    if language_id is None:
        ids = [config.codec_nothink_id, config.codec_think_bos_id, config.codec_think_eos_id]
    else:
        ids = [config.codec_think_id, config.codec_think_bos_id, language_id, config.codec_think_eos_id]
    prefix = embed(mx.array([ids]))
    suffix = embed(mx.array([[config.codec_pad_id, config.codec_bos_id]]))
    if speaker_embedding is None:
        return mx.concatenate([prefix, suffix], axis=1), suffix
    speaker = speaker_embedding.astype(prefix.dtype).reshape(1, 1, -1)
    return mx.concatenate([prefix, speaker, suffix], axis=1), suffix


def _prefix_overlay(codec_prefix: mx.array, bos_embed: mx.array, pad_embed: mx.array) -> mx.array:
    """Text pads then text bos, over the codec prefix without its last (bos) position."""
    pads = mx.broadcast_to(pad_embed, (1, codec_prefix.shape[1] - 2, pad_embed.shape[-1]))
    return mx.concatenate([pads, bos_embed], axis=1) + codec_prefix[:, :-1, :]


# ---- storage ----


def reference_digest(audio: np.ndarray, ref_text: str | None) -> str:
    """Identity of what a prompt is computed from: the samples and the transcript (None: x-vector only)."""
    digest = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    digest.update(b"\0x-vector-only" if ref_text is None else b"\0" + ref_text.encode())
    return digest.hexdigest()[:32]


def save_prompt(path: Path, prompt: ClonePrompt, fingerprint: str, digest: str) -> None:
    """Write the prompt as safetensors tagged with the model fingerprint and reference digest (atomically)."""
    arrays = {
        name: value
        for name, value in (
            ("speaker_embedding", prompt.speaker_embedding),
            ("ref_codes", prompt.ref_codes),
            ("ref_text_ids", prompt.ref_text_ids),
        )
        if value is not None
    }
    metadata = {"format": PROMPT_FORMAT, "model_fingerprint": fingerprint, "reference_digest": digest}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.safetensors")
    try:
        mx.save_safetensors(str(temporary), arrays, metadata=metadata)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_prompt(path: Path, fingerprint: str, digest: str) -> ClonePrompt | None:
    """The prompt saved at `path` if it was computed for this model and reference, else None."""
    if not path.is_file():
        return None
    try:
        loaded = mx.load(str(path), return_metadata=True)
    except (OSError, RuntimeError, ValueError) as err:
        _LOGGER.warning("Ignoring unreadable voice prompt %s: %s", path, err)
        return None
    arrays, metadata = cast(tuple[dict[str, mx.array], dict[str, str]], loaded)
    expected = {"format": PROMPT_FORMAT, "model_fingerprint": fingerprint, "reference_digest": digest}
    if any(metadata.get(key) != value for key, value in expected.items()):
        _LOGGER.info("Voice prompt %s is for another model or reference; recomputing it", path)
        return None
    return ClonePrompt(arrays.get("speaker_embedding"), arrays.get("ref_codes"), arrays.get("ref_text_ids"))


def voice_prompt(model: Any, voice: Voice, fingerprint: str) -> ClonePrompt:
    """A clone voice's prompt for the model with `fingerprint`: read from its folder, or computed and saved.

    A prompt that can't be saved (read-only library) is still returned; the next call computes it again.
    """
    audio = read_audio(voice.ref_audio_path)
    ref_text = None if voice.settings.x_vector_only else voice.settings.ref_text
    digest = reference_digest(audio, ref_text)
    path = voice.prompt_path(fingerprint)
    prompt = load_prompt(path, fingerprint, digest)
    if prompt is None:
        prompt = compute_clone_prompt(model, audio, ref_text)
        try:
            save_prompt(path, prompt, fingerprint, digest)
        except OSError as err:
            _LOGGER.warning("Cannot save the prompt of voice '%s' in %s: %s", voice.name, path, err)
    return prompt
