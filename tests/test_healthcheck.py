"""`mlx-speechd check` and `mlx-speechd download` as real subprocesses: one line, exit 0 or 1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wyoming.event import async_read_event, async_write_event
from wyoming.info import AsrProgram, Attribution, Describe, Info

from mlx_speechd import __version__
from mlx_speechd.engine import DEFAULT_MODEL

EXE = str(Path(sys.executable).parent / "mlx-speechd")
HANG_GUARD = 60.0
"""Only catches hangs: each check answers in well under a second."""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env={**os.environ, **(env or {})},
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single line the command printed (stdout when it succeeded, stderr when it failed)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    output = result.stdout if code == 0 else result.stderr
    other = result.stderr if code == 0 else result.stdout
    lines = output.splitlines()
    assert len(lines) == 1 and not other, (result.stdout, result.stderr)
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def daemon(tiny_custom_voice: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The real daemon serving the tiny model on TCP and a unix socket; yields the two URIs."""
    folder = tmp_path_factory.mktemp("daemon")
    tcp, unix = f"tcp://127.0.0.1:{free_port()}", f"unix://{folder / 'speechd.sock'}"
    log = folder / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [EXE, "--model", str(tiny_custom_voice), "--uri", tcp, "--uri", unix],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 180
        while run("check", "--uri", tcp).returncode != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield tcp, unix
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=HANG_GUARD)


def test_check_a_running_daemon_over_tcp_and_unix(daemon: tuple[str, str]) -> None:
    for uri in daemon:
        line = one_line(run("check", "--uri", uri), 0)
        assert line.startswith(f"ok: mlx-speechd {__version__}, 9 voices, "), line
        assert line.endswith("s") and float(line.rsplit(", ", 1)[1][:-1]) < HANG_GUARD


def test_closed_port_is_connection_refused() -> None:
    line = one_line(run("check", "--uri", f"tcp://127.0.0.1:{free_port()}"), 1)
    assert line.startswith("mlx-speechd: error: cannot connect to tcp://127.0.0.1:") and "refused" in line


def test_missing_unix_socket(tmp_path: Path) -> None:
    line = one_line(run("check", "--uri", f"unix://{tmp_path / 'nothing.sock'}"), 1)
    assert "no such socket" in line


def test_bad_uri() -> None:
    assert "bad --uri http://x" in one_line(run("check", "--uri", "http://x"), 1)


def serve(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]) -> Iterator[str]:
    """Run a throwaway asyncio TCP server on a thread; yields its URI."""
    loop = asyncio.new_event_loop()
    port = free_port()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handler, "127.0.0.1", port)  # type: ignore[arg-type]

    server = loop.run_until_complete(start())  # listening from here on
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=HANG_GUARD)
        loop.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    yield from serve(never_answer)


@pytest.fixture
def http_server() -> Iterator[str]:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    yield from serve(http)


@pytest.fixture
def asr_server() -> Iterator[str]:
    """A Wyoming server that answers describe with a speech-to-text program only."""
    info = Info(
        asr=[
            AsrProgram(
                name="whisper",
                attribution=Attribution(name="x", url="https://example.org"),
                installed=True,
                description=None,
                version="1",
                models=[],
            )
        ]
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        event = await async_read_event(reader)
        if event is not None and Describe.is_type(event.type):
            await async_write_event(info.event(), writer)
        writer.close()

    yield from serve(answer)


def test_no_answer_is_a_timeout(silent_server: str) -> None:
    started = time.monotonic()
    line = one_line(run("check", "--uri", silent_server, "--timeout", "0.5"), 1)
    assert line == f"mlx-speechd: error: no answer from {silent_server} within 0.5s"
    assert time.monotonic() - started < HANG_GUARD


def test_not_a_wyoming_server(http_server: str) -> None:
    line = one_line(run("check", "--uri", http_server), 1)
    assert line == (
        f"mlx-speechd: error: {http_server} did not answer describe "
        "(it closed the connection, or it is not a Wyoming server)"
    )


def test_not_a_tts_server(asr_server: str) -> None:
    line = one_line(run("check", "--uri", asr_server), 1)
    assert line == f"mlx-speechd: error: {asr_server} answers Wyoming but offers no text-to-speech program"


# ---- download ----


def cache_snapshot(hf_home: Path, repo: str, files: dict[str, str]) -> Path:
    """Lay out `repo` in a Hugging Face cache as huggingface_hub itself does (refs/main -> snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    for name, text in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text(text)
    return snapshot


def test_download_offline_and_not_cached_is_one_paragraph(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    line = one_line(run("download", env=env), 1)
    assert line.startswith(
        f"mlx-speechd: error: Model '{DEFAULT_MODEL}' is not in the local Hugging Face cache"
    )
    assert "HF_HUB_OFFLINE is set" in line and "Traceback" not in line


def test_download_of_a_cached_model_prints_its_folder(tmp_path: Path) -> None:
    repo = "someone/tiny-qwen3-tts"
    snapshot = cache_snapshot(tmp_path, repo, {"config.json": json.dumps({"model_type": "qwen3_tts"})})
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    assert one_line(run("download", repo, env=env), 0) == str(snapshot)


def test_download_rejects_a_model_that_is_not_qwen3_tts(tmp_path: Path) -> None:
    repo = "someone/llama"
    cache_snapshot(tmp_path, repo, {"config.json": json.dumps({"model_type": "llama"})})
    line = one_line(run("download", repo, env={"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}), 1)
    assert "is not a Qwen3-TTS model (model_type is 'llama')" in line


def test_download_wants_a_repo_id() -> None:
    assert "is not a Hugging Face repo id" in one_line(run("download", "./models/tiny"), 1)
