"""Live playback on an audio output device through PortAudio (sounddevice)."""

from __future__ import annotations

import logging
from typing import Any

from .audio.pcm import CHANNELS, SAMPLE_RATE

_LOGGER = logging.getLogger(__name__)


class PlaybackError(Exception):
    """No usable audio output (PortAudio missing, no device, device busy)."""


NO_DEVICE = "no audio output device found (see docs/troubleshooting.md)"


def _device_error(sd: Any, device: str | int | None, err: Exception, what: str) -> PlaybackError:
    """PortAudio's error as a PlaybackError; "Error querying device -1" (no default output) said plainly."""
    if device is None and _default_output(sd) < 0:
        return PlaybackError(NO_DEVICE)
    return PlaybackError(f"{what}: {err}")


def _default_output(sd: Any) -> int:
    try:
        return int(sd.default.device[1])
    except (TypeError, ValueError, IndexError):
        return 0  # a named default device


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as err:  # the PortAudio library itself is missing
        raise PlaybackError(
            "cannot play audio: the PortAudio library is missing "
            "(Debian/Ubuntu: apt install libportaudio2; macOS ships CoreAudio support)"
        ) from err
    return sounddevice


class Player:
    """Plays 16-bit PCM chunks as they arrive, starting with the first one.

    `write` blocks only while the device buffer is full, so a caller that feeds
    chunks as the engine produces them plays without gaps when compute keeps up.
    """

    def __init__(self, device: str | int | None = None) -> None:
        self._device = device
        self._stream: Any = None

    def write(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self._stream is None:
            self._stream = self._open()
        self._stream.write(pcm)

    def _open(self) -> Any:
        sd = _sounddevice()
        try:
            stream = sd.RawOutputStream(
                samplerate=SAMPLE_RATE,
                channels=CHANNELS,
                dtype="int16",
                device=self._device,
                latency="high",
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as err:
            what = f"cannot open audio output device {self._device or ''}".rstrip()
            raise _device_error(sd, self._device, err, what) from err
        _LOGGER.debug("Playing on %s", stream.device)
        return stream

    def close(self) -> None:
        """Let queued audio finish playing, then release the device."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def abort(self) -> None:
        """Stop at once, dropping queued audio."""
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
            self._stream = None


def check_output_device(device: str | int | None = None) -> None:
    """Raise PlaybackError now if there is no usable output device."""
    sd = _sounddevice()
    try:
        sd.check_output_settings(device=device, channels=CHANNELS, dtype="int16", samplerate=SAMPLE_RATE)
    except (sd.PortAudioError, ValueError) as err:
        raise _device_error(sd, device, err, "no usable audio output device") from err
