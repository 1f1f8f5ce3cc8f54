"""Lockstep batches of sentences: one talker pass and one compiled frame pass per frame for all rows.

Rows join at a frame boundary (`add` prefills the row alone, samples its first frame and
appends its KV cache to the batch's, left-padded) and leave at once (`remove`). Each row
samples with its own random key, split afresh every frame, so a seeded row draws the same
random numbers alone and in any batch; each row's repetition-penalty history stays on the
device. This seeding differs from the single-stream loop's (MLX's global random state):
a seeded sentence gives the same audio alone and batched, but not the same as
`generate_utterance` gives for that seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from .adapter import Prompt, Qwen3Model, Sampling
from .fast_generation import REPETITION_CONTEXT


@dataclass(frozen=True)
class RowFrame:
    """One row's frame (lazy): the first code `token` (EOS ends the row) and all codes [groups]."""

    token: mx.array
    codes: mx.array


@dataclass
class _Row:
    ident: int
    prompt: Prompt
    penalty: float
    frames: int = 0


class BatchGenerator:
    """Advances every row one frame per `step`; rows may differ in voice, language and text.

    All rows share `sampling`'s temperature, top-k and top-p (one model's settings);
    the repetition penalty is per row (cloned voices use a higher one).
    """

    def __init__(self, model: Qwen3Model, sampling: Sampling) -> None:
        self._model = model
        self._frame = model.keyed_frame(sampling)
        self._rows: list[_Row] = []
        self._cache: list[Any] = []
        self._inputs = self._keys = self._history = mx.zeros((0,))

    @property
    def rows(self) -> list[int]:
        return [row.ident for row in self._rows]

    def add(self, ident: int, prompt: Prompt, key: mx.array, repetition_penalty: float) -> RowFrame:
        """Prefill a new row alone and return its first frame; it joins the batch for the next `step`.

        `key` (`mx.random.key(seed)`) is the row's own random stream.
        """
        if any(row.ident == ident for row in self._rows):
            raise ValueError(f"row {ident} is already in the batch")
        row = _Row(ident, prompt, repetition_penalty)
        caches = self._model.new_caches()
        logits, hidden = self._model.talker_step(prompt.embeds, caches)
        history = mx.full((1, REPETITION_CONTEXT), -1, mx.int32)
        frames, inputs, keys, history = self._frames([row], logits, hidden, key[None], history)
        joined = self._model.batch_cache(caches)
        if self._rows:
            self._model.join_cache(self._cache, joined)
            self._inputs = mx.concatenate([self._inputs, inputs])
            self._keys = mx.concatenate([self._keys, keys])
            self._history = mx.concatenate([self._history, history])
        else:
            self._cache, self._inputs, self._keys, self._history = joined, inputs, keys, history
        self._rows.append(row)
        return frames[0]

    def remove(self, ident: int) -> None:
        """Drop a row now (finished or cancelled); its share of the KV cache is released."""
        keep = [i for i, row in enumerate(self._rows) if row.ident != ident]
        if len(keep) == len(self._rows):
            raise KeyError(ident)
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = []
            self._inputs = self._keys = self._history = mx.zeros((0,))
            return
        rows = mx.array(keep)
        self._model.keep_rows(self._cache, rows)
        self._inputs, self._keys, self._history = self._inputs[rows], self._keys[rows], self._history[rows]

    def step(self) -> dict[int, RowFrame]:
        """One frame for every row (lazy arrays: evaluate them together)."""
        if not self._rows:
            return {}
        logits, hidden = self._model.batch_talker_step(self._inputs, self._cache)
        frames, self._inputs, self._keys, self._history = self._frames(
            self._rows, logits, hidden, self._keys, self._history
        )
        return {row.ident: frame for row, frame in zip(self._rows, frames, strict=True)}

    def _frames(
        self, rows: list[_Row], logits: mx.array, hidden: mx.array, keys: mx.array, history: mx.array
    ) -> tuple[list[RowFrame], mx.array, mx.array, mx.array]:
        """Sample the rows' frames from the talker's output; advance their keys, histories and text."""
        slots = mx.array([row.frames % REPETITION_CONTEXT for row in rows])
        penalty = mx.array([[row.penalty] for row in rows])
        first, codes, embeds, keys, history = self._frame(
            logits[:, -1, :], hidden[:, -1:, :], keys, history, slots, penalty
        )
        texts = []
        for row in rows:
            trailing, step = row.prompt.trailing, row.frames
            texts.append(trailing[:, step : step + 1, :] if step < trailing.shape[1] else row.prompt.pad)
            row.frames += 1
        frames = [RowFrame(first[i, 0], codes[i]) for i in range(len(rows))]
        return frames, mx.concatenate(texts) + embeds, keys, history
