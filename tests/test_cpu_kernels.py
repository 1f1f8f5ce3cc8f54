"""The codec decoder's CPU kernels compute what MLX's own kernels do (mlx_speechd/engine/cpu_kernels.py)."""

from __future__ import annotations

import math
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_speechd.engine import cpu_kernels
from mlx_speechd.engine.adapter import CodecDecoder
from mlx_speechd.engine.cpu_kernels import (
    CPU,
    NATIVE,
    MatmulConvTranspose1d,
    PhasedConv1d,
    conv_transpose1d,
    dilated_conv1d,
    faster_conv,
)
from mlx_speechd.engine.decoder import StreamingDecoder, decode_reference
from mlx_speechd.engine.loader import load_model


def test_erf_and_sin_squared_are_within_a_few_float32_ulps() -> None:
    x = np.linspace(-8, 8, 100_001, dtype=np.float32)
    expected = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(np.array(cpu_kernels.erf(mx.array(x))) - expected).max() < 5e-7
    # Snake's arguments: the range reduction keeps its precision far from zero.
    x = np.concatenate([np.linspace(-50, 50, 200_001), np.linspace(-3000, 3000, 200_001)]).astype(np.float32)
    expected = np.sin(x.astype(np.float64)) ** 2
    assert np.abs(np.array(cpu_kernels.sin_squared(mx.array(x))) - expected).max() < 4e-7


def test_cpu_activations_match_mlx_audio_formulas_whatever_the_shape() -> None:
    # The fused kernels are compiled shapeless: each new length must still be computed right.
    alpha, beta = mx.random.normal((16,)) * 0.5, mx.random.normal((16,)) * 0.5
    x = mx.random.normal((2, 1000, 16)) * 3
    for length in (1000, 37, 1):
        part = x[:, :length]
        gelu = CPU.gelu(part)
        assert gelu.shape == part.shape
        assert mx.abs(gelu - nn.gelu(part)).max().item() < 2e-6
        snake = CPU.snake(part, alpha, beta, 1e-9)
        assert mx.abs(snake - NATIVE.snake(part, alpha, beta, 1e-9)).max().item() < 1e-5


@pytest.mark.parametrize(
    ("batch", "length", "channels", "out_channels", "kernel", "stride"),
    [(1, 40, 16, 8, 16, 8), (2, 33, 8, 8, 6, 6), (2, 7, 5, 3, 7, 3), (1, 1, 4, 4, 5, 2), (1, 9, 4, 6, 2, 4)],
)
def test_conv_transpose1d_equals_mlx(
    batch: int, length: int, channels: int, out_channels: int, kernel: int, stride: int
) -> None:
    x = mx.random.normal((batch, length, channels))
    weight = mx.random.normal((out_channels, kernel, channels))
    expected = mx.conv_transpose1d(x, weight, stride)
    ours = conv_transpose1d(x, weight, stride)
    assert ours.shape == expected.shape
    assert mx.abs(ours - expected).max().item() < 1e-4


@pytest.mark.parametrize(
    ("batch", "length", "channels", "kernel", "dilation", "groups"),
    [(1, 70, 16, 7, 3, 1), (2, 131, 8, 7, 9, 1), (1, 20, 8, 3, 9, 1), (2, 50, 8, 5, 2, 4)],
)
def test_dilated_conv1d_equals_mlx(
    batch: int, length: int, channels: int, kernel: int, dilation: int, groups: int
) -> None:
    x = mx.random.normal((batch, length, channels))
    weight = mx.random.normal((channels, kernel, channels // groups))
    expected = mx.conv1d(x, weight, dilation=dilation, groups=groups)
    ours = dilated_conv1d(x, weight, dilation, groups)
    assert ours.shape == expected.shape
    assert mx.abs(ours - expected).max().item() < 1e-4


def test_only_the_slow_convolutions_are_replaced_and_keep_their_arrays() -> None:
    transposed = nn.ConvTranspose1d(4, 4, 6, stride=3)
    assert isinstance(replaced := faster_conv(transposed), MatmulConvTranspose1d)
    assert replaced.weight is transposed.weight and replaced.bias is transposed.bias
    x = mx.random.normal((1, 10, 4))
    assert mx.abs(replaced(x) - transposed(x)).max().item() < 1e-5
    dilated = nn.Conv1d(4, 4, 7, dilation=3, bias=False)
    assert isinstance(phased := faster_conv(dilated), PhasedConv1d) and "bias" not in phased
    x = mx.random.normal((1, 30, 4))
    assert mx.abs(phased(x) - dilated(x)).max().item() < 1e-5
    # MLX's own fast paths (undilated convolutions) and what the replacements don't cover stay.
    assert faster_conv(nn.Conv1d(4, 4, 7)) is None
    assert faster_conv(nn.Conv1d(4, 4, 7, dilation=3, padding=1)) is None
    assert faster_conv(nn.ConvTranspose1d(4, 4, 6, stride=3, padding=1)) is None
    assert faster_conv(nn.Linear(4, 4)) is None


def test_the_cpu_kernels_are_used_on_the_cpu_only() -> None:
    assert cpu_kernels.for_device(mx.Device(mx.cpu)) is CPU
    assert cpu_kernels.for_device(mx.Device(mx.gpu)) is NATIVE


def test_decoder_on_cpu_kernels_matches_mlx_kernels(tiny_custom_voice: Path) -> None:
    model, info = load_model(str(tiny_custom_voice))
    upstream = model.module.speech_tokenizer.decoder
    native = CodecDecoder(upstream, NATIVE)
    fast = CodecDecoder(upstream, CPU)
    codes = mx.random.randint(0, 200, (1, 16, 30))
    streamed = [StreamingDecoder(d, info.decoder_window) for d in (native, fast)]
    chunks = [[np.array(s.step(codes[:, :, i : i + 7])) for i in range(0, 30, 7)] for s in streamed]
    np.testing.assert_allclose(np.concatenate(chunks[1]), np.concatenate(chunks[0]), atol=2e-5)
    whole = [np.array(decode_reference(d, codes, info.decoder_window)) for d in (native, fast)]
    np.testing.assert_allclose(whole[1], whole[0], atol=2e-5)
    # mlx-audio's own module keeps MLX's convolutions: the replacements live in a copy.
    kinds = {type(m).__name__ for _, m in upstream.named_modules()}
    assert "MatmulConvTranspose1d" not in kinds and "ConvTranspose1d" in kinds


def test_speaker_encoder_runs_its_dilated_convolutions_undilated_on_the_cpu(tiny_base: Path) -> None:
    model, _ = load_model(str(tiny_base))
    encoder = model.module.speaker_encoder
    phased = [m for _, m in encoder.named_modules() if isinstance(m, PhasedConv1d)]
    assert phased and all(m.dilation > 1 for m in phased)
    assert not [m for _, m in encoder.named_modules() if isinstance(m, nn.Conv1d) and m.dilation > 1]
    reference = mx.random.normal((24000,)) * 0.1
    assert model.speaker_embedding(reference).shape[0] == 1
