"""Lockstep batches of sentences: one talker pass and one compiled code-predictor pass per frame for all rows.

Rows join at a frame boundary (`add` prefills the row alone, samples its first frame and
appends its KV cache to the batch's, left-padded) and leave at once (`remove`). Each row
samples with its own random key, split afresh every frame, so a seeded row draws the same
random numbers alone and in any batch; the per-row repetition-penalty history stays on
the device. The batch cache is mlx-audio's vendored mlx-lm `BatchKVCache` (left padding,
`extend`, `filter`); positions and the padding mask are passed to the talker per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_audio.lm.models.cache import BatchKVCache
from mlx_audio.lm.sample_utils import apply_top_k, apply_top_p

from .fast_generation import REPETITION_CONTEXT, Sampling


def sample_rows(
    logits: mx.array, keys: list[mx.array], temperature: float, top_k: int, top_p: float
) -> mx.array:
    """One token per row of `logits` [B, V] (filtered as mlx-audio does), row b drawn with `keys[b]`."""
    if temperature <= 0:
        return mx.argmax(logits, axis=-1, keepdims=True)
    if temperature != 1.0:
        logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        logits = apply_top_k(logits, top_k)
    if 0.0 < top_p < 1.0:
        logprobs = apply_top_p(nn.log_softmax(logits, axis=-1), top_p)
        logits = mx.where(logprobs == -mx.inf, -mx.inf, logits)
    noise = mx.stack([mx.random.gumbel(logits.shape[1:], key=key) for key in keys])
    return mx.argmax(logits + noise, axis=-1, keepdims=True)


_FrameFn = Callable[..., tuple[mx.array, mx.array, mx.array, mx.array, mx.array]]


class FrameSampler:
    """Everything after the talker pass for B rows, compiled (one trace per B).

    Suppression and the per-row repetition penalty, the first code, the code predictor's
    15 passes, the codec embedding sum, the penalty history update and the key split; row b
    draws only from its own key, so its codes do not depend on the other rows.
    """

    def __init__(self, model: Any, sampling: Sampling) -> None:
        config = model.config.talker_config
        self._model = model
        self._sampling = sampling
        self._vocab = mx.arange(config.vocab_size)
        suppressed = mx.array(model._suppress_codec_tokens(config.codec_eos_token_id))  # noqa: SLF001  (moves into the adapter)
        self._suppress = mx.zeros((config.vocab_size,), mx.bool_)
        self._suppress[suppressed] = True
        self._fn: _FrameFn = mx.compile(self._frame)

    def __call__(
        self,
        logits: mx.array,
        hidden: mx.array,
        keys: mx.array,
        history: mx.array,
        slots: mx.array,
        penalty: mx.array,
    ) -> tuple[mx.array, mx.array, mx.array, mx.array, mx.array]:
        """Talker `logits` and `hidden` [B, L, *], `keys` [B, 2], penalty `history` [B, 64] (-1: empty),
        the history `slots` [B] to write, `penalty` [B, 1] -> first codes [B, 1], codes [B, groups],
        codec embedding sums [B, 1, D], the next keys and the updated history."""
        return self._fn(logits[:, -1, :], hidden[:, -1:, :], keys, history, slots, penalty)

    def _frame(
        self,
        logits: mx.array,
        hidden: mx.array,
        keys: mx.array,
        history: mx.array,
        slots: mx.array,
        penalty: mx.array,
    ) -> tuple[mx.array, mx.array, mx.array, mx.array, mx.array]:
        s = self._sampling
        talker = self._model.talker
        predictor = talker.code_predictor
        steps = predictor.num_code_groups - 1
        split = [mx.random.split(keys[b], steps + 2) for b in range(keys.shape[0])]
        logits = mx.where(self._suppress, mx.array(-mx.inf, logits.dtype), logits)
        seen = (history[:, :, None] == self._vocab[None, None, :]).any(axis=1)
        penalty = penalty.astype(logits.dtype)
        logits = mx.where(seen, mx.where(logits < 0, logits * penalty, logits / penalty), logits)
        first = sample_rows(logits, [k[1] for k in split], s.temperature, s.top_k, s.top_p)
        cache = predictor.make_cache()
        embed = talker.get_input_embeddings()(first)
        code_input = mx.concatenate([hidden, embed], axis=1)
        codes = [first]
        for index in range(steps):
            if index:
                code_input = predictor.codec_embedding[index - 1](codes[-1])
            step_logits, _, _ = predictor(code_input, cache=cache, generation_step=index)
            step_keys = [k[index + 2] for k in split]
            codes.append(sample_rows(step_logits[:, -1, :], step_keys, s.temperature, s.top_k, s.top_p))
        for index, code in enumerate(codes[1:]):
            embed = embed + predictor.codec_embedding[index](code)
        written = mx.arange(history.shape[1])[None, :] == slots[:, None]
        history = mx.where(written, first, history)
        next_keys = mx.stack([k[0] for k in split])
        return first, mx.concatenate(codes, axis=1), embed, next_keys, history


@dataclass(frozen=True)
class RowInput:
    """A prepared sentence: prefill embeddings, trailing text, pad embedding, seed key and penalty."""

    input_embeds: mx.array
    trailing: mx.array
    pad_embed: mx.array
    key: mx.array
    repetition_penalty: float


@dataclass(frozen=True)
class RowFrame:
    """One row's frame (lazy): all codes [groups]; `token` is the first code, EOS ends the row."""

    token: mx.array
    codes: mx.array


@dataclass
class _Row:
    ident: int
    source: RowInput
    frames: int = 0


class BatchGenerator:
    """Advances every row one frame per `step`; rows may differ in voice, language and text."""

    def __init__(self, model: Any, sampling: Sampling) -> None:
        self._model = model
        self._sampler = FrameSampler(model, sampling)
        self._rows: list[_Row] = []
        self._cache: list[BatchKVCache] = []
        self._inputs = self._keys = self._history = mx.zeros((0,))

    @property
    def rows(self) -> list[int]:
        return [row.ident for row in self._rows]

    def add(self, ident: int, source: RowInput) -> RowFrame:
        """Prefill a new row alone and return its first frame; it joins the batch for the next `step`."""
        if any(row.ident == ident for row in self._rows):
            raise ValueError(f"row {ident} is already in the batch")
        row = _Row(ident, source)
        kv = self._model.talker.make_cache()
        logits, hidden = self._model.talker(source.input_embeds, cache=kv)
        history = mx.full((1, REPETITION_CONTEXT), -1, mx.int32)
        frames, inputs, keys, history = self._frames([row], logits, hidden, source.key[None], history)
        joined = [BatchKVCache.merge([layer]) for layer in kv]
        if self._rows:
            for mine, theirs in zip(self._cache, joined, strict=True):
                mine.extend(theirs)
            self._inputs = mx.concatenate([self._inputs, inputs])
            self._keys = mx.concatenate([self._keys, keys])
            self._history = mx.concatenate([self._history, history])
        else:
            self._cache, self._inputs, self._keys, self._history = joined, inputs, keys, history
        self._rows.append(row)
        return frames[0]

    def remove(self, ident: int) -> None:
        """Drop a row now (finished or cancelled); its share of the KV cache is freed."""
        keep = [i for i, row in enumerate(self._rows) if row.ident != ident]
        if len(keep) == len(self._rows):
            raise KeyError(ident)
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = []
            self._inputs = self._keys = self._history = mx.zeros((0,))
            return
        indices = mx.array(keep)
        for layer in self._cache:
            layer.filter(indices)
        self._inputs, self._keys, self._history = (
            self._inputs[indices],
            self._keys[indices],
            self._history[indices],
        )

    def step(self) -> dict[int, RowFrame]:
        """One frame for every row (lazy arrays; evaluate them together)."""
        if not self._rows:
            return {}
        layer = self._cache[0]
        positions = mx.broadcast_to(layer.offset[None, :, None], (3, len(self._rows), 1))
        mask = layer.make_mask(1)
        logits, hidden = self._model.talker(
            self._inputs, position_ids=positions, mask=mask, cache=self._cache
        )
        frames, self._inputs, self._keys, self._history = self._frames(
            self._rows, logits, hidden, self._keys, self._history
        )
        return {row.ident: frame for row, frame in zip(self._rows, frames, strict=True)}

    def _frames(
        self, rows: list[_Row], logits: mx.array, hidden: mx.array, keys: mx.array, history: mx.array
    ) -> tuple[list[RowFrame], mx.array, mx.array, mx.array]:
        """Sample the rows' frames from talker output; advance their keys, histories and text."""
        slots = mx.array([row.frames % REPETITION_CONTEXT for row in rows])
        penalty = mx.array([[row.source.repetition_penalty] for row in rows])
        first, codes, embeds, keys, history = self._sampler(logits, hidden, keys, history, slots, penalty)
        texts = []
        for row in rows:
            trailing, step = row.source.trailing, row.frames
            texts.append(
                trailing[:, step : step + 1, :] if step < trailing.shape[1] else row.source.pad_embed
            )
            row.frames += 1
        frames = [RowFrame(first[i, 0], codes[i]) for i in range(len(rows))]
        return frames, mx.concatenate(texts) + embeds, keys, history
