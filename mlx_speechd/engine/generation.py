"""The core: one utterance in, audio chunks out as the model decodes them.

Runs on the engine thread only. Each chunk is evaluated (`mx.eval`) at its
boundary, converted to float32 numpy, and the MLX cache is cleared per policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from .adapter import ClonePrompt, Prompt, Qwen3Model
from .decoder import DecoderState, StreamingDecoder
from .guards import RunawayGuard, frame_cap
from .types import CachePolicy, ChunkSchedule, GuardSettings, ModelInfo

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
    clone: ClonePrompt | None = None
    """A precomputed cloning prompt (a library voice), used instead of `ref_audio`/`ref_text`."""
    primed: DecoderState | None = None
    """The decoder state after priming with `clone`'s reference, restored instead of priming again."""

    @property
    def in_context_clone(self) -> bool:
        """Cloning from reference codes and transcript (not a speaker embedding alone)."""
        if self.clone is not None:
            return self.clone.in_context
        return self.ref_audio is not None and bool(self.ref_text)


@dataclass(frozen=True)
class GeneratedChunk:
    """Audio for `frames` codec frames; `finish_reason` is set on the last chunk only."""

    audio: np.ndarray
    frames: int
    compute_seconds: float
    finish_reason: str | None = None


@dataclass(frozen=True)
class GenerationSettings:
    schedule: ChunkSchedule
    guards: GuardSettings
    cache_policy: CachePolicy
    cache_limit_bytes: int


FrameObserver = Callable[[mx.array], None]
"""Called with each chunk's codes [1, groups, n] (lazy) just before they are decoded."""


def start_utterance(model: Qwen3Model, decoder: StreamingDecoder, utt: Utterance) -> Prompt:
    """Build `utt`'s prompt and reset (and for a clone, prime or restore) the decoder."""
    prompt = (
        model.prepare_clone(utt.text, utt.clone, language=utt.language)
        if utt.clone is not None
        else model.prepare(
            utt.text,
            language=utt.language,
            speaker=utt.speaker,
            instruct=utt.instruct,
            ref_audio=utt.ref_audio,
            ref_text=utt.ref_text,
        )
    )
    decoder.reset()
    if utt.primed is not None:
        decoder.restore(utt.primed)
    elif prompt.ref_codes is not None and decoder.window:
        # Prime the decoder with the end of the reference so the clone continues it seamlessly.
        mx.eval(decoder.step(prompt.ref_codes[:, :, -decoder.window :]))
    return prompt


class _Frames:
    """The talker and code predictor of one utterance, one codec frame per `next()`."""

    def __init__(self, model: Qwen3Model, decoder: StreamingDecoder, utt: Utterance) -> None:
        self._model = model
        self._sampling = model.sampling(cloning=utt.in_context_clone)
        prompt = start_utterance(model, decoder, utt)
        self._embeds = prompt.embeds
        self._trailing = prompt.trailing
        self._pad = prompt.pad
        self._caches = model.new_caches()
        self._history: list[int] = []

    def next(self) -> tuple[int, mx.array] | None:
        """The next frame as (first-group token, all codes [1, groups]); None at EOS."""
        model, step = self._model, len(self._history)
        logits, hidden = model.talker_step(self._embeds, self._caches)
        token = model.sample(logits, self._sampling, self._history)
        is_eos = token[0, 0] == model.eos_token
        code_tokens, all_codes = model.predict_codes(token, hidden, self._sampling, self._caches)
        text_embed = self._trailing[:, step : step + 1, :] if step < self._trailing.shape[1] else self._pad
        self._embeds = text_embed + model.codec_embeds(code_tokens)
        mx.eval(self._embeds, is_eos, all_codes)
        if is_eos.item():
            return None
        token_id = int(token[0, 0])
        self._history.append(token_id)
        return token_id, all_codes


def generate_utterance(
    model: Qwen3Model,
    info: ModelInfo,
    decoder: StreamingDecoder,
    utt: Utterance,
    settings: GenerationSettings,
    cancelled: Callable[[], bool],
    max_frames: int | None = None,
    on_frames: FrameObserver | None = None,
) -> Iterator[GeneratedChunk]:
    """Generate `utt`, yielding audio chunks per the schedule until EOS, a guard, or cancel.

    Checks `cancelled` before every frame; a cancelled utterance just stops yielding.
    """
    cap = max_frames or frame_cap(utt.text, settings.guards, info.max_frames)
    frames = _Frames(model, decoder, utt)
    guard = RunawayGuard(settings.guards)
    pending: list[mx.array] = []
    chunk_index = 0
    chunk_started = time.perf_counter()
    finish = "frame-cap"
    for _ in range(cap):
        if cancelled():
            return
        frame = frames.next()
        if frame is None:
            finish = "eos"
            break
        pending.append(frame[1])
        if reason := guard.add_token(frame[0]):
            finish = reason
            break
        if len(pending) >= settings.schedule.size(chunk_index):
            audio = decode_chunk(decoder, pending, settings, on_frames)
            now = time.perf_counter()
            yield GeneratedChunk(audio, len(pending), now - chunk_started)
            # Release the GIL for a moment: the thread that receives this chunk runs now rather
            # than when the next frame's graph building gives the GIL up (measured: up to 7 ms).
            time.sleep(0)
            chunk_index += 1
            chunk_started = now
            pending = []
            if reason := guard.add_audio(audio):
                finish = reason
                break
    log_end(finish, utt.text, cap, quiet=max_frames is not None)
    if cancelled():
        return
    audio = decode_chunk(decoder, pending, settings, on_frames)
    yield GeneratedChunk(audio, len(pending), time.perf_counter() - chunk_started, finish)


def log_end(finish: str, text: str, cap: int, *, quiet: bool) -> None:
    """Say why an utterance stopped, unless by EOS (a frame cap at DEBUG when `quiet`)."""
    if finish == "frame-cap":
        _LOGGER.log(
            logging.DEBUG if quiet else logging.WARNING,
            "Stopped after %d frames (the cap for %d characters of text): %r",
            cap,
            len(text),
            text[:60],
        )
    elif finish != "eos":
        _LOGGER.warning("Ended an utterance early: %s: %r", finish, text[:60])


def decode_chunk(
    decoder: StreamingDecoder,
    frames: list[mx.array],
    settings: GenerationSettings,
    on_frames: FrameObserver | None,
) -> np.ndarray:
    """Decode pending frames at a chunk boundary: eval, copy out, clear the cache per policy."""
    if not frames:
        return np.zeros(0, np.float32)
    codes = mx.stack(frames, axis=2)  # [1, groups, n]
    if on_frames is not None:
        on_frames(codes)
    audio = decoder.step(codes)
    mx.eval(audio)
    result = np.array(audio, dtype=np.float32)
    del audio, codes
    if settings.cache_policy is CachePolicy.CHUNK or (mx.get_cache_memory() > settings.cache_limit_bytes):
        mx.clear_cache()
    return result
