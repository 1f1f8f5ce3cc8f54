"""Guards that end an utterance cleanly when generation runs away."""

from __future__ import annotations

import unicodedata

import numpy as np

from ..audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from .types import GuardSettings

SILENCE_RMS = 10 ** (-50 / 20)
"""Frames quieter than -50 dBFS count as silence."""


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def frame_cap(text: str, settings: GuardSettings, model_max: int) -> int:
    """A generous upper bound on frames for `text`, never above the model's own limit.

    Typical speech needs about one frame per Latin character and three per CJK
    character; the default allows three times that.
    """
    weight = sum(3 if _is_wide(c) else 1 for c in text if not c.isspace())
    return min(model_max, max(settings.min_frames, round(weight * settings.frames_per_char)))


def repeating_period(tokens: list[int], span: int, max_period: int = 25) -> int | None:
    """The period with which the last `span` tokens loop, if they loop at all."""
    if span <= 0 or len(tokens) < span:
        return None
    tail = tokens[-span:]
    for period in range(1, min(max_period, span // 3) + 1):
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return period
    return None


class RunawayGuard:
    """Watches one utterance's tokens and audio; says why to stop, if it should."""

    def __init__(self, settings: GuardSettings) -> None:
        self._settings = settings
        self._tokens: list[int] = []
        self._silent_frames = 0
        self._max_silent_frames = round(settings.max_silence_seconds * SAMPLE_RATE / FRAME_SAMPLES)

    def add_token(self, token: int) -> str | None:
        self._tokens.append(token)
        period = repeating_period(self._tokens, self._settings.repetition_frames)
        if period is not None:
            return f"repetition (the last {self._settings.repetition_frames} frames loop every {period})"
        return None

    def add_audio(self, audio: np.ndarray) -> str | None:
        for start in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
            frame = audio[start : start + FRAME_SAMPLES]
            if float(np.sqrt(np.mean(np.square(frame)))) < SILENCE_RMS:
                self._silent_frames += 1
            else:
                self._silent_frames = 0
        if self._max_silent_frames and self._silent_frames >= self._max_silent_frames:
            return f"silence (over {self._settings.max_silence_seconds:g}s without speech)"
        return None
