"""Daemon life cycle: signals during start-up, a second signal, front ends that cannot start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mlx_speechd.daemon import SECOND_SIGNAL_EXIT

CLI = [sys.executable, "-m", "mlx_speechd"]


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def _wait_for_log(proc: subprocess.Popen[bytes], text: str, timeout: float = 60) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never logged {text!r}:\n{seen}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_while_loading_exits_promptly(tiny_custom_voice: Path) -> None:
    proc = _start("--model", str(tiny_custom_voice), "--uri", f"tcp://127.0.0.1:{_free_port()}")
    _wait_for_log(proc, "Loading")  # loading and warming up take seconds: the signal lands during them
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert "SIGTERM while starting" in stderr and "Traceback" not in stderr, stderr


def test_first_signal_shuts_down_cleanly_second_exits_at_once(tiny_custom_voice: Path) -> None:
    port = _free_port()
    proc = _start("--model", str(tiny_custom_voice), "--uri", f"tcp://127.0.0.1:{port}")
    _wait_for_log(proc, "Serving Wyoming")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read().decode()

    # The second signal must reach the daemon while it is still shutting down: stopped, it holds both
    # (two different signals are not merged into one) and handles them in a row once continued.
    proc = _start("--model", str(tiny_custom_voice), "--uri", f"tcp://127.0.0.1:{_free_port()}")
    _wait_for_log(proc, "Serving Wyoming")
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=15) == SECOND_SIGNAL_EXIT
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert "again: exiting at once" in stderr and "Stopped" not in stderr, stderr


def test_port_in_use_is_one_clear_line(tiny_custom_voice: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start("--model", str(tiny_custom_voice), "--no-warmup", "--uri", f"tcp://127.0.0.1:{port}")
        assert proc.wait(timeout=60) == 1
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("mlx-speechd: error:")], stderr
