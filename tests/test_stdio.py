"""The JSON-lines stdio protocol: the real daemon process, driven over its stdin/stdout pipes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from mlx_speechd import __version__
from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE

SENTENCE_FRAMES = 75
"""The fixed-length test model runs each short sentence to the 75-frame minimum cap."""
SENTENCE_BYTES = SENTENCE_FRAMES * FRAME_SAMPLES * 2
LONG_TEXT = " ".join(f"Sentence number {n} is here." for n in range(40))
"""Forty short sentences: about a minute of compute if nothing cancels it."""
MAX_TEXT_CHARS = 1200
TIMEOUT = 60.0
"""Only catches hangs: every answer here takes a few seconds at most."""
FINAL = ("done", "error")
SPEAKERS = ["serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan"]

# A stand-in for a chatty library: once the daemon serves (the stdio module is imported),
# it prints to sys.stdout, writes to file descriptor 1 as C code would, and warns, over and over.
CHATTY_LAUNCHER = """
import atexit, os, sys, threading, time, warnings

stop = threading.Event()

def chatter():
    while "mlx_speechd.frontends.stdio_server" not in sys.modules:
        time.sleep(0.005)
    while not stop.wait(0.05):
        print("chatty library: print() to stdout", flush=True)
        os.write(1, b"chatty C library: write(1, ...)\\n")
        warnings.warn("chatty library warning")

thread = threading.Thread(target=chatter, daemon=True)
thread.start()
atexit.register(lambda: (stop.set(), thread.join(5)))
from mlx_speechd.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Daemon:
    """`mlx-speechd --stdio` as a child process; every stdout line is parsed and filed by id."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        )
        self.lines: list[bytes] = []
        self.messages: list[dict[str, Any]] = []
        self._stderr = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line)
                try:
                    self.messages.append(json.loads(line))
                except ValueError:
                    self.messages.append({"type": "<not json>", "line": line})
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            with self._cond:
                self._stderr += chunk

    @property
    def stderr(self) -> str:
        with self._cond:
            return self._stderr.decode(errors="replace")

    def send(self, request: dict[str, Any] | bytes) -> None:
        line = request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n"
        assert self.process.stdin is not None
        self.process.stdin.write(line)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT, since: int = 0
    ) -> dict[str, Any]:
        """The first message from number `since` on that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages[since:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    raise AssertionError(f"no matching message; stderr:\n{self.stderr[-3000:]}")
                self._cond.wait(remaining)

    def of(self, rid: Any) -> list[dict[str, Any]]:
        with self._cond:
            return [m for m in self.messages if m.get("id") == rid and m["type"] not in ("pong", "info")]

    def final(self, rid: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("id") == rid and m["type"] in FINAL, timeout)

    def request(self, request: dict[str, Any], timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Send a request and return every message for its id, up to and including the final one."""
        self.send(request)
        self.final(request["id"], timeout)
        return self.of(request["id"])

    def ping(self, rid: str) -> None:
        self.send({"type": "ping", "id": rid})
        self.wait_for(lambda m: m == {"type": "pong", "id": rid})

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """The exit code, once the process has exited and all its output has been read."""
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_daemon(model: Path, *extra: str, env: dict[str, str] | None = None, chatty: bool = False) -> Daemon:
    options = ["--model", str(model), "--stdio", *extra]
    if chatty:
        return Daemon([sys.executable, "-c", CHATTY_LAUNCHER, *options], env)
    return Daemon([str(Path(sys.executable).parent / "mlx-speechd"), *options], env)


def audio_of(messages: list[dict[str, Any]]) -> bytes:
    chunks = [m for m in messages if m["type"] == "audio-chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    return b"".join(base64.b64decode(c["audio"]) for c in chunks)


@pytest.fixture(scope="module")
def alsa_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose ALSA default device is the file plugin: each playback lands in its own file."""
    home = tmp_path_factory.mktemp("alsa-home")
    (home / ".asoundrc").write_text(
        'pcm.!default {\n  type file\n  slave.pcm "null"\n'
        f'  file "{home / "played.raw"}"\n  format "raw"\n  truncate false\n}}\n'
    )
    return home


@pytest.fixture(scope="module")
def daemon(tiny_custom_voice: Path, alsa_home: Path) -> Iterator[Daemon]:
    """One daemon shared by the tests that leave it serving; a chatty library prints all along."""
    process = start_daemon(
        tiny_custom_voice, "--max-text-chars", str(MAX_TEXT_CHARS), env={"HOME": str(alsa_home)}, chatty=True
    )
    process.wait_for(lambda m: m["type"] == "ready", timeout=120)
    yield process
    process.close_stdin()
    try:
        assert process.wait_exit() == 0, process.stderr[-3000:]
    finally:
        process.stop()


def test_ready_describes_the_daemon(daemon: Daemon) -> None:
    ready = daemon.messages[0]
    assert ready["type"] == "ready"
    assert ready["protocol"] == 1 and ready["version"] == __version__
    assert (ready["sample_rate"], ready["sample_width"], ready["channels"]) == (24000, 2, 1)
    assert ready["sample_format"] == "s16le"
    assert [v["name"] for v in ready["voices"]] == SPEAKERS
    assert all("english" in v["languages"] and "auto" in v["languages"] for v in ready["voices"])
    assert ready["default_voice"] == "ryan"
    assert ready["variant"] == "custom_voice"
    assert ready["max_text_chars"] == MAX_TEXT_CHARS
    assert ready["outputs"] == ["pcm", "play", "none"]
    daemon.send({"type": "describe", "id": "d1"})
    info = daemon.wait_for(lambda m: m["type"] == "info" and m["id"] == "d1")
    assert {k: v for k, v in info.items() if k not in ("type", "id")} == {
        k: v for k, v in ready.items() if k != "type"
    }
    daemon.ping("p-ready")


def test_synthesize_round_trip(daemon: Daemon) -> None:
    messages = daemon.request({"type": "synthesize", "id": "rt", "text": "Hello there.", "voice": "vivian"})
    assert messages[0] == {"type": "audio-start", "id": "rt", "rate": 24000, "width": 2, "channels": 1}
    assert [m["type"] for m in messages[1:-1]] == ["audio-chunk"] * (len(messages) - 2)
    pcm = audio_of(messages)
    assert len(pcm) == SENTENCE_BYTES
    assert np.abs(np.frombuffer(pcm, dtype="<i2")).max() > 0
    done = messages[-1]
    assert done["type"] == "done" and done["finish_reason"] == "frame-cap"
    assert done["frames"] == SENTENCE_FRAMES and done["audio_seconds"] == 6.0
    assert done["chunks"] == len(messages) - 2 and done["sentences"] == 1
    assert done["time_to_first_audio"] > 0 and done["real_time_factor"] > 0


def test_integer_ids_and_seeds(daemon: Daemon) -> None:
    first = daemon.request({"type": "synthesize", "id": 7, "text": "Same seed.", "seed": 3})
    second = daemon.request({"type": "synthesize", "id": 8, "text": "Same seed.", "seed": 3})
    assert audio_of(first) == audio_of(second)
    assert len(audio_of(first)) == SENTENCE_BYTES


def test_streamed_text_speaks_before_the_end(daemon: Daemon) -> None:
    daemon.send({"type": "synthesize-start", "id": "st", "voice": "aiden"})
    daemon.send({"type": "synthesize-append", "id": "st", "text": "Hello the"})
    daemon.send({"type": "synthesize-append", "id": "st", "text": "re. This is"})
    daemon.wait_for(lambda m: m["type"] == "audio-chunk" and m["id"] == "st")
    assert not [m for m in daemon.of("st") if m["type"] in FINAL]
    daemon.send({"type": "synthesize-append", "id": "st", "text": " the end"})
    daemon.send({"type": "synthesize-end", "id": "st"})
    done = daemon.final("st")
    assert done["type"] == "done" and done["sentences"] == 2, done
    assert len(audio_of(daemon.of("st"))) == 2 * SENTENCE_BYTES


def test_interleaved_requests_take_turns_by_sentence(daemon: Daemon) -> None:
    daemon.send({"type": "synthesize", "id": "long", "text": "One here. Two here. Three here."})
    daemon.send({"type": "synthesize", "id": "short", "text": "Short one."})
    long_done, short_done = daemon.final("long"), daemon.final("short")
    assert daemon.messages.index(short_done) < daemon.messages.index(long_done)
    assert len(audio_of(daemon.of("long"))) == 3 * SENTENCE_BYTES
    assert len(audio_of(daemon.of("short"))) == SENTENCE_BYTES
    assert long_done["frames"] == 3 * SENTENCE_FRAMES and short_done["frames"] == SENTENCE_FRAMES
    # Lines of the two ids interleave, but each id's own lines keep their order.
    ids = [m.get("id") for m in daemon.messages if m.get("id") in ("long", "short")]
    first_short, last_long = ids.index("short"), len(ids) - 1 - ids[::-1].index("long")
    assert first_short < last_long


def test_cancel_a_running_request(daemon: Daemon) -> None:
    daemon.send({"type": "synthesize", "id": "run", "text": LONG_TEXT})
    daemon.wait_for(lambda m: m["type"] == "audio-chunk" and m["id"] == "run")
    daemon.send({"type": "cancel", "id": "run"})
    done = daemon.final("run")
    assert done["type"] == "done" and done["finish_reason"] == "cancelled"
    assert done["frames"] < 3 * SENTENCE_FRAMES  # uncancelled: 40 sentences
    daemon.send({"type": "cancel", "id": "run"})  # no longer in flight: ignored
    daemon.ping("after-cancel")


def test_cancel_a_queued_request(daemon: Daemon) -> None:
    daemon.send({"type": "synthesize", "id": "ahead", "text": LONG_TEXT})
    daemon.send({"type": "synthesize", "id": "queued", "text": "Never spoken."})
    daemon.send({"type": "cancel", "id": "queued"})
    done = daemon.final("queued")
    assert done["type"] == "done" and done["finish_reason"] == "cancelled" and done["frames"] == 0
    assert daemon.of("queued") == [done]  # no audio at all
    daemon.send({"type": "cancel", "id": "ahead"})
    assert daemon.final("ahead")["finish_reason"] == "cancelled"


def test_wav_output_without_chunks(daemon: Daemon, tmp_path: Path) -> None:
    wav = tmp_path / "out.wav"
    messages = daemon.request(
        {
            "type": "synthesize",
            "id": "wav",
            "text": "First one. Second one.",
            "output": "none",
            "wav": str(wav),
        }
    )
    assert [m["type"] for m in messages] == ["audio-start", "done"]
    assert messages[-1]["wav"] == str(wav)
    info = soundfile.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert info.frames == 2 * SENTENCE_FRAMES * FRAME_SAMPLES


def test_wav_and_chunks_carry_the_same_audio(daemon: Daemon, tmp_path: Path) -> None:
    wav = tmp_path / "both.wav"
    messages = daemon.request({"type": "synthesize", "id": "both", "text": "Both ways.", "wav": str(wav)})
    samples, _ = soundfile.read(str(wav), dtype="int16")
    assert samples.tobytes() == audio_of(messages)


@pytest.mark.parametrize("name", ["out", "out.txt", "out.WAV"])
def test_wav_is_written_whatever_the_extension(daemon: Daemon, tmp_path: Path, name: str) -> None:
    wav = tmp_path / name
    wav.write_bytes(b"an existing file is replaced")
    rid = f"ext-{name}"
    final = daemon.request(
        {"type": "synthesize", "id": rid, "text": "Hi.", "output": "none", "wav": str(wav)}
    )[-1]
    assert final["type"] == "done" and final["wav"] == str(wav), final
    info = soundfile.info(str(wav))
    assert (info.format, info.frames) == ("WAV", SENTENCE_FRAMES * FRAME_SAMPLES)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_a_cancelled_wav_never_appears_under_its_name(daemon: Daemon, tmp_path: Path) -> None:
    wav = tmp_path / "reply.wav"
    wav.write_bytes(b"previous contents")
    daemon.send({"type": "synthesize", "id": "cw", "text": LONG_TEXT, "output": "none", "wav": str(wav)})
    daemon.wait_for(lambda m: m["type"] == "audio-start" and m["id"] == "cw")
    deadline = time.monotonic() + TIMEOUT
    while not any(p.stat().st_size > 44 for p in tmp_path.iterdir() if p != wav):  # audio is being written
        assert time.monotonic() < deadline, list(tmp_path.iterdir())
        time.sleep(0.05)
    assert wav.read_bytes() == b"previous contents"  # written elsewhere until the reply is complete
    daemon.send({"type": "cancel", "id": "cw"})
    done = daemon.final("cw")
    assert done["type"] == "done" and done["finish_reason"] == "cancelled" and "wav" not in done
    assert wav.read_bytes() == b"previous contents"
    assert list(tmp_path.iterdir()) == [wav]


def test_play_requests_play_one_after_another(daemon: Daemon, alsa_home: Path) -> None:
    reference = {
        seed: audio_of(
            daemon.request({"type": "synthesize", "id": f"ref{seed}", "text": "Hi.", "seed": seed})
        )
        for seed in (1, 2)
    }
    daemon.send({"type": "synthesize", "id": "play1", "text": "Hi.", "seed": 1, "output": "play"})
    daemon.send({"type": "synthesize", "id": "play2", "text": "Hi.", "seed": 2, "output": "play"})
    first, second = daemon.final("play1"), daemon.final("play2")
    assert first["type"] == second["type"] == "done", (first, second)
    assert daemon.messages.index(first) < daemon.messages.index(second)
    assert not [m for m in daemon.of("play1") + daemon.of("play2") if m["type"] == "audio-chunk"]
    # The file plugin writes each opening of the device to the next file (played.raw, played.raw.0001, ...);
    # the device check at admission opens it without playing.
    played = [f.read_bytes() for f in sorted(alsa_home.glob("played.raw*")) if f.stat().st_size]
    assert played == [reference[1], reference[2]]


BAD_LINES: list[tuple[bytes | dict[str, Any], str, Any]] = [
    (b"this is not json", "invalid-json", None),
    (b'{"type": "ping", "id": "x"', "invalid-json", None),
    (b"\xff\xfe{}", "invalid-json", None),
    (b"[1, 2, 3]", "invalid-request", None),
    ({"id": "b1", "text": "No type."}, "invalid-request", "b1"),
    ({"type": "sing", "id": "b2"}, "unknown-type", "b2"),
    ({"type": "synthesize", "text": "No id."}, "invalid-request", None),
    ({"type": "synthesize", "id": True, "text": "Bool id."}, "invalid-request", None),
    ({"type": "synthesize", "id": "b3"}, "invalid-request", "b3"),
    ({"type": "synthesize", "id": "b4", "text": 5}, "invalid-request", "b4"),
    ({"type": "synthesize", "id": "b5", "text": "Hi.", "seed": -1}, "invalid-request", "b5"),
    ({"type": "synthesize", "id": "b6", "text": "Hi.", "lead_in": "soon"}, "invalid-request", "b6"),
    ({"type": "synthesize", "id": "b7", "text": "Hi.", "speeker": "ryan"}, "invalid-request", "b7"),
    ({"type": "synthesize", "id": "b8", "text": "Hi.", "voice": "nobody"}, "unknown-voice", "b8"),
    ({"type": "synthesize", "id": "b9", "text": "Hi.", "language": "klingon"}, "invalid-request", "b9"),
    ({"type": "synthesize", "id": "b10", "text": "x" * (MAX_TEXT_CHARS + 1)}, "text-too-long", "b10"),
    ({"type": "synthesize", "id": "b11", "text": "Hi.", "output": "speaker"}, "invalid-request", "b11"),
    ({"type": "synthesize", "id": "b12", "text": "Hi.", "output": "none"}, "invalid-request", "b12"),
    ({"type": "synthesize", "id": "b13", "text": "Hi.", "wav": "/no/such/dir/a.wav"}, "output-failed", "b13"),
    ({"type": "synthesize-append", "id": "b14", "text": "Hi."}, "unknown-request", "b14"),
    ({"type": "synthesize-end", "id": "b15"}, "unknown-request", "b15"),
    ({"type": "ping"}, "invalid-request", None),
    (b'"just a string"', "invalid-request", None),
    (b"[" * 100_000, "invalid-json", None),  # deeper than the JSON parser's recursion
    (
        b'{"type": "synthesize", "id": "b16", "text": "Hi \\ud800."}',
        "invalid-request",
        "b16",
    ),  # lone surrogate
    ({"type": "synthesize", "id": "b17", "text": "Hi.", "instruct": "\udfff"}, "invalid-request", "b17"),
    ({"type": "synthesize", "id": "b18", "text": "Hi.", "wav": "/"}, "output-failed", "b18"),  # a directory
    ({"type": "synthesize", "id": "b19", "text": "Hi.", "wav": "a\u0000.wav"}, "output-failed", "b19"),
]


@pytest.mark.parametrize(
    ("line", "code", "rid"), BAD_LINES, ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(BAD_LINES)]
)
def test_bad_input_gets_an_error_and_the_next_request_is_served(
    daemon: Daemon, line: bytes | dict[str, Any], code: str, rid: Any
) -> None:
    before = len(daemon.messages)
    daemon.send(line if isinstance(line, dict) else line + b"\n")
    daemon.ping(f"after-bad-line-{before}")
    error = daemon.wait_for(lambda m: m["type"] == "error", since=before)
    assert error["code"] == code and error["id"] == rid, error
    assert error["message"]
    new = daemon.messages[before:]
    assert sorted(m["type"] for m in new) == ["error", "pong"], new  # nothing was synthesized


def test_an_overlong_line_is_discarded_up_to_its_newline(daemon: Daemon) -> None:
    limit = daemon.messages[0]["max_line_bytes"]
    long_request = {"type": "synthesize", "id": "huge", "text": "y" * (limit + 100_000)}
    before = len(daemon.messages)
    # The long line, then a good request, in one write: the reader must resume right after the newline.
    daemon.send(json.dumps(long_request).encode() + b'\n{"type":"ping","id":"after-huge"}\n')
    daemon.wait_for(lambda m: m == {"type": "pong", "id": "after-huge"})
    new = daemon.messages[before:]
    assert [m["type"] for m in new] == ["error", "pong"]
    assert new[0]["code"] == "line-too-long" and new[0]["id"] is None


def test_too_much_streamed_text_ends_the_stream_with_an_error(daemon: Daemon) -> None:
    daemon.send({"type": "synthesize-start", "id": "flood"})
    daemon.send({"type": "synthesize-append", "id": "flood", "text": "word " * (MAX_TEXT_CHARS // 10)})
    daemon.send({"type": "synthesize-append", "id": "flood", "text": "word " * (MAX_TEXT_CHARS // 5)})
    final = daemon.final("flood")
    assert final["type"] == "error" and final["code"] == "text-too-long"
    daemon.send({"type": "synthesize-append", "id": "flood", "text": "late"})  # no longer in flight
    error = daemon.wait_for(lambda m: m.get("id") == "flood" and m.get("code") == "unknown-request")
    assert error["type"] == "error"
    assert [m["type"] for m in daemon.of("flood")].count("done") == 0


def test_a_reused_id_ends_the_request_in_flight(daemon: Daemon) -> None:
    daemon.send({"type": "synthesize", "id": "dup", "text": LONG_TEXT})
    daemon.send({"type": "synthesize", "id": "dup", "text": "Again."})
    final = daemon.final("dup")
    assert final["type"] == "error" and final["code"] == "duplicate-id"
    daemon.ping("after-dup")
    assert [m["type"] for m in daemon.of("dup")].count("error") == 1
    assert not [m for m in daemon.of("dup") if m["type"] == "done"]


def test_stdout_carries_only_protocol_lines(daemon: Daemon) -> None:
    """Runs after the others: the chatty library printed and warned the whole time, onto stderr."""
    daemon.ping("last")
    assert all(json.loads(line)["type"] for line in daemon.lines)
    assert not [m for m in daemon.messages if m["type"] == "<not json>"]
    stderr = daemon.stderr
    assert "chatty library: print() to stdout" in stderr
    assert "chatty C library: write(1, ...)" in stderr
    assert "chatty library warning" in stderr
    assert "Loaded speech tokenizer" not in stderr  # mlx-audio prints while loading: DEBUG lines


# ---- daemons of their own: end of input, signals, a vanished client ----
def test_eof_finishes_the_requests_in_flight(tiny_custom_voice: Path) -> None:
    daemon = start_daemon(tiny_custom_voice)
    try:
        daemon.wait_for(lambda m: m["type"] == "ready", timeout=120)
        daemon.send({"type": "synthesize", "id": "whole", "text": "Finish me."})
        daemon.send({"type": "synthesize-start", "id": "open"})
        daemon.send({"type": "synthesize-append", "id": "open", "text": "An unfinished sentence"})
        daemon.close_stdin()
        assert daemon.wait_exit() == 0, daemon.stderr[-3000:]
        for rid in ("whole", "open"):
            done = daemon.final(rid)
            assert done["type"] == "done" and done["frames"] == SENTENCE_FRAMES, done
            assert len(audio_of(daemon.of(rid))) == SENTENCE_BYTES
        assert daemon.messages[-1]["type"] == "done"
        assert "Traceback" not in daemon.stderr
    finally:
        daemon.stop()


def test_eof_cancel_cancels_the_requests_in_flight(tiny_custom_voice: Path) -> None:
    daemon = start_daemon(tiny_custom_voice, "--stdio-eof", "cancel")
    try:
        daemon.wait_for(lambda m: m["type"] == "ready", timeout=120)
        daemon.send({"type": "synthesize", "id": "long", "text": LONG_TEXT})
        daemon.wait_for(lambda m: m["type"] == "audio-chunk")
        daemon.close_stdin()
        assert daemon.wait_exit(timeout=15) == 0, daemon.stderr[-3000:]
        assert daemon.final("long")["finish_reason"] == "cancelled"
        assert "Traceback" not in daemon.stderr
    finally:
        daemon.stop()


def test_sigterm_stops_promptly_and_cleanly(tiny_custom_voice: Path) -> None:
    daemon = start_daemon(tiny_custom_voice)
    try:
        daemon.wait_for(lambda m: m["type"] == "ready", timeout=120)
        daemon.send({"type": "synthesize", "id": "long", "text": LONG_TEXT})
        daemon.wait_for(lambda m: m["type"] == "audio-chunk")
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait_exit(timeout=15) == 0, daemon.stderr[-3000:]
        assert "Traceback" not in daemon.stderr
        assert not [m for m in daemon.messages if m["type"] == "<not json>"]
    finally:
        daemon.stop()


def test_a_closed_stdout_ends_the_daemon_quietly(tiny_custom_voice: Path, tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlx-speechd"), "--model", str(tiny_custom_voice), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    assert process.stdin is not None and process.stdout is not None
    try:
        assert json.loads(process.stdout.readline())["type"] == "ready"
        process.stdin.write(json.dumps({"type": "synthesize", "id": "a", "text": LONG_TEXT}).encode() + b"\n")
        process.stdin.flush()
        while json.loads(process.stdout.readline())["type"] != "audio-chunk":
            pass
        log_before = len(stderr.read_bytes())
        process.stdout.close()  # the parent stops reading (as if it died); stdin stays open
        assert process.wait(timeout=15) == 0
        tail = stderr.read_bytes()[log_before:].decode(errors="replace")
        assert "Traceback" not in tail and "BrokenPipe" not in tail, tail
        assert len(tail.splitlines()) < 10, tail
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_parent_that_stops_reading_stdout_holds_the_reply_then_gets_client_too_slow(
    tiny_custom_voice: Path, tmp_path: Path
) -> None:
    """The parent asks for a minute of audio and reads nothing: the engine synthesizes only what fills
    the pipe and the reply's unsent allowance, cancels the reply after the stall timeout, and the
    parent gets the audio held so far, then an error line; the daemon serves on."""
    stderr = tmp_path / "stderr.log"
    command = [str(Path(sys.executable).parent / "mlx-speechd"), "--model", str(tiny_custom_voice), "--stdio"]
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--max-unsent-seconds", "1", "--stall-timeout", "2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    assert process.stdin is not None and process.stdout is not None

    def send(request: dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.flush()

    try:
        assert json.loads(process.stdout.readline())["type"] == "ready"
        send({"type": "synthesize", "id": "unread", "text": LONG_TEXT})
        deadline = time.monotonic() + TIMEOUT
        while (spoken := re.search(r"Reply 1: .* in (\d+) sentence\(s\)", stderr.read_text())) is None:
            assert time.monotonic() < deadline, stderr.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        assert "Reply 1: the client read no audio for" in stderr.read_text()
        assert int(spoken[1]) <= 3, spoken  # of the 40 asked for
        messages: list[dict[str, Any]] = []  # the parent reads again: the held audio, then the error
        while not messages or messages[-1]["type"] not in FINAL:
            messages.append(json.loads(process.stdout.readline()))
        assert messages[-1]["id"] == "unread" and messages[-1]["code"] == "client-too-slow", messages[-1]
        assert 0 < len(audio_of(messages)) <= int(spoken[1]) * SENTENCE_BYTES
        send({"type": "synthesize", "id": "next", "text": "Next."})
        while (message := json.loads(process.stdout.readline()))["type"] not in FINAL:
            pass
        assert message["type"] == "done" and message["id"] == "next", message
        process.stdin.close()
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_stdio_and_wyoming_share_one_engine(tiny_custom_voice: Path) -> None:
    """`--stdio --uri ...`: one process, one engine; a Wyoming client is served while stdio requests run."""
    from wyoming.audio import AudioChunk
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    daemon = start_daemon(tiny_custom_voice, "--uri", f"tcp://127.0.0.1:{port}")

    async def wyoming_synthesize(text: str) -> bytes:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text=text).event())
            audio = b""
            while (event := await asyncio.wait_for(client.read_event(), TIMEOUT)) is not None:
                if AudioChunk.is_type(event.type):
                    audio += AudioChunk.from_event(event).audio
                if event.type == "audio-stop":
                    return audio
        raise AssertionError("the Wyoming server closed the connection")

    try:
        daemon.wait_for(lambda m: m["type"] == "ready", timeout=120)
        daemon.send({"type": "synthesize", "id": "stdio", "text": "From stdio. Second sentence."})
        daemon.wait_for(lambda m: m["type"] == "audio-chunk")
        assert len(asyncio.run(wyoming_synthesize("From Wyoming."))) == SENTENCE_BYTES
        assert daemon.final("stdio")["frames"] == 2 * SENTENCE_FRAMES
        assert len(audio_of(daemon.of("stdio"))) == 2 * SENTENCE_BYTES
        daemon.close_stdin()  # the end of stdin ends the whole daemon, Wyoming included
        assert daemon.wait_exit() == 0, daemon.stderr[-3000:]
        # One engine: its reply numbers count both front ends' requests.
        assert "Reply 1:" in daemon.stderr and "Reply 2:" in daemon.stderr
    finally:
        daemon.stop()
