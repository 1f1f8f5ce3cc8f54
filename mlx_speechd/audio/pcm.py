"""The one output format: 24 kHz, 16-bit signed little-endian, mono PCM."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 24000
SAMPLE_WIDTH = 2
CHANNELS = 1
FRAME_SAMPLES = 1920
"""Samples per 12.5 Hz codec frame (80 ms at 24 kHz)."""


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """Convert float samples in [-1, 1] to 16-bit little-endian PCM bytes."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """Convert 16-bit little-endian PCM bytes to float32 samples in [-1, 1]."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32767.0


def silence(seconds: float) -> bytes:
    """Return `seconds` of digital silence as PCM bytes."""
    return bytes(round(seconds * SAMPLE_RATE) * SAMPLE_WIDTH)
