"""Our stdio JSON-lines protocol (docs/protocol.md) through a real `mlx-speechd --stdio` subprocess."""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import time
from typing import Any

from .measure import Recorder, RequestResult
from .servers import ServerProcess, daemon_argv


def stdio_available() -> str | None:
    """None when this installation has the stdio front end, else why not."""
    if importlib.util.find_spec("mlx_speechd.frontends.stdio_server") is None:
        return "mlx_speechd.frontends.stdio_server is missing"
    return None


class StdioDaemon:
    """`python -m mlx_speechd --model M --stdio`, ready once it writes its `ready` line."""

    def __init__(self, model: str, *options: str) -> None:
        self.server = ServerProcess(daemon_argv(model, "--stdio", *options), stdio=True)
        self._ids = itertools.count(1)

    def wait_ready(self) -> float:
        """Block until the daemon writes its `ready` line; returns seconds since it was launched."""
        ready = self._read()
        if ready.get("type") != "ready":
            raise RuntimeError(f"expected a 'ready' line from the stdio daemon, got {ready}")
        return time.perf_counter() - self.server.started

    def _read(self) -> dict[str, Any]:
        stdout = self.server.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            self.server.check_alive()
            raise RuntimeError(f"the stdio daemon closed its stdout{self.server.tail()}")
        message: dict[str, Any] = json.loads(line)
        return message

    def _write(self, message: dict[str, Any]) -> None:
        stdin = self.server.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(message).encode() + b"\n")
        stdin.flush()

    def request(self, text: str, voice: str | None = None) -> RequestResult:
        """One `synthesize` request; reads its audio-chunk lines until `done`."""
        request_id = next(self._ids)
        recorder = Recorder()
        self._write({"type": "synthesize", "id": request_id, "text": text, "voice": voice})
        while True:
            message = self._read()
            kind = message.get("type")
            if message.get("id") != request_id:
                continue
            if kind == "audio-chunk":
                recorder.audio(len(base64.b64decode(message["audio"])))
            elif kind == "error":
                raise RuntimeError(f"stdio error {message.get('code')}: {message.get('message')}")
            elif kind == "done":
                return recorder.result(
                    message.get("peak_memory_bytes"),
                    message.get("time_to_first_audio"),
                    message.get("compute_seconds"),
                )

    def stop(self) -> None:
        self.server.stop()
