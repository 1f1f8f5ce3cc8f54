"""Lockstep batches: a seeded row gives the same codes alone and in a batch others join and leave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest

from mlx_speechd.engine.batch import BatchGenerator, RowInput
from mlx_speechd.engine.fast_generation import sampling_for
from mlx_speechd.engine.generation import Utterance, _prepare
from mlx_speechd.engine.loader import load_model

TEXTS = ("Hello there.", "A much longer sentence that keeps going for a while.", "Short one.", "Guten Tag!")
VOICES = ("ryan", "vivian", "serena", "ryan")
LANGUAGES = ("english", "auto", "english", "german")

Plan = list[tuple[int, int, int]]
"""(frame at which the row joins, row id = index into TEXTS, seed)"""


@pytest.fixture(scope="module")
def model(tiny_custom_voice: Path) -> Any:
    return load_model(str(tiny_custom_voice))[0]


def _row(model: Any, index: int, seed: int) -> RowInput:
    utt = Utterance(TEXTS[index], VOICES[index], LANGUAGES[index], None, None, None)
    embeds, trailing, pad, _ = _prepare(model, utt)
    return RowInput(
        embeds, trailing, pad, mx.random.key(seed), sampling_for(model, cloning=False).repetition_penalty
    )


def _run(model: Any, plan: Plan, frames: dict[int, int]) -> dict[int, np.ndarray]:
    """Run the plan; row r leaves after `frames[r]` frames. Returns each row's codes [frames, groups]."""
    batch = BatchGenerator(model, sampling_for(model, cloning=False))
    out: dict[int, list[mx.array]] = {}
    step = 0
    while step == 0 or batch.rows:
        for ident, frame in batch.step().items():
            out[ident].append(frame.codes)
        for join, ident, seed in plan:
            if join == step:
                out[ident] = [batch.add(ident, _row(model, ident, seed)).codes]
        for ident in batch.rows:
            if len(out[ident]) >= frames[ident]:
                batch.remove(ident)
        mx.eval([codes[-1] for codes in out.values()])
        step += 1
    return {ident: np.array(mx.stack(codes)) for ident, codes in out.items()}


def test_a_seeded_row_gives_the_same_codes_alone_and_in_a_batch(model: Any) -> None:
    frames = {0: 20, 1: 24, 2: 6, 3: 15}
    together = _run(model, [(0, 1, 9), (0, 0, 5), (3, 2, 7), (7, 3, 1)], frames)
    for ident, seed in [(0, 5), (1, 9), (3, 1)]:
        alone = _run(model, [(0, ident, seed)], frames)[ident]
        assert alone.shape == (frames[ident], 16)
        np.testing.assert_array_equal(together[ident], alone)
    assert not np.array_equal(together[0][:6], together[1][:6])  # the rows really differ


def test_the_same_seed_reproduces_and_another_differs(model: Any) -> None:
    first = _run(model, [(0, 0, 3)], {0: 8})[0]
    np.testing.assert_array_equal(_run(model, [(0, 0, 3)], {0: 8})[0], first)
    assert not np.array_equal(_run(model, [(0, 0, 4)], {0: 8})[0], first)


def test_rows_leave_and_free_their_cache(model: Any) -> None:
    batch = BatchGenerator(model, sampling_for(model, cloning=False))
    for ident in range(3):
        batch.add(ident, _row(model, ident, ident))
    mx.eval(list(batch.step().values()))
    batch.remove(1)
    assert batch.rows == [0, 2] and set(batch.step()) == {0, 2}
    with pytest.raises(KeyError):
        batch.remove(1)
    with pytest.raises(ValueError, match="already"):
        batch.add(0, _row(model, 0, 0))
    batch.remove(0)
    batch.remove(2)
    assert batch.rows == [] and batch.step() == {}
