"""mlx-audio's own HTTP server (`python -m mlx_audio.server`), streaming endpoint `/v1/audio/speech`.

mlx-audio 0.6.2's server does not start requests on a machine without a GPU backend (Linux CPU):
its inference worker thread runs `mx.new_stream(mx.gpu)` (mlx_audio/server_inference.py), which
raises "[new_stream] Cannot make gpu stream without gpu backend"; the worker dies and every
request hangs. `LAUNCHER` runs the unmodified server with one shim, applied only where MLX has
no GPU: a GPU stream request gets a CPU stream. The server also needs mlx-audio's `server` extra
(fastapi, uvicorn, webrtcvad): `pip install "mlx-audio[server]"`.
"""

from __future__ import annotations

import http.client
import json
import sys
import tempfile
import time

from .baseline import interval_for
from .measure import FRAME_BYTES, Recorder, RequestResult
from .servers import ServerProcess, free_port

LAUNCHER = """
import sys
import mlx.core as mx
if not mx.is_available(mx.gpu):
    _new_stream = mx.new_stream
    mx.new_stream = lambda device: _new_stream(mx.cpu if device == mx.gpu else device)
from mlx_audio.server import main
sys.argv[0] = "mlx_audio.server"
sys.exit(main())
"""


def server_available() -> str | None:
    """None when mlx-audio's server can run here, else why not."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        import webrtcvad  # noqa: F401
    except ImportError as err:
        return f"mlx-audio's server extra is not installed ({err.name}): pip install 'mlx-audio[server]'"
    return None


class MlxAudioHttpServer:
    """The server as a subprocess; the model loads at the first request (mlx-audio loads lazily)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.port = free_port()
        self._logs = tempfile.TemporaryDirectory(prefix="mlx-audio-logs-")
        argv = [sys.executable, "-c", LAUNCHER, "--host", "127.0.0.1", "--port", str(self.port)]
        self.server = ServerProcess([*argv, "--log-dir", self._logs.name])

    def wait_ready(self) -> float:
        """Block until the server listens (its model loads at the first request)."""
        return self.server.wait_for_port(self.port)

    def request(self, text: str, voice: str, language: str, frames: int, chunk_frames: int) -> RequestResult:
        """One streamed request of `frames` frames in chunks of `chunk_frames`, as raw PCM."""
        body = {
            "model": self.model,
            "input": text,
            "voice": voice,
            "lang_code": language,
            "response_format": "pcm",
            "stream": True,
            "streaming_interval": interval_for(chunk_frames),
            "max_tokens": frames,
        }
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            recorder = Recorder()
            connection.request(
                "POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            if response.status != 200:
                raise RuntimeError(f"mlx-audio server: HTTP {response.status}: {response.read()[:300]!r}")
            pending = 0
            while data := response.read1(1 << 16):
                pending += len(data)
                if pending % FRAME_BYTES == 0:  # a whole chunk (reads may split one)
                    recorder.audio(pending)
                    pending = 0
            recorder.audio(pending)
            return recorder.result()
        finally:
            connection.close()

    def stop(self) -> None:
        self.server.stop()
        time.sleep(0.1)
        self._logs.cleanup()
