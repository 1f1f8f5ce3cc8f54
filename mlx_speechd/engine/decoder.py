"""Incremental codec decoding with the decoder transformer's sliding attention window.

mlx-audio's `streaming_step` keeps an unbounded KV cache and ignores the decoder's
`sliding_window` (72 frames), so its cost and memory grow with utterance length and
its output drifts from the reference model. `StreamingDecoder` runs the same layers
with a cache trimmed to the window, so every chunk costs the same however long the
utterance gets, and the result equals `decode_reference` (a one-shot decode with a
sliding-window mask) up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .adapter import CodecDecoder


def window_mask(queries: int, cached: int, window: int | None, dtype: mx.Dtype = mx.float32) -> mx.array:
    """Additive mask for `queries` new positions attending to `cached` earlier ones and themselves."""
    q = mx.arange(queries)[:, None] + cached
    k = mx.arange(cached + queries)[None, :]
    distance = q - k
    allowed = distance >= 0
    if window is not None:
        allowed = allowed & (distance < window)
    return mx.where(allowed, mx.array(0.0, dtype), mx.array(-mx.inf, dtype))


class _WindowCache:
    """A KV cache that keeps only the keys and values a sliding window can still see."""

    def __init__(self, window: int | None) -> None:
        self._keep = None if window is None else window - 1
        self.keys: mx.array | None = None
        self.values: mx.array | None = None
        self.offset = 0

    @property
    def cached(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        if self.keys is not None and self.values is not None:
            keys = mx.concatenate([self.keys, keys], axis=2)
            values = mx.concatenate([self.values, values], axis=2)
        self.offset += keys.shape[2] - self.cached
        if self._keep == 0:
            self.keys = self.values = None
        elif self._keep is None:
            self.keys, self.values = keys, values
        else:
            self.keys, self.values = keys[:, :, -self._keep :], values[:, :, -self._keep :]
        return keys, values


@dataclass(frozen=True)
class DecoderState:
    """A `StreamingDecoder`'s state between chunks: window KV caches and convolution tails.

    `arrays` is flat (`cache.<layer>.keys|values|offset`, `conv.<module path>`), so it can be
    saved as safetensors; MLX arrays are immutable, so one state can be restored any number of times.
    """

    window: int | None
    arrays: dict[str, mx.array]


class StreamingDecoder:
    """Turns codec frames into audio chunk by chunk, keeping the state between chunks."""

    def __init__(self, decoder: CodecDecoder, window: int | None) -> None:
        self._decoder = decoder
        self.window = window
        self.upsample = decoder.total_upsample
        self._caches: list[_WindowCache] = []
        self.reset()

    def reset(self) -> None:
        """Forget the previous utterance."""
        self._decoder.reset()
        self._caches = [_WindowCache(self.window) for _ in range(self._decoder.transformer_layers)]

    @property
    def cache_bytes(self) -> int:
        """Bytes held by the transformer's KV cache (bounded by the window)."""
        return sum(
            c.keys.nbytes + c.values.nbytes
            for c in self._caches
            if c.keys is not None and c.values is not None
        )

    def state(self) -> DecoderState:
        """The state now (after priming it with a reference's last frames, say)."""
        arrays = {f"conv.{key}": value for key, value in self._decoder.streaming_state().items()}
        for i, cache in enumerate(self._caches):
            if cache.keys is not None and cache.values is not None:
                arrays[f"cache.{i}.keys"], arrays[f"cache.{i}.values"] = cache.keys, cache.values
            arrays[f"cache.{i}.offset"] = mx.array(cache.offset)
        return DecoderState(self.window, arrays)

    def restore(self, state: DecoderState) -> None:
        """Continue from a saved state: decoding the same frames then gives the same audio, bit for bit."""
        if state.window != self.window:
            raise ValueError(f"decoder state for window {state.window}, not {self.window}")
        self.reset()
        prefix = "conv."
        self._decoder.restore_streaming_state(
            {key[len(prefix) :]: value for key, value in state.arrays.items() if key.startswith(prefix)}
        )
        for i, cache in enumerate(self._caches):
            cache.keys = state.arrays.get(f"cache.{i}.keys")
            cache.values = state.arrays.get(f"cache.{i}.values")
            cache.offset = int(state.arrays[f"cache.{i}.offset"])

    def step(self, codes: mx.array) -> mx.array:
        """Decode new frames `codes` [1, groups, n] into n * upsample samples (lazy)."""
        hidden = self._decoder.embed(codes, streaming=True)
        mask = window_mask(hidden.shape[1], self._caches[0].cached, self.window, hidden.dtype)
        hidden = self._decoder.transform(hidden, mask, self._caches)
        return self._decoder.synthesize(hidden, streaming=True)


def decode_reference(decoder: CodecDecoder, codes: mx.array, window: int | None) -> mx.array:
    """Decode all of `codes` [1, groups, n] in one pass, with the sliding-window mask."""
    hidden = decoder.embed(codes, streaming=False)
    mask = window_mask(hidden.shape[1], 0, window, hidden.dtype)
    return decoder.synthesize(decoder.transform(hidden, mask), streaming=False)
