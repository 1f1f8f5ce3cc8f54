"""One daemon, two models (tiny CustomVoice + tiny Base) and a voice library, serving a preset and a
clone voice to a real Wyoming client and over stdio; a voice added while it runs is seen at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_stdio import Daemon, audio_of
from test_voices import REF_TEXT, write_reference
from test_wyoming import _audio, _free_port, _read, _read_until
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from mlx_speechd.voices import VoiceKind, VoiceLibrary, VoiceParams
from mlx_speechd.voices.reference import load_reference

EXECUTABLE = str(Path(sys.executable).parent / "mlx-speechd")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> VoiceLibrary:
    folder = tmp_path_factory.mktemp("daemon-library")
    wav = write_reference(folder, seconds=19.0)
    (folder / "ref.txt").write_text(REF_TEXT + "\n")
    lib = VoiceLibrary(folder / "voices")
    settings = VoiceParams(ref_text=REF_TEXT, language="english")
    lib.add("alice", VoiceKind.CLONE, settings, audio=load_reference(wav).audio, source=str(wav))
    return lib


@pytest.fixture(scope="module")
def daemon(tiny_custom_voice: Path, tiny_base: Path, library: VoiceLibrary) -> Iterator[tuple[Daemon, int]]:
    """`--model CV --model BASE --voices-dir LIB`, serving Wyoming and stdio at once."""
    port = _free_port()
    process = Daemon(
        [
            EXECUTABLE,
            "--model",
            str(tiny_custom_voice),
            "--model",
            str(tiny_base),
            "--voices-dir",
            str(library.folder),
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--stdio",
        ]
    )
    process.wait_for(lambda m: m["type"] == "ready", timeout=180)
    yield process, port
    process.close_stdin()
    try:
        assert process.wait_exit() == 0, process.stderr[-3000:]
    finally:
        process.stop()


async def _describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        return Info.from_event(await _read(client))


async def _speak(port: int, name: str) -> list:  # type: ignore[type-arg]
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text="Hello there.", voice=SynthesizeVoice(name=name)).event())
        return await _read_until(client, "audio-stop")


def test_stdio_ready_lists_both_models_and_the_library(daemon: tuple[Daemon, int], tiny_base: Path) -> None:
    process, _ = daemon
    ready = process.wait_for(lambda m: m["type"] == "ready")
    assert [m["variant"] for m in ready["models"]] == ["custom_voice", "base"]
    voices = {voice["name"]: voice for voice in ready["voices"]}
    assert voices["ryan"]["kind"] == "preset"
    assert voices["alice"] == {
        "name": "alice",
        "languages": ["english"],
        "kind": "clone",
        "model": str(tiny_base),
        "description": "cloned from ref-19s-24000.wav",
    }
    assert ready["default_voice"] == "ryan"
    assert "Loaded" in process.stderr and " MB" in process.stderr  # memory per model is logged


async def test_wyoming_serves_a_preset_and_a_clone_voice(daemon: tuple[Daemon, int]) -> None:
    _, port = daemon
    info = await _describe(port)
    voices = {voice.name: voice for voice in info.tts[0].voices}
    assert voices["alice"].description == "cloned from ref-19s-24000.wav"
    assert voices["alice"].languages == ["en"]
    assert voices["ryan"].description == "Ryan" and "en" in voices["ryan"].languages
    preset, clone = await asyncio.gather(_speak(port, "ryan"), _speak(port, "alice"))
    assert len(_audio(preset)) > 0 and len(_audio(clone)) > 0
    assert not any(Error.is_type(e.type) for e in preset + clone)


@pytest.mark.parametrize("name", ["../voices/alice", "/etc/passwd", "alice/..", "al ice"])
async def test_wyoming_names_never_reach_the_filesystem(daemon: tuple[Daemon, int], name: str) -> None:
    _, port = daemon
    events = await _speak(port, name)
    errors = [Error.from_event(e) for e in events if Error.is_type(e.type)]
    assert [e.code for e in errors] == ["unknown-voice"] and not _audio(events)


def test_stdio_speaks_library_and_preset_voices(daemon: tuple[Daemon, int]) -> None:
    process, _ = daemon
    for rid, voice in (("s-alice", "alice"), ("s-ryan", "ryan")):
        messages = process.request({"type": "synthesize", "id": rid, "text": "Hello there.", "voice": voice})
        assert messages[-1]["type"] == "done", messages[-1]
        assert len(audio_of(messages)) > 0


async def test_a_voice_added_while_the_daemon_runs(
    daemon: tuple[Daemon, int], library: VoiceLibrary, tmp_path: Path
) -> None:
    process, port = daemon
    wav = write_reference(tmp_path, seconds=5.0)
    added = subprocess.run(
        [
            EXECUTABLE,
            "voice",
            "add",
            "bob",
            "--ref-audio",
            str(wav),
            "--x-vector-only",
            "--voices-dir",
            str(library.folder),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    info = await _describe(port)
    assert "bob" in [voice.name for voice in info.tts[0].voices]
    process.send({"type": "describe", "id": "d-bob"})
    described = process.wait_for(lambda m: m.get("id") == "d-bob")
    assert "bob" in [voice["name"] for voice in described["voices"]]
    assert len(_audio(await _speak(port, "bob"))) > 0
    messages = process.request({"type": "synthesize", "id": "s-bob", "text": "Hi.", "voice": "bob"})
    assert messages[-1]["type"] == "done"
    library.remove("bob")
    events = await _speak(port, "bob")
    assert [Error.from_event(e).code for e in events if Error.is_type(e.type)] == ["unknown-voice"]
