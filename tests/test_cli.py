"""The command line as a real subprocess: WAV, raw PCM, live playback through PortAudio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE

CAP_FRAMES = 75  # the fixed-length test model runs each short sentence to its frame cap
SENTENCE_BYTES = CAP_FRAMES * FRAME_SAMPLES * 2
CLI = [sys.executable, "-m", "mlx_speechd"]


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, *args],
        input=stdin.encode(),
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], code: int, text: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("mlx-speechd: error:")]
    assert len(errors) == 1 and text in errors[0], stderr


@pytest.fixture
def alsa_capture(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A HOME whose ALSA default device is the file plugin: what PortAudio plays lands in a file."""
    captured = tmp_path / "captured.raw"
    (tmp_path / ".asoundrc").write_text(
        f'pcm.!default {{\n  type file\n  slave.pcm "null"\n  file "{captured}"\n  format "raw"\n}}\n'
    )
    return {"HOME": str(tmp_path)}, captured


def test_wav_output_has_the_expected_length(tiny_custom_voice: Path, tmp_path: Path) -> None:
    wav = tmp_path / "out.wav"
    result = run_cli("--model", str(tiny_custom_voice), "-o", str(wav), "First one.", "Second one.")
    assert result.returncode == 0, result.stderr.decode()
    info = soundfile.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert info.frames == 2 * CAP_FRAMES * FRAME_SAMPLES
    assert "first audio" in result.stderr.decode()  # the stats line


def test_raw_pcm_matches_the_wav(tiny_custom_voice: Path, tmp_path: Path) -> None:
    wav = tmp_path / "out.wav"
    model = ["--model", str(tiny_custom_voice), "--seed", "11"]
    raw = run_cli(*model, "--raw", "Raw bytes please.")
    assert raw.returncode == 0, raw.stderr.decode()
    assert len(raw.stdout) == SENTENCE_BYTES  # nothing but PCM on stdout
    assert run_cli(*model, "-o", str(wav), "Raw bytes please.").returncode == 0
    samples, _ = soundfile.read(str(wav), dtype="int16")
    assert np.array_equal(samples, np.frombuffer(raw.stdout, dtype="<i2"))


def test_play_goes_through_portaudio(
    tiny_custom_voice: Path, alsa_capture: tuple[dict[str, str], Path]
) -> None:
    env, captured = alsa_capture
    model = ["--model", str(tiny_custom_voice), "--seed", "5"]
    played = run_cli(*model, "--play", stdin="Hello there.\n", env=env)
    assert played.returncode == 0, played.stderr.decode()
    raw = run_cli(*model, "--raw", "Hello there.")
    assert captured.read_bytes() == raw.stdout
    assert len(raw.stdout) == SENTENCE_BYTES


def test_stdin_lines_are_spoken_as_they_arrive(tiny_custom_voice: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "--model", str(tiny_custom_voice), "--raw"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"a line without a full stop\n")
    proc.stdin.flush()
    # Audio for the first line arrives while stdin is still open.
    first = proc.stdout.read(SENTENCE_BYTES)
    assert len(first) == SENTENCE_BYTES
    proc.stdin.write(b"Second line.\n")
    proc.stdin.close()
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert len(rest) == SENTENCE_BYTES


def test_ctrl_c_stops_promptly_and_cleanly(tiny_custom_voice: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "--model", str(tiny_custom_voice), "--raw", "Long text. " * 40],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(FRAME_SAMPLES * 2)) > 0  # speaking
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = proc.wait(timeout=20)
    stopped_after = time.monotonic() - started
    stderr = proc.stderr.read().decode()
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert stopped_after < 5  # 40 sentences would take far longer


def test_errors_are_one_clear_line(tiny_custom_voice: Path, tmp_path: Path) -> None:
    model = ["--model", str(tiny_custom_voice), "--no-warmup"]
    assert_one_line_error(run_cli(*model, "--raw", stdin="  \n"), 2, "no text")
    assert_one_line_error(run_cli(*model, "--raw", "--voice", "bob", "Hi."), 1, "ryan")
    assert_one_line_error(run_cli(*model, "--raw", "--language", "xx", "Hi."), 1, "Unsupported language")
    assert_one_line_error(run_cli("--model", str(tmp_path / "missing"), "--raw", "Hi."), 1, "does not exist")
    assert_one_line_error(
        run_cli("--model", "mlx-community/not-cached", "--raw", "Hi.", env={"HF_HUB_OFFLINE": "1"}),
        1,
        "not in the local Hugging Face cache",
    )
    assert_one_line_error(run_cli(*model, "--play", "--device", "no such device", "Hi."), 1, "audio output")
    assert_one_line_error(run_cli(*model, "-o", str(tmp_path / "no" / "dir.wav"), "Hi."), 1, "dir.wav")


def test_help_lists_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--play", "--raw", "--output", "--voice", "--ref-audio", "--seed", "--first-chunk-frames"):
        assert option in result.stdout.decode()
