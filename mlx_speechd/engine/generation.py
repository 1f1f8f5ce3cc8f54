"""The core: one utterance in, audio chunks out as the model decodes them.

Runs on the engine thread only. Each chunk is evaluated (`mx.eval`) at its
boundary, converted to float32 numpy, and the MLX cache is cleared per policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np

from .decoder import StreamingDecoder
from .guards import RunawayGuard, frame_cap
from .loader import ModelInfo
from .types import CachePolicy, ChunkSchedule, GuardSettings

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One sentence with a fully resolved voice."""

    text: str
    speaker: str | None
    language: str
    instruct: str | None
    ref_audio: mx.array | None
    ref_text: str | None


@dataclass(frozen=True)
class GeneratedChunk:
    """Audio for `frames` codec frames; `finish_reason` is set on the last chunk only."""

    audio: np.ndarray
    codes: np.ndarray
    """The codec frames decoded into `audio`, [groups, frames]."""
    frames: int
    compute_seconds: float
    finish_reason: str | None = None


@dataclass(frozen=True)
class GenerationSettings:
    schedule: ChunkSchedule
    guards: GuardSettings
    cache_policy: CachePolicy
    cache_limit_bytes: int


def _prepare(model: Any, utt: Utterance) -> tuple[mx.array, mx.array, mx.array, mx.array | None]:
    """Prefill embeddings, trailing text, pad embedding and (for cloning) reference codes."""
    if utt.ref_audio is not None and utt.ref_text:
        return model._prepare_icl_generation_inputs(
            text=utt.text, ref_audio=utt.ref_audio, ref_text=utt.ref_text, language=utt.language
        )
    embeds, trailing, pad = model._prepare_generation_inputs(
        text=utt.text,
        language=utt.language,
        speaker=utt.speaker,
        ref_audio=utt.ref_audio,
        instruct=utt.instruct,
    )
    return embeds, trailing, pad, None


def generate_utterance(
    model: Any,
    info: ModelInfo,
    decoder: StreamingDecoder,
    utt: Utterance,
    settings: GenerationSettings,
    cancelled: Callable[[], bool],
    max_frames: int | None = None,
) -> Iterator[GeneratedChunk]:
    """Generate `utt`, yielding audio chunks per the schedule until EOS, a guard, or cancel.

    Checks `cancelled` before every frame; a cancelled utterance just stops yielding.
    """
    started = time.perf_counter()
    talker_config = model.config.talker_config
    sampling = model._resolve_generation_options(None, None, None, None, None)
    if utt.ref_audio is not None and utt.ref_text:
        sampling["repetition_penalty"] = max(sampling["repetition_penalty"], 1.5)
    cap = max_frames or frame_cap(utt.text, settings.guards, info.max_frames)
    eos = talker_config.codec_eos_token_id
    suppress = model._suppress_codec_tokens(eos)
    guard = RunawayGuard(settings.guards)

    input_embeds, trailing, pad_embed, ref_codes = _prepare(model, utt)
    decoder.reset()
    if ref_codes is not None and decoder.window:
        # Prime the decoder with the end of the reference so the clone continues it seamlessly.
        mx.eval(decoder.step(ref_codes[:, :, -decoder.window :]))

    cache = model.talker.make_cache()
    code_cache = model.talker.code_predictor.make_cache()
    history: list[int] = []
    pending: list[mx.array] = []
    chunk_index = 0
    chunk_started = started
    finish: str | None = None

    for step in range(cap):
        if cancelled():
            return
        logits, hidden = model.talker(input_embeds, cache=cache)
        token = model._sample_token(
            logits,
            temperature=sampling["temperature"],
            top_k=sampling["top_k"],
            top_p=sampling["top_p"],
            repetition_penalty=sampling["repetition_penalty"],
            generated_tokens=history or None,
            suppress_tokens=suppress,
        )
        is_eos = token[0, 0] == eos
        code_tokens, all_codes = model._predict_code_tokens(
            token,
            hidden,
            temperature=sampling["temperature"],
            top_k=sampling["top_k"],
            top_p=sampling["top_p"],
            code_cache=code_cache,
        )
        text_embed = trailing[:, step : step + 1, :] if step < trailing.shape[1] else pad_embed
        input_embeds = text_embed + model._codec_embeds_for_tokens(code_tokens)
        mx.eval(input_embeds, is_eos, all_codes)
        if is_eos.item():
            finish = "eos"
            break
        token_id = int(token[0, 0])
        history.append(token_id)
        pending.append(all_codes)
        finish = guard.add_token(token_id)
        if finish:
            break
        if len(pending) >= settings.schedule.size(chunk_index):
            audio, codes = _decode(decoder, pending, settings)
            now = time.perf_counter()
            yield GeneratedChunk(audio, codes, len(pending), now - chunk_started)
            # Release the GIL for a moment: the thread that receives this chunk runs now rather
            # than when the next frame's graph building gives the GIL up (measured: up to 7 ms).
            time.sleep(0)
            chunk_index += 1
            chunk_started = now
            pending = []
            finish = guard.add_audio(audio)
            if finish:
                break
    else:
        finish = "frame-cap"
        _LOGGER.log(
            logging.DEBUG if max_frames else logging.WARNING,
            "Stopped after %d frames (the cap for %d characters of text): %r",
            cap,
            len(utt.text),
            utt.text[:60],
        )
    if finish not in ("eos", "frame-cap"):
        _LOGGER.warning("Ended an utterance early: %s: %r", finish, utt.text[:60])
    if cancelled():
        return
    audio, codes = _decode(decoder, pending, settings)
    yield GeneratedChunk(audio, codes, len(pending), time.perf_counter() - chunk_started, finish)


def _decode(
    decoder: StreamingDecoder, frames: list[mx.array], settings: GenerationSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Decode pending frames at a chunk boundary: eval, copy out, clear the cache per policy."""
    if not frames:
        return np.zeros(0, np.float32), np.zeros((0, 0), np.int32)
    codes = mx.stack(frames, axis=2)  # [1, groups, n]
    audio = decoder.step(codes)
    mx.eval(audio)
    result = np.array(audio, dtype=np.float32), np.array(codes[0], dtype=np.int32)
    del audio, codes
    if settings.cache_policy is CachePolicy.CHUNK or (mx.get_cache_memory() > settings.cache_limit_bytes):
        mx.clear_cache()
    return result
