"""The codec decoder's slow MLX CPU kernels, done another way: the same results, many times faster.

Measured on an x86 core (docs/performance.md, "The codec decoder on the CPU"):
- MLX's transcendental kernels are slow next to its arithmetic: `erf` costs about 26 ns an element
  and `sin` 16 ns, against 0.2 ns for a multiply. The decoder applies GELU (ConvNeXt upsampling)
  and Snake (`x + sin²(alpha x) / beta`, twice in every residual unit) to every sample of every channel.
  `CPU` computes them from multiplies and adds (a rational erf, a range-reduced sine), fused by
  `mx.compile`, within a few float32 ulps of `NATIVE` (mlx-audio's own formulas).
- `mx.conv_transpose1d` and dilated `mx.conv1d` run a direct loop: for 10 frames, the 0.6B model's
  first upsampling layer took 1.4 s and each dilated residual convolution over 2 s. Here the
  transposed convolution is one matrix product and an overlap-add, and a dilated convolution is
  `dilation` undilated ones (MLX's fast path), one per phase of the input.
The speaker encoder's dilated TDNN convolutions get the same treatment (`replace_slow_convs`).
On Metal and CUDA MLX's own kernels are fast, so `for_device` keeps them there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import mlx.core as mx
import mlx.nn as nn

_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
"""Odd/even polynomials of the rational erf on [-4, 4] (Eigen's float32 `erf`; past 4 erf is ±1)."""

_PI_HI = 3.140625
"""π's leading 8 bits: `k * _PI_HI` is exact for |k| < 2**16, so x - kπ keeps its precision."""
_PI_LO = math.pi - _PI_HI
_SIN = (-1 / 39916800, 1 / 362880, -1 / 5040, 1 / 120, -1 / 6)
"""Taylor terms of (sin r - r) / r³ in r², highest first; degree 11 is within 6e-8 on [-π/2, π/2]."""


def _horner(x: mx.array, coefficients: tuple[float, ...]) -> mx.array:
    """The polynomial with `coefficients` (highest degree first) at `x`."""
    result = x * coefficients[0] + coefficients[1]
    for c in coefficients[2:]:
        result = result * x + c
    return result


def erf(x: mx.array) -> mx.array:
    """The error function within 5e-7 of MLX's, from multiplies and adds only."""
    x = mx.clip(x, -4.0, 4.0)
    x2 = x * x
    return x * _horner(x2, _ERF_P) / _horner(x2, _ERF_Q)


def sin_squared(x: mx.array) -> mx.array:
    """sin²(x), within 4e-7 for |x| up to thousands: sin² has period π, so only x - kπ is needed."""
    k = mx.round(x * (1 / math.pi))
    r = (x - k * _PI_HI) - k * _PI_LO
    r2 = r * r
    s = r + r * r2 * _horner(r2, _SIN)
    return s * s


@partial(mx.compile, shapeless=True)
def _cpu_gelu(x: mx.array) -> mx.array:
    return 0.5 * x * (1.0 + erf(x * (1 / math.sqrt(2))))


@partial(mx.compile, shapeless=True)
def _scaled_snake(x: mx.array, scale: mx.array, inverse_beta: mx.array) -> mx.array:
    return x + inverse_beta * sin_squared(x * scale)


def _cpu_snake(x: mx.array, alpha: mx.array, beta: mx.array, eps: float) -> mx.array:
    # The per-channel exponentials stay outside the fused kernel, which would redo them per element.
    return _scaled_snake(x, mx.exp(alpha), 1.0 / (mx.exp(beta) + eps))


def _native_snake(x: mx.array, alpha: mx.array, beta: mx.array, eps: float) -> mx.array:
    return x + (1.0 / (mx.exp(beta) + eps)) * mx.power(mx.sin(x * mx.exp(alpha)), 2)


def conv_transpose1d(x: mx.array, weight: mx.array, stride: int) -> mx.array:
    """`mx.conv_transpose1d(x, weight, stride)` (no padding or dilation) as a matrix product.

    Input position t adds `x[t] @ weight[:, k]` to output t * stride + k: one product gives every
    (t, k) term, and the kernel's ceil(k / stride) strides are shifted and summed.
    """
    batch, length, _ = x.shape
    out_channels, kernel, in_channels = weight.shape
    strides = -(-kernel // stride)
    terms = (x @ weight.reshape(out_channels * kernel, in_channels).T).reshape(
        batch, length, out_channels, kernel
    )
    if strides * stride != kernel:
        terms = mx.pad(terms, [(0, 0), (0, 0), (0, 0), (0, strides * stride - kernel)])
    terms = terms.reshape(batch, length, out_channels, strides, stride).transpose(0, 3, 1, 4, 2)
    parts = [
        mx.pad(
            terms[:, j].reshape(batch, length * stride, out_channels),
            [(0, 0), (j * stride, (strides - 1 - j) * stride), (0, 0)],
        )
        for j in range(strides)
    ]
    return sum(parts[1:], parts[0])[:, : (length - 1) * stride + kernel]


class _Replacement(nn.Module):
    """A convolution's `weight` and `bias` (the same arrays, not copies), computed by `convolve`."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.weight = conv.weight
        if "bias" in conv:
            self.bias = conv.bias

    def convolve(self, x: mx.array) -> mx.array:
        raise NotImplementedError

    def __call__(self, x: mx.array) -> mx.array:
        y = self.convolve(x)
        return y + self.bias if "bias" in self else y


class MatmulConvTranspose1d(_Replacement):
    """An `nn.ConvTranspose1d` without padding or dilation, run by `conv_transpose1d`."""

    def __init__(self, conv: nn.ConvTranspose1d) -> None:
        super().__init__(conv)
        self.stride = conv.stride

    def convolve(self, x: mx.array) -> mx.array:
        return conv_transpose1d(x, self.weight, self.stride)


def dilated_conv1d(x: mx.array, weight: mx.array, dilation: int, groups: int = 1) -> mx.array:
    """`mx.conv1d(x, weight, dilation=dilation, groups=groups)` (stride 1, no padding), undilated.

    Output t = q * dilation + r reads only inputs of phase r (t + j * dilation), so each phase is
    an undilated convolution of every `dilation`-th input.
    """
    batch, length, channels = x.shape
    out_channels, kernel, _ = weight.shape
    out_length = length - (kernel - 1) * dilation
    if extra := -length % dilation:
        x = mx.pad(x, [(0, 0), (0, extra), (0, 0)])
    per_phase = x.shape[1] // dilation
    x = x.reshape(batch, per_phase, dilation, channels).transpose(0, 2, 1, 3)
    y = mx.conv1d(x.reshape(batch * dilation, per_phase, channels), weight, groups=groups)
    y = y.reshape(batch, dilation, -1, out_channels).transpose(0, 2, 1, 3)
    return y.reshape(batch, -1, out_channels)[:, :out_length]


class PhasedConv1d(_Replacement):
    """A dilated `nn.Conv1d` (stride 1, no padding) run by `dilated_conv1d`."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__(conv)
        self.dilation = conv.dilation
        self.groups = conv.groups

    def convolve(self, x: mx.array) -> mx.array:
        return dilated_conv1d(x, self.weight, self.dilation, self.groups)


def faster_conv(conv: object) -> nn.Module | None:
    """The replacement for a convolution that MLX's CPU backend runs slowly; None for the others."""
    if isinstance(conv, nn.ConvTranspose1d):
        plain = conv.padding == conv.output_padding == 0 and conv.dilation == 1
        return MatmulConvTranspose1d(conv) if plain else None
    if isinstance(conv, nn.Conv1d) and conv.dilation > 1 and (conv.stride, conv.padding) == (1, 0):
        return PhasedConv1d(conv)
    return None


def replace_slow_convs(module: nn.Module) -> None:
    """Swap each `conv` child of `module`'s layers that `faster_conv` covers (layers call `self.conv`)."""
    for _, layer in module.named_modules():
        if (faster := faster_conv(getattr(layer, "conv", None))) is not None:
            layer.conv = faster


@dataclass(frozen=True)
class DecoderKernels:
    """GELU, Snake with its log-scale parameters (`snake(x, alpha, beta, eps)`), and whether
    slow convolutions are replaced (`faster_conv`)."""

    gelu: Callable[[mx.array], mx.array]
    snake: Callable[[mx.array, mx.array, mx.array, float], mx.array]
    replace_convs: bool


NATIVE = DecoderKernels(gelu=nn.gelu, snake=_native_snake, replace_convs=False)
CPU = DecoderKernels(gelu=_cpu_gelu, snake=_cpu_snake, replace_convs=True)


def for_device(device: mx.Device) -> DecoderKernels:
    """`CPU` on the CPU backend; MLX's own kernels elsewhere (Metal and CUDA run them fast)."""
    return CPU if device.type == mx.DeviceType.cpu else NATIVE
