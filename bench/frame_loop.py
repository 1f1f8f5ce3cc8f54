"""Frame loops A/B: `generate_utterance`, `generate_utterance_fast` and mlx-audio's own `generate`.

`python -m bench.frame_loop MODEL [--frames N] [--rounds R]` times whole
utterances of N frames (use a model that never emits EOS), interleaving the variants round
by round so machine drift hits all alike, and prints medians and ratios. "gen" runs
replace the codec decoder by silence of the right length, so they time frame generation
alone (prefill included); "e2e" runs decode for real with the default chunk schedule.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import mlx.core as mx

from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.fast_generation import generate_utterance_fast
from mlx_speechd.engine.generation import GenerationSettings, Utterance, generate_utterance
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.types import CachePolicy, ChunkSchedule, GuardSettings, ModelInfo


class SilentDecoder(StreamingDecoder):
    """A decoder that returns silence: leaves only frame generation to time."""

    def reset(self) -> None:
        pass

    def step(self, codes: mx.array) -> mx.array:
        return mx.zeros((codes.shape[2] * self.upsample,))


def _variants(model: Qwen3Model, info: ModelInfo, frames: int) -> dict[str, Callable[[], None]]:
    settings = GenerationSettings(ChunkSchedule(), GuardSettings(), CachePolicy.LIMIT, 1 << 30)
    utt = Utterance("Hello there, this is a frame loop benchmark.", "ryan", "auto", None, None, None)
    real = StreamingDecoder(model.decoder, info.decoder_window)
    silent = SilentDecoder(model.decoder, info.decoder_window)

    def ours(decoder: StreamingDecoder, fast: bool) -> Callable[[], None]:
        def run() -> None:
            loop = generate_utterance_fast if fast else generate_utterance
            chunks = list(loop(model, info, decoder, utt, settings, lambda: False, frames))
            assert sum(c.frames for c in chunks) == frames, "use a model that never emits EOS"

        return run

    def upstream() -> None:
        results = list(model.module.generate(utt.text, voice="ryan", max_tokens=frames))
        assert sum(r.token_count for r in results) == frames

    return {
        "gen current": ours(silent, fast=False),
        "gen fast": ours(silent, fast=True),
        "gen mlx-audio": upstream,
        "e2e current": ours(real, fast=False),
        "e2e fast": ours(real, fast=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    model, info = load_model(args.model)
    # mlx-audio's generate decodes once at the end; silence it too for the "gen" comparison.
    silence: Any = lambda codes, **_: mx.zeros((len(codes) * model.decoder.total_upsample,))  # noqa: E731
    model.module._decode_generated_codes = silence  # noqa: SLF001
    variants = _variants(model, info, args.frames)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():
        run()  # warm up: compile kernels and traces
    names = list(variants)
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            mx.random.seed(round_index)
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:14s} {median * 1000 / args.frames:7.2f} ms/frame")
    print(f"gen fast / current:   {medians['gen fast'] / medians['gen current']:.2f}x")
    print(f"gen fast / mlx-audio: {medians['gen fast'] / medians['gen mlx-audio']:.2f}x")
    print(f"e2e fast / current:   {medians['e2e fast'] / medians['e2e current']:.2f}x")


if __name__ == "__main__":
    main()
