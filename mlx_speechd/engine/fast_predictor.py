"""The code predictor's 15 small sequential passes as one compiled MLX function.

mlx-audio's `_predict_code_tokens` builds a new graph of ~15 tiny transformer passes
every frame; Python graph building is a large part of a frame on small models.
`CompiledCodePredictor` traces the whole loop once (per batch size and sampling
settings) with `mx.compile`, with MLX's global random state as an input and output so
seeded sampling gives the same codes as the uncompiled loop, and also returns the sum
of the frame's codec embeddings (the talker's next input, minus the text part).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx

_Compiled = Callable[[mx.array, mx.array], tuple[mx.array, mx.array]]


class CompiledCodePredictor:
    """Predicts code groups 1..15 of a frame from the talker's first code and hidden state."""

    def __init__(self, model: Any, temperature: float, top_k: int, top_p: float) -> None:
        self._model = model
        self._temperature = temperature
        self._top_k = top_k
        self._top_p = top_p
        self._fn: _Compiled = mx.compile(self._predict, inputs=mx.random.state, outputs=mx.random.state)

    @property
    def settings(self) -> tuple[float, int, float]:
        """The sampling settings this predictor was compiled for."""
        return self._temperature, self._top_k, self._top_p

    def __call__(self, first_token: mx.array, hidden: mx.array) -> tuple[mx.array, mx.array]:
        """`first_token` [B, 1] and talker `hidden` [B, L, D] -> codes [B, groups], embedding sum [B, 1, D].

        Lazy; sampling draws from (and advances) MLX's global random state.
        """
        return self._fn(first_token, hidden[:, -1:, :])

    def _predict(self, first_token: mx.array, hidden: mx.array) -> tuple[mx.array, mx.array]:
        model = self._model
        talker = model.talker
        predictor = talker.code_predictor
        cache = predictor.make_cache()  # fresh per call: its Python-int offsets are the same every trace
        embed = talker.get_input_embeddings()(first_token)
        code_input = mx.concatenate([hidden, embed], axis=1)
        codes = [first_token]
        for index in range(predictor.num_code_groups - 1):
            if index:
                code_input = predictor.codec_embedding[index - 1](codes[-1])
            logits, _, _ = predictor(code_input, cache=cache, generation_step=index)
            codes.append(
                model._sample_token_batch(  # noqa: SLF001  (moves into the adapter)
                    logits, temperature=self._temperature, top_k=self._top_k, top_p=self._top_p
                )
            )
        for index, code in enumerate(codes[1:]):
            embed = embed + predictor.codec_embedding[index](code)
        return mx.concatenate(codes, axis=1), embed
