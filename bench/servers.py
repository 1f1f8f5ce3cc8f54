"""Servers under test as real subprocesses: start, wait until ready, stop.

Their stderr is kept only to show its last lines when a server fails; no figure is read from it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from .measure import ProcessMemory, process_memory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for servers: offline hub, unbuffered output."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


def daemon_argv(model: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "mlx_speechd", "--model", model, *options]


class ServerProcess:
    """A subprocess whose stderr is collected line by line (for error messages)."""

    def __init__(
        self, argv: Sequence[str], *, stdio: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env or bench_env(),
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            with self._lock:
                self.lines.append(line)

    def wait_for_port(self, port: int, timeout: float = 300.0) -> float:
        """Wait until something accepts connections on 127.0.0.1:`port`; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(
            f"{self.argv[:4]} did not listen on port {port} within {timeout:.0f}s{self.tail()}"
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            self._reader.join(timeout=2)
            raise RuntimeError(f"{' '.join(self.argv[:6])} exited with {self.proc.returncode}{self.tail()}")

    def memory(self) -> ProcessMemory:
        return process_memory(self.pid)

    def tail(self, lines: int = 15) -> str:
        with self._lock:
            return "\n  stderr: " + "\n  stderr: ".join(self.lines[-lines:]) if self.lines else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._reader.join(timeout=5)
        return self.proc.returncode
