"""Reference recordings for cloning: read, mix to mono, resample to 24 kHz, check, store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from ..errors import InvalidRequestError

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 24000
"""Qwen3-TTS's codec and speaker encoder work at 24 kHz."""
MAX_SECONDS = 30.0
RECOMMENDED_SECONDS = (3.0, 20.0)
MIN_CHARS_PER_SECOND = 1.5
"""Below this a transcript probably leaves part of the reference unsaid (a clone then tends to run on)."""


@dataclass(frozen=True)
class Reference:
    """A reference recording as the model takes it."""

    audio: np.ndarray
    """float32 mono samples at 24 kHz."""
    source_rate: int
    source_channels: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def load_reference(path: str | Path) -> Reference:
    """Read any file libsndfile reads (WAV, FLAC, OGG, MP3, ...), mixed to mono at 24 kHz and checked.

    Raises InvalidRequestError (one line) for an unreadable, empty, silent or over-long file;
    logs a warning when the length is outside the recommended range.
    """
    what = f"reference audio '{path}'"
    if not Path(path).is_file():
        raise InvalidRequestError(f"{what} does not exist (or is not a file)")
    try:
        info = soundfile.info(str(path))
        if info.frames > MAX_SECONDS * info.samplerate:  # before decoding a long file
            _check_length(info.frames / info.samplerate, what)
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise InvalidRequestError(f"cannot read {what}: {_reason(err)}") from err
    channels = data.shape[1]
    mono = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
    if rate != SAMPLE_RATE and len(mono):
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ").astype(np.float32, copy=False)
    audio = np.ascontiguousarray(mono, dtype=np.float32)
    validate_reference(audio, what)
    return Reference(audio, int(rate), int(channels))


def validate_reference(audio: np.ndarray, what: str) -> None:
    """Check 24 kHz mono audio: InvalidRequestError if empty, not finite, silent or too long."""
    if audio.ndim != 1 or not len(audio):
        raise InvalidRequestError(f"{what} has no audio")
    if not np.isfinite(audio).all():
        raise InvalidRequestError(f"{what} holds invalid (NaN or infinite) samples")
    if not np.abs(audio).max() > 0:
        raise InvalidRequestError(f"{what} is silent")
    _check_length(len(audio) / SAMPLE_RATE, what)


def _check_length(seconds: float, what: str) -> None:
    if seconds > MAX_SECONDS:
        raise InvalidRequestError(
            f"{what} is {seconds:.1f} s long; the limit is {MAX_SECONDS:.0f} s "
            f"(trim it to {RECOMMENDED_SECONDS[0]:.0f}-{RECOMMENDED_SECONDS[1]:.0f} s of clear speech)"
        )
    low, high = RECOMMENDED_SECONDS
    if not low <= seconds <= high:
        _LOGGER.warning("%s is %.1f s long; %.0f-%.0f s of clear speech clone best", what, seconds, low, high)


def check_transcript(text: str | None, seconds: float, x_vector_only: bool) -> str | None:
    """The stripped transcript; InvalidRequestError when it is needed but empty. Warns when it looks short."""
    text = (text or "").strip() or None
    if text is None:
        if not x_vector_only:
            raise InvalidRequestError(
                "the transcript of the reference is empty: give the words spoken in it "
                "(--ref-text or --ref-text-file), or use --x-vector-only"
            )
        return None
    if not x_vector_only and len(text) < MIN_CHARS_PER_SECOND * seconds:
        _LOGGER.warning(
            "the transcript has %d characters for %.1f s of reference audio: it should say every word "
            "spoken in the reference, or the clone may run on",
            len(text),
            seconds,
        )
    return text


def write_audio(path: Path, audio: np.ndarray) -> None:
    """Store 24 kHz mono audio losslessly (32-bit float WAV), so reading it back gives the same samples."""
    soundfile.write(str(path), audio, SAMPLE_RATE, subtype="FLOAT", format="WAV")


def read_audio(path: Path) -> np.ndarray:
    """Read audio written by `write_audio`; ValueError if it is not 24 kHz mono."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE or data.shape[1] != 1:
        raise ValueError(f"{path} is not {SAMPLE_RATE} Hz mono")
    return np.ascontiguousarray(data[:, 0])


def _reason(err: Exception) -> str:
    text = getattr(err, "error_string", None) or getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split())
