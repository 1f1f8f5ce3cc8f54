"""A WAV file that appears under its name only once complete."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets

import numpy as np
import soundfile

from .pcm import CHANNELS, SAMPLE_RATE

AUDIO_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
"""soundfile (format, subtype) by file extension; `WavFile` writes WAV for any other name."""


class WavFile:
    """A reply's WAV file: written under a temporary name beside `path`, renamed to it once complete.

    A failed or cancelled reply leaves nothing under `path` (and an existing file there untouched).
    The format follows the extension: FLAC for `.flac`, Ogg Vorbis for `.ogg`, WAV for anything
    else; a directory is refused.
    """

    def __init__(self, path: str) -> None:
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "a directory, not a file path", path)
        directory, name = os.path.split(os.path.abspath(path))
        self.path = path
        self._temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as err:  # named after the file asked for, not the temporary one
            raise OSError(err.errno, err.strerror, path) from None
        try:
            container, subtype = AUDIO_FORMATS.get(os.path.splitext(name)[1].lower(), AUDIO_FORMATS[".wav"])
            self._file = soundfile.SoundFile(
                fd, "w", samplerate=SAMPLE_RATE, channels=CHANNELS, subtype=subtype, format=container
            )
        except BaseException:
            os.close(fd)
            os.unlink(self._temporary)
            raise

    def write(self, pcm: bytes) -> None:
        self._file.write(np.frombuffer(pcm, dtype="<i2"))

    def close(self, *, keep: bool) -> None:
        """Close; rename to `path` when `keep`, else delete. Raises OSError if the rename fails."""
        try:
            self._file.close()
        finally:
            if keep:
                os.replace(self._temporary, self.path)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(self._temporary)
