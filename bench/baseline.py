"""The baseline: mlx-audio's own streaming, `model.generate(..., stream=True)`, as others ship it."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from mlx_speechd.audio.pcm import float_to_pcm16

from .measure import FRAME_SECONDS, Recorder, RequestResult


def interval_for(frames: int) -> float:
    """The `streaming_interval` that gives chunks of `frames` codec frames (mlx-audio: int(s * 12.5))."""
    return frames * FRAME_SECONDS + 1e-6


def load_mlx_audio_model(path: str) -> Any:
    """Load the model the way mlx-audio users do."""
    from mlx_audio.tts.utils import load_model

    from mlx_speechd.engine.loader import library_output_to_debug

    with library_output_to_debug():  # mlx-audio prints while loading
        return load_model(path)


def baseline_request(
    model: Any, text: str, voice: str, language: str, frames: int, chunk_frames: int
) -> RequestResult:
    """One streamed generation of exactly `frames` frames (fixed-length model), chunks of `chunk_frames`.

    Each chunk is converted to 16-bit PCM, as any consumer that sends or plays it must.
    """
    mx.reset_peak_memory()
    recorder = Recorder()
    for result in model.generate(
        text,
        voice=voice,
        lang_code=language,
        max_tokens=frames,
        stream=True,
        streaming_interval=interval_for(chunk_frames),
    ):
        recorder.audio(len(float_to_pcm16(np.asarray(result.audio))))
    return recorder.result(peak_mlx_bytes=mx.get_peak_memory())
