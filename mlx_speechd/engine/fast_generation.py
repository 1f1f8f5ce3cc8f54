"""The faster single-stream frame loop: same chunks as `generate_utterance`, less waiting.

Three changes, none of which alters the output for the same seed:
- the code predictor's 15 passes run as one compiled function (`CompiledCodePredictor`);
- frames are pipelined: frame n+1's graph is built and queued (`mx.async_eval`) before
  the loop waits for frame n, so EOS is seen one frame late and the extra frame is dropped
  (the random draws happen in the same order, as they are taken when a graph is built);
- the repetition-penalty history stays on the device as per-code counts over the last
  64 frames, so sampling needs no host round trip.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from .decoder import StreamingDecoder
from .fast_predictor import CompiledCodePredictor
from .generation import GeneratedChunk, GenerationSettings, Utterance, _decode, _prepare
from .guards import RunawayGuard, frame_cap
from .loader import ModelInfo

_LOGGER = logging.getLogger(__name__)

REPETITION_CONTEXT = 64
"""Frames of history the repetition penalty looks at (mlx-audio's `repetition_context_size`)."""


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float


def sampling_for(model: Any, cloning: bool) -> Sampling:
    """The model's generation settings; a clone gets a repetition penalty of at least 1.5, as upstream."""
    options = model._resolve_generation_options(None, None, None, None, None)  # noqa: SLF001  (moves into the adapter)
    penalty = options["repetition_penalty"]
    return Sampling(
        options["temperature"],
        options["top_k"],
        options["top_p"],
        max(penalty, 1.5) if cloning else penalty,
    )


@dataclass(frozen=True)
class _Frame:
    token: mx.array
    """The first code [1, 1]; EOS ends the utterance."""
    codes: mx.array
    """All code groups [1, groups]."""
    next_input: mx.array
    """The talker's input for the following frame [1, 1, D]."""


class _FrameBuilder:
    """Builds one frame's lazy graph at a time, keeping the talker cache and the penalty history."""

    def __init__(
        self,
        model: Any,
        predictor: CompiledCodePredictor,
        sampling: Sampling,
        trailing: mx.array,
        pad_embed: mx.array,
    ) -> None:
        talker_config = model.config.talker_config
        self._model = model
        self._predictor = predictor
        self._sampling = sampling
        self._trailing = trailing
        self._pad_embed = pad_embed
        self._suppress = model._suppress_codec_tokens(talker_config.codec_eos_token_id)  # noqa: SLF001  (moves into the adapter)
        self._cache = model.talker.make_cache()
        self._vocab = mx.arange(talker_config.vocab_size)
        self._counts = mx.zeros((talker_config.vocab_size,), mx.int32)
        self._recent: deque[mx.array] = deque()

    def build(self, step: int, input_embeds: mx.array) -> _Frame:
        logits, hidden = self._model.talker(input_embeds, cache=self._cache)
        logits = self._penalize(logits[:, -1:, :])
        s = self._sampling
        token = self._model._sample_token(  # noqa: SLF001  (moves into the adapter)
            logits,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            repetition_penalty=s.repetition_penalty,
            suppress_tokens=self._suppress,
        )
        codes, codec_embed = self._predictor(token, hidden)
        text_embed = (
            self._trailing[:, step : step + 1, :] if step < self._trailing.shape[1] else self._pad_embed
        )
        self._remember(token)
        return _Frame(token, codes, text_embed + codec_embed)

    def _penalize(self, logits: mx.array) -> mx.array:
        """mlx-audio's penalty on every code among the last 64 frames' first codes."""
        penalty = self._sampling.repetition_penalty
        if not self._recent or penalty == 1.0:
            return logits
        penalized = mx.where(logits < 0, logits * penalty, logits / penalty)
        return mx.where(self._counts > 0, penalized, logits)

    def _remember(self, token: mx.array) -> None:
        hit = (self._vocab == token[0, 0]).astype(mx.int32)
        self._counts = self._counts + hit
        self._recent.append(hit)
        if len(self._recent) > REPETITION_CONTEXT:
            self._counts = self._counts - self._recent.popleft()


class _Collector:
    """Takes resolved frames: ends on EOS or a guard, decodes chunks on the schedule."""

    def __init__(self, decoder: StreamingDecoder, settings: GenerationSettings, eos: int) -> None:
        self._decoder = decoder
        self._settings = settings
        self._eos = eos
        self._guard = RunawayGuard(settings.guards)
        self._pending: list[mx.array] = []
        self._index = 0
        self._started = time.perf_counter()

    def take(self, frame: _Frame) -> tuple[GeneratedChunk | None, str | None]:
        """Add a frame; return a chunk if one is due, and why to stop, if the utterance should."""
        token_id = int(frame.token[0, 0])  # waits for the frame
        if token_id == self._eos:
            return None, "eos"
        finish = self._guard.add_token(token_id)
        self._pending.append(frame.codes)
        if finish or len(self._pending) < self._settings.schedule.size(self._index):
            return None, finish
        chunk = self.flush()
        return chunk, self._guard.add_audio(chunk.audio)

    def flush(self, finish: str | None = None) -> GeneratedChunk:
        audio, codes = _decode(self._decoder, self._pending, self._settings)
        now = time.perf_counter()
        chunk = GeneratedChunk(audio, codes, len(self._pending), now - self._started, finish)
        self._index += 1
        self._started = now
        self._pending = []
        return chunk


def generate_utterance_fast(
    model: Any,
    info: ModelInfo,
    decoder: StreamingDecoder,
    utt: Utterance,
    settings: GenerationSettings,
    cancelled: Callable[[], bool],
    max_frames: int | None = None,
    predictor: CompiledCodePredictor | None = None,
) -> Iterator[GeneratedChunk]:
    """`generate_utterance` with the compiled predictor and pipelined frames: the same chunks, seed for seed.

    `predictor` should be made once per model and sampling settings (compiling costs a trace).
    """
    cap = max_frames or frame_cap(utt.text, settings.guards, info.max_frames)
    builder, input_embeds = _start(model, decoder, utt, predictor)
    collector = _Collector(decoder, settings, model.config.talker_config.codec_eos_token_id)
    if cancelled():
        return
    frame = builder.build(0, input_embeds)
    mx.async_eval(frame.token, frame.codes, frame.next_input)
    finish: str | None = None
    for step in range(cap):
        if cancelled():
            return
        following = builder.build(step + 1, frame.next_input) if step + 1 < cap else None
        if following is not None:  # queued before waiting on `frame`: the device never idles
            mx.async_eval(following.token, following.codes, following.next_input)
        chunk, finish = collector.take(frame)
        if chunk is not None:
            yield chunk
            time.sleep(0)  # let the chunk's receiver run now (see generate_utterance)
        if finish or following is None:
            break
        frame = following
    finish = finish or "frame-cap"
    _log_finish(finish, cap, max_frames, utt)
    if not cancelled():
        yield collector.flush(finish)


def _start(
    model: Any, decoder: StreamingDecoder, utt: Utterance, predictor: CompiledCodePredictor | None
) -> tuple[_FrameBuilder, mx.array]:
    """Prefill inputs and a frame builder for `utt`; the decoder reset (and primed, for a clone)."""
    sampling = sampling_for(model, cloning=utt.ref_audio is not None and bool(utt.ref_text))
    if predictor is None or predictor.settings != (sampling.temperature, sampling.top_k, sampling.top_p):
        predictor = CompiledCodePredictor(model, sampling.temperature, sampling.top_k, sampling.top_p)
    input_embeds, trailing, pad_embed, ref_codes = _prepare(model, utt)
    decoder.reset()
    if ref_codes is not None and decoder.window:
        # Prime the decoder with the end of the reference so the clone continues it seamlessly.
        mx.eval(decoder.step(ref_codes[:, :, -decoder.window :]))
    return _FrameBuilder(model, predictor, sampling, trailing, pad_embed), input_embeds


def _log_finish(finish: str, cap: int, max_frames: int | None, utt: Utterance) -> None:
    if finish == "frame-cap":
        _LOGGER.log(
            logging.DEBUG if max_frames else logging.WARNING,
            "Stopped after %d frames (the cap for %d characters of text): %r",
            cap,
            len(utt.text),
            utt.text[:60],
        )
    elif finish != "eos":
        _LOGGER.warning("Ended an utterance early: %s: %r", finish, utt.text[:60])
