"""`WavFile`: the one-shot `-o` and stdio `wav` output file, complete or absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from mlx_speechd.audio.pcm import SAMPLE_RATE
from mlx_speechd.audio.wavfile import WavFile

PCM = (np.sin(np.arange(2400) / 8) * 8000).astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("name", "container"), [("a.wav", "WAV"), ("a.flac", "FLAC"), ("a.OGG", "OGG"), ("a.txt", "WAV")]
)
def test_format_follows_the_extension(tmp_path: Path, name: str, container: str) -> None:
    out = WavFile(str(tmp_path / name))
    out.write(PCM)
    out.close(keep=True)
    info = soundfile.info(str(tmp_path / name))
    assert (info.format, info.samplerate, info.channels, info.frames) == (container, SAMPLE_RATE, 1, 2400)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_dropped_file_leaves_nothing_and_keeps_what_was_there(tmp_path: Path) -> None:
    target = tmp_path / "a.wav"
    target.write_bytes(b"before")
    out = WavFile(str(target))
    out.write(PCM)
    out.close(keep=False)
    assert target.read_bytes() == b"before" and [p.name for p in tmp_path.iterdir()] == ["a.wav"]


def test_a_directory_or_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        WavFile(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"No such file or directory.*missing/a\.wav"):
        WavFile(str(tmp_path / "missing" / "a.wav"))
