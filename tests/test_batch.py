"""Lockstep batches: a seeded row gives the same codes alone and in a batch others join and leave."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
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


@pytest.mark.parametrize(("top_k", "top_p"), [(5, 1.0), (5, 0.8), (0, 0.8), (0, 1.0)])
def test_row_sampling_draws_from_mlx_audios_distribution(top_k: int, top_p: float) -> None:
    """`sample_rows` draws over the top-k candidates only; the probabilities are mlx-audio's."""
    from mlx_audio.lm.sample_utils import apply_top_k, apply_top_p

    from mlx_speechd.engine.adapter import Sampling, noise_size, row_noise, sample_rows

    vocab, draws = 12, 40000
    logits = mx.array(np.random.default_rng(0).normal(0, 1.5, (1, vocab)), mx.float32)
    sampling = Sampling(temperature=0.9, top_k=top_k, top_p=top_p, repetition_penalty=1.0)
    expected = nn.log_softmax(logits / sampling.temperature, axis=-1)
    if top_k:
        expected = nn.log_softmax(apply_top_k(expected, top_k), axis=-1)
    if top_p < 1.0:
        expected = nn.log_softmax(apply_top_p(expected, top_p), axis=-1)
    probabilities = np.array(mx.exp(expected))[0]

    keys = mx.random.split(mx.random.key(11), draws)
    noise = row_noise(keys, noise_size(sampling, vocab))
    codes = sample_rows(mx.broadcast_to(logits, (draws, vocab)), noise, sampling)
    counts = np.bincount(np.array(codes)[:, 0], minlength=vocab) / draws
    assert counts[probabilities == 0].sum() == 0  # nothing outside the top-k / nucleus
    np.testing.assert_allclose(counts, probabilities, atol=0.01)
