"""The command line as a real subprocess: WAV, raw PCM, live playback through PortAudio."""

from __future__ import annotations

import os
import signal
import socket
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


def test_ctrl_c_while_the_model_loads_exits_without_waiting_for_it(tiny_custom_voice: Path) -> None:
    """The engine thread is inside the model load: Ctrl-C must not wait for the load (or warm-up) to end.
    (Before, it waited for the engine thread up to 10 s: with a load shorter than that, "Loaded" and
    "Warmed up" were logged after the Ctrl-C.)"""
    proc = subprocess.Popen(
        [*CLI, "--model", str(tiny_custom_voice), "--raw", "Hello."],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    while b"Audio cache" not in seen:  # logged as loading begins; the model takes seconds to import and load
        line = proc.stderr.readline()
        assert line, seen.decode()
        seen += line
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    stderr = (seen + proc.stderr.read()).decode()
    assert code == 130, stderr
    assert "Interrupted" in stderr and "Traceback" not in stderr, stderr
    assert "Loaded " not in stderr and "Warmed up" not in stderr, stderr


def test_errors_are_one_clear_line(tiny_custom_voice: Path, tmp_path: Path) -> None:
    model = ["--model", str(tiny_custom_voice), "--no-warmup"]
    assert_one_line_error(run_cli(*model, "--raw", stdin="  \n"), 2, "no text")
    assert_one_line_error(run_cli(*model, "--raw", "--voice", "bob", "Hi."), 1, "ryan")
    assert_one_line_error(run_cli(*model, "--raw", "--language", "xx", "Hi."), 1, "Unsupported language")
    assert_one_line_error(run_cli("--model", str(tmp_path / "missing"), "--raw", "Hi."), 1, "No such folder")
    assert_one_line_error(
        run_cli("--model", "mlx-community/not-cached", "--raw", "Hi.", env={"HF_HUB_OFFLINE": "1"}),
        1,
        "not in the local Hugging Face cache",
    )
    assert_one_line_error(run_cli(*model, "--play", "--device", "no such device", "Hi."), 1, "audio output")
    assert_one_line_error(run_cli(*model, "-o", str(tmp_path / "no" / "dir.wav"), "Hi."), 1, "dir.wav")


def _before_loading(result: subprocess.CompletedProcess[bytes], code: int, text: str) -> None:
    """One error line, and no model was loaded first (it takes many seconds with real weights)."""
    assert_one_line_error(result, code, text)
    assert "Loaded " not in result.stderr.decode() and "Warmed up" not in result.stderr.decode()


def test_mistakes_are_reported_before_the_model_loads(tiny_custom_voice: Path, tmp_path: Path) -> None:
    model = ["--model", str(tiny_custom_voice)]
    _before_loading(run_cli(*model, "--raw", " ", "  "), 2, "no text to speak")
    missing_folder = str(tmp_path / "no" / "dir.wav")
    _before_loading(run_cli(*model, "-o", missing_folder, "Hi."), 1, "No such file or directory")
    missing = str(tmp_path / "missing.wav")
    _before_loading(run_cli(*model, "--raw", "--ref-audio", missing, "Hi."), 1, f"'{missing}' does not exist")
    _before_loading(
        run_cli(*model, "--raw", "--voice", "bob", "Hi."), 1, "Unknown voice 'bob'. Voices: serena"
    )
    (tmp_path / "models").mkdir()  # `models/nope` is then a folder that is missing, not a hub repo id
    nope = subprocess.run([*CLI, "--model", "models/nope", "--raw", "Hi."], capture_output=True, cwd=tmp_path)
    _before_loading(nope, 1, "No such folder: 'models/nope'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        uri = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        _before_loading(run_cli(*model, "--uri", uri), 1, f"--uri {uri}: Address already in use")
    daemon = run_cli(*model, "--uri", "tcp://127.0.0.1:0", "--voice", "bob")
    _before_loading(daemon, 1, "Unknown voice 'bob'")
    assert "Loading" not in daemon.stderr.decode()  # the daemon says it before it starts loading


def test_a_library_voice_passes_the_early_voice_check(tiny_custom_voice: Path, tmp_path: Path) -> None:
    """`--voice` may name a voice of the library (--voices-dir): the early check must not refuse it."""
    voices = tmp_path / "voices"
    added = run_cli("voice", "add", "calm", "--voices-dir", str(voices), "--speaker", "vivian")
    assert added.returncode == 0, added.stderr.decode()
    result = run_cli(
        "--model", str(tiny_custom_voice), "--voices-dir", str(voices), "--voice", "calm", "--raw", "Hi."
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout) == SENTENCE_BYTES


def test_start_up_is_quiet_and_library_noise_is_debug(tiny_custom_voice: Path) -> None:
    """transformers' config-class warning and mlx-audio's prints while loading: DEBUG lines, not noise."""
    noise = ("model of type", "Initialized encoder codebooks", "Loaded speech tokenizer")
    quiet = run_cli("--model", str(tiny_custom_voice), "--no-warmup", "--raw", "Hi.")
    assert quiet.returncode == 0, quiet.stderr.decode()
    assert not [text for text in noise if text in quiet.stderr.decode()], quiet.stderr.decode()
    debug = run_cli("--model", str(tiny_custom_voice), "--no-warmup", "--debug", "--raw", "Hi.")
    lines = debug.stderr.decode().splitlines()
    for text in noise:
        assert [line for line in lines if text in line and " DEBUG " in line], text


def test_the_offline_message_is_one_paragraph_without_a_download_line(tmp_path: Path) -> None:
    """The hub out of reach (a closed port stands in for no network): no "Downloading" line first."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path), "HF_ENDPOINT": endpoint}
    result = run_cli("--model", "mlx-community/not-cached", "--raw", "Hi.", env=env)
    assert_one_line_error(result, 1, "is not in the local Hugging Face cache and could not be downloaded")
    assert "out of reach" in result.stderr.decode()
    assert "Downloading" not in result.stderr.decode()


def test_no_audio_device_is_said_plainly(tiny_custom_voice: Path, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}  # no ~/.asoundrc: on a machine without a sound card, no output device
    probe = [sys.executable, "-c", "import sounddevice; print(sounddevice.default.device[1])"]
    if int(subprocess.run(probe, capture_output=True, env={**os.environ, **env}).stdout) >= 0:
        pytest.skip("this machine has a default audio output device")
    result = run_cli("--model", str(tiny_custom_voice), "--play", "Hi.", env=env)
    _before_loading(result, 1, "no audio output device found (see docs/troubleshooting.md)")


def test_raw_into_head_exits_quietly(tiny_custom_voice: Path) -> None:
    """`mlx-speechd --raw ... | head -c 100`: a closed pipe is the reader's choice, not an error."""
    proc = subprocess.Popen(
        [*CLI, "--model", str(tiny_custom_voice), "--raw", "Long text. " * 5],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "error" not in stderr.lower() and "Traceback" not in stderr, stderr


def test_help_lists_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--play", "--raw", "--output", "--voice", "--ref-audio", "--seed", "--first-chunk-frames"):
        assert option in result.stdout.decode()
