"""The codec decoder's CPU kernels (`mlx_speechd/engine/cpu_kernels.py`) against MLX's own.

`python -m bench.decoder_kernels [--model DIR ...] [--repeats N]` times each replaced operation on
the shapes of the tiny test model's and the 0.6B model's decoders (one 10-frame chunk), then one
10-frame chunk through `StreamingDecoder` for each model given, with MLX's kernels (`NATIVE`) and
with ours (`CPU`), and prints medians, speed-ups and the largest difference in the output.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import mlx.core as mx
import numpy as np

import mlx_speechd  # noqa: F401  (MKL under MLX on Linux, before MLX loads)
from mlx_speechd.engine.adapter import CodecDecoder
from mlx_speechd.engine.cpu_kernels import CPU, NATIVE, conv_transpose1d, dilated_conv1d
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.loader import load_model
from mlx_speechd.engine.types import ModelInfo

Op = Callable[[], mx.array]


def _random(*shape: int) -> mx.array:
    x = mx.random.normal(shape)
    mx.eval(x)
    return x


def _median_ms(run: Op, repeats: int) -> float:
    samples = []
    for _ in range(repeats + 1):  # the first call compiles
        began = time.perf_counter()
        mx.eval(run())
        samples.append(time.perf_counter() - began)
    return statistics.median(samples[1:]) * 1000


def _operations() -> list[tuple[str, Op, Op]]:
    """(what, MLX's kernel, ours) on the shapes one 10-frame chunk meets."""
    ops: list[tuple[str, Op, Op]] = []
    for shape in ((1, 19200, 32), (1, 40, 4096)):
        x = _random(*shape)
        ops.append((f"GELU {shape}", partial(NATIVE.gelu, x), partial(CPU.gelu, x)))
    for shape in ((1, 19200, 8), (1, 19200, 96)):
        args = (_random(*shape), _random(shape[-1]), _random(shape[-1]), 1e-9)
        ops.append((f"Snake {shape}", partial(NATIVE.snake, *args), partial(CPU.snake, *args)))
    for length, width, out, kernel, stride in ((3200, 8, 8, 6, 6), (40, 1536, 768, 16, 8)):
        x, w = _random(1, length, width), _random(out, kernel, width)
        ops.append(
            (
                f"transposed conv {length}x{width}->{out}, kernel {kernel}, stride {stride}",
                partial(mx.conv_transpose1d, x, w, stride),
                partial(conv_transpose1d, x, w, stride),
            )
        )
    for length, width, dilation in ((320, 768, 9), (19200, 96, 3)):
        x, w = _random(1, length + 6 * dilation, width), _random(width, 7, width)
        ops.append(
            (
                f"dilated conv {length}x{width}, kernel 7, dilation {dilation}",
                partial(mx.conv1d, x, w, dilation=dilation),
                partial(dilated_conv1d, x, w, dilation),
            )
        )
    return ops


def _chunk(model_dir: str, repeats: int) -> tuple[float, float, float]:
    """(ms with MLX's kernels, ms with ours, largest difference) for 10-frame chunks of random codes."""
    model, info = load_model(model_dir)
    # Codes below 256 are valid in every model's codebooks (the tiny test model has 256 entries).
    codes = mx.random.randint(0, 256, (1, 16, 10 * (repeats + 1)))
    upstream = model.module.speech_tokenizer.decoder
    results = [_decode(CodecDecoder(upstream, kernels), codes, info) for kernels in (NATIVE, CPU)]
    return results[0][0], results[1][0], float(np.abs(results[0][1] - results[1][1]).max())


def _decode(decoder: CodecDecoder, codes: mx.array, info: ModelInfo) -> tuple[float, np.ndarray]:
    streaming = StreamingDecoder(decoder, info.decoder_window)
    times, audio = [], []
    for start in range(0, codes.shape[2], 10):
        began = time.perf_counter()
        chunk = streaming.step(codes[:, :, start : start + 10])
        mx.eval(chunk)
        times.append(time.perf_counter() - began)
        audio.append(np.array(chunk))
    return statistics.median(times[1:]) * 1000, np.concatenate(audio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="a model folder (repeatable)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    args = parser.parse_args()
    print("| operation | MLX ms | ours ms | speed-up |\n|---|---|---|---|")
    for what, native, ours in _operations():
        before, after = _median_ms(native, args.repeats), _median_ms(ours, args.repeats)
        print(f"| {what} | {before:.2f} | {after:.2f} | {before / after:.1f}x |")
    for model_dir in args.model:
        before, after, difference = _chunk(model_dir, args.repeats)
        print(
            f"| 10-frame chunk, {model_dir} | {before:.1f} | {after:.1f} | {before / after:.1f}x "
            f"(largest difference {difference:.1e}) |"
        )


if __name__ == "__main__":
    main()
