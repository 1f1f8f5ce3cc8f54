"""Lockstep batches: a seeded row gives the same codes alone and in a batch others join and leave."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_speechd.engine.adapter import Prompt, Qwen3Model
from mlx_speechd.engine.batch import BatchGenerator
from mlx_speechd.engine.loader import load_model

TEXTS = ("Hello there.", "A much longer sentence that keeps going for a while.", "Short one.", "Guten Tag!")
VOICES = ("ryan", "vivian", "serena", "ryan")
LANGUAGES = ("english", "auto", "english", "german")

Plan = list[tuple[int, int, int]]
"""(frame at which the row joins, row id = index into TEXTS, seed)"""


@pytest.fixture(scope="module")
def model(tiny_custom_voice: Path) -> Qwen3Model:
    return load_model(str(tiny_custom_voice))[0]


def _add(batch: BatchGenerator, model: Qwen3Model, index: int, seed: int) -> mx.array:
    """Add row `index` (of TEXTS, VOICES, LANGUAGES) seeded with `seed`; its first frame's codes."""
    prompt: Prompt = model.prepare(TEXTS[index], language=LANGUAGES[index], speaker=VOICES[index])
    penalty = model.sampling(cloning=index == 3).repetition_penalty  # row 3 as strict as a clone
    return batch.add(index, prompt, mx.random.key(seed), penalty).codes


def _run(model: Qwen3Model, plan: Plan, frames: dict[int, int]) -> dict[int, np.ndarray]:
    """Run the plan; row r leaves after `frames[r]` frames. Returns each row's codes [frames, groups]."""
    batch = BatchGenerator(model, model.sampling(cloning=False))
    out: dict[int, list[mx.array]] = {}
    step = 0
    while step == 0 or batch.rows:
        for ident, frame in batch.step().items():
            out[ident].append(frame.codes)
        for join, ident, seed in plan:
            if join == step:
                out[ident] = [_add(batch, model, ident, seed)]
        for ident in batch.rows:
            if len(out[ident]) >= frames[ident]:
                batch.remove(ident)
        mx.eval([codes[-1] for codes in out.values()])
        step += 1
    return {ident: np.array(mx.stack(codes)) for ident, codes in out.items()}


def test_a_seeded_row_gives_the_same_codes_alone_and_in_a_batch(model: Qwen3Model) -> None:
    frames = {0: 20, 1: 24, 2: 6, 3: 15}
    together = _run(model, [(0, 1, 9), (0, 0, 5), (3, 2, 7), (7, 3, 1)], frames)
    for ident, seed in [(0, 5), (1, 9), (3, 1)]:
        alone = _run(model, [(0, ident, seed)], frames)[ident]
        assert alone.shape == (frames[ident], 16)
        np.testing.assert_array_equal(together[ident], alone)
    assert not np.array_equal(together[0][:6], together[1][:6])  # the rows really differ


def test_the_same_seed_reproduces_and_another_differs(model: Qwen3Model) -> None:
    first = _run(model, [(0, 0, 3)], {0: 8})[0]
    np.testing.assert_array_equal(_run(model, [(0, 0, 3)], {0: 8})[0], first)
    assert not np.array_equal(_run(model, [(0, 0, 4)], {0: 8})[0], first)


def test_rows_leave_and_free_their_cache(model: Qwen3Model) -> None:
    batch = BatchGenerator(model, model.sampling(cloning=False))
    for ident in range(3):
        _add(batch, model, ident, ident)
    mx.eval(list(batch.step().values()))
    batch.remove(1)
    assert batch.rows == [0, 2] and set(batch.step()) == {0, 2}
    with pytest.raises(KeyError):
        batch.remove(1)
    with pytest.raises(ValueError, match="already"):
        _add(batch, model, 0, 0)
    batch.remove(0)
    batch.remove(2)
    assert batch.rows == [] and batch.step() == {}
