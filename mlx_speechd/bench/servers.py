"""Servers under test as real subprocesses: start, wait until ready, read their logs, stop."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .measure import ProcessMemory, process_memory

_STATS = re.compile(
    r"Reply (\d+): first audio (n/a|[\d.]+)s?, RTF ([\d.]+), \d+ frames, ([\d.]+)s audio"
    r".*peak memory (\d+) MB"
)


@dataclass(frozen=True)
class EngineStats:
    """The engine's own per-reply statistics, from the daemon's log line."""

    reply: int
    ttfa: float | None
    compute: float
    """Compute seconds (the logged RTF times the audio seconds; the RTF has 3 decimals)."""
    peak_mlx_bytes: int


def parse_stats(line: str) -> EngineStats | None:
    match = _STATS.search(line)
    if match is None:
        return None
    ttfa = None if match[2] == "n/a" else float(match[2])
    return EngineStats(int(match[1]), ttfa, float(match[3]) * float(match[4]), int(match[5]) * 1_000_000)


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
    """A subprocess whose stderr is collected line by line (and parsed for engine statistics)."""

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
        self.stats: list[EngineStats] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            with self._cond:
                self.lines.append(line)
                if (stats := parse_stats(line)) is not None:
                    self.stats.append(stats)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_stats(self, count: int, timeout: float = 10.0) -> list[EngineStats]:
        """Wait until `count` replies have been logged; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.stats) < count and self.proc.poll() is None:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    break
            if len(self.stats) < count:
                raise RuntimeError(f"expected {count} reply log lines, got {len(self.stats)}{self.tail()}")
            return list(self.stats)

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
        with self._cond:
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
