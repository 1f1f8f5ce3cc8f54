"""The Wyoming server: the real daemon process, driven by the wyoming library's own client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient, AsyncTcpClient, AsyncUnixClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from mlx_speechd import __version__
from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_WIDTH
from mlx_speechd.engine import Engine, EngineConfig
from mlx_speechd.frontends.wyoming_handler import STREAM_IDLE_FACTOR
from mlx_speechd.frontends.wyoming_server import build_info

SENTENCE_BYTES = 75 * FRAME_SAMPLES * SAMPLE_WIDTH
"""Audio of one short sentence: the fixed-length test model runs to the 75-frame minimum cap."""
LONG_SENTENCE = " ".join(["this sentence keeps going for quite a while"] * 8) + "."
"""352 characters, cut to pieces of 299 and 52 (the 300-character sentence limit); the first one's cap
of about 750 frames is well over ten seconds of compute here."""
SPEAKERS = ["serena", "vivian", "uncle_fu", "ryan", "aiden", "ono_anna", "sohee", "eric", "dylan"]
ZEROCONF_NAME = "mlx-speechd-" + "x" * 60
"""Longer than the 63 bytes an mDNS label may have: advertising it fails, whatever the network."""
IDLE_TIMEOUT = 2.0
EVENT_TIMEOUT = 1.0
STALL_TIMEOUT = 3.0
"""The guarded daemon's --idle-timeout, --event-timeout and --stall-timeout (seconds)."""
READ_TIMEOUT = 60.0
"""Only catches hangs: every answer here takes a few seconds at most."""


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    stderr: Path
    socket_path: Path | None = None

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(model: Path, folder: Path, *extra: str, socket_path: Path | None = None) -> Daemon:
    port = _free_port()
    stderr = folder / "stderr.log"
    command = [
        str(Path(sys.executable).parent / "mlx-speechd"),
        "--model",
        str(model),
        "--uri",
        f"tcp://127.0.0.1:{port}",
        *(["--uri", f"unix://{socket_path}"] if socket_path else []),
        *extra,
    ]
    with stderr.open("wb") as err:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    return Daemon(process, port, stderr, socket_path)


def _wait_ready(daemon: Daemon, timeout: float = 180.0) -> None:
    async def describe() -> bool:
        try:
            async with daemon.client() as client:
                await client.write_event(Describe().event())
                event = await asyncio.wait_for(client.read_event(), 10)
                return event is not None and Info.is_type(event.type)
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(f"daemon exited with {daemon.process.returncode}:\n{daemon.log()}")
        if asyncio.run(describe()):
            return
        time.sleep(0.2)
    pytest.fail(f"daemon did not answer describe within {timeout}s:\n{daemon.log()}")


def _stop(daemon: Daemon) -> None:
    daemon.process.terminate()
    try:
        daemon.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait()


@pytest.fixture(scope="module")
def daemons(
    tiny_custom_voice: Path, tiny_custom_voice_ends: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Daemon]]:
    """The daemons start together (loading overlaps); tests wait for the one they use."""
    small_folder = tmp_path_factory.mktemp("wyoming-small")
    cached_folder = tmp_path_factory.mktemp("wyoming-cached")
    launched = {
        # sentences that end by EOS, so the audio cache stores them
        "cached": _launch(
            tiny_custom_voice_ends, cached_folder, "--audio-cache-dir", str(cached_folder / "audio-cache")
        ),
        "main": _launch(tiny_custom_voice, tmp_path_factory.mktemp("wyoming-main")),
        # short text limit, two connections at most, a unix socket, a zeroconf name that cannot be advertised
        "small": _launch(
            tiny_custom_voice,
            small_folder,
            "--max-text-chars",
            "50",
            "--max-connections",
            "2",
            "--zeroconf",
            ZEROCONF_NAME,
            socket_path=small_folder / "speechd.sock",
        ),
        # three connections at most, short idle and event timeouts
        "guarded": _launch(
            tiny_custom_voice,
            tmp_path_factory.mktemp("wyoming-guarded"),
            "--max-connections",
            "3",
            "--idle-timeout",
            str(IDLE_TIMEOUT),
            "--event-timeout",
            str(EVENT_TIMEOUT),
            "--stall-timeout",
            str(STALL_TIMEOUT),
            "--max-unsent-seconds",
            "1",
        ),
    }
    yield launched
    for daemon in launched.values():
        _stop(daemon)


@pytest.fixture(scope="module")
def daemon(daemons: dict[str, Daemon]) -> Daemon:
    _wait_ready(daemons["main"])
    return daemons["main"]


@pytest.fixture(scope="module")
def guarded_daemon(daemons: dict[str, Daemon]) -> Daemon:
    _wait_ready(daemons["guarded"])
    return daemons["guarded"]


@pytest.fixture(scope="module")
def small_daemon(daemons: dict[str, Daemon]) -> Daemon:
    _wait_ready(daemons["small"])
    return daemons["small"]


@pytest.fixture(scope="module")
def cached_daemon(daemons: dict[str, Daemon]) -> Daemon:
    _wait_ready(daemons["cached"])
    return daemons["cached"]


async def _read(client: AsyncClient) -> Event:
    event = await asyncio.wait_for(client.read_event(), READ_TIMEOUT)
    assert event is not None, "the server closed the connection"
    return event


async def _read_until(client: AsyncClient, end_type: str) -> list[Event]:
    events = []
    while True:
        events.append(await _read(client))
        if events[-1].type == end_type:
            return events


def _audio(events: list[Event]) -> bytes:
    return b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))


def _types(events: list[Event]) -> list[str]:
    """Event types with runs of audio chunks collapsed to one entry."""
    collapsed: list[str] = []
    for event in events:
        if not (event.type == "audio-chunk" and collapsed and collapsed[-1] == "audio-chunk"):
            collapsed.append(event.type)
    return collapsed


async def _synthesize(client: AsyncClient, text: str, voice: SynthesizeVoice | None = None) -> list[Event]:
    await client.write_event(Synthesize(text=text, voice=voice).event())
    return await _read_until(client, "audio-stop")


# ---- describe and plain synthesize ----


async def test_describe_lists_the_models_speakers(daemon: Daemon) -> None:
    async with daemon.client() as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await _read(client))
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.name == "mlx-speechd"
    assert program.installed and program.supports_synthesize_streaming
    assert program.version == __version__
    assert "Qwen3-TTS" in f"{program.attribution.name} {program.description}"
    assert "mlx-audio" in program.attribution.name + program.attribution.url
    assert [voice.name for voice in program.voices] == SPEAKERS
    for voice in program.voices:
        assert voice.installed
        assert set(voice.languages) == {"zh", "en", "de", "it", "pt", "es", "ja", "ko", "fr", "ru"}
    assert program.voices[2].description == "Uncle Fu"


async def test_plain_synthesize_streams_audio_chunks(daemon: Daemon) -> None:
    async with daemon.client() as client:
        events = await _synthesize(client, "Hello there.", SynthesizeVoice(name="vivian"))
    assert _types(events) == ["audio-start", "audio-chunk", "audio-stop"]
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (24000, 2, 1)
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert len(chunks) > 3  # decoded piece by piece, not one buffer per sentence
    assert all((c.rate, c.width, c.channels) == (24000, 2, 1) for c in chunks)
    assert len(_audio(events)) == SENTENCE_BYTES


async def test_home_assistant_stream(daemon: Daemon) -> None:
    """Home Assistant's exact sequence, text split mid-word; then a plain request on the same connection."""
    async with daemon.client() as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="ryan")).event())
        for piece in ["Hel", "lo there.", " Ho"]:  # the first sentence is complete once "Ho" arrives
            await client.write_event(SynthesizeChunk(text=piece).event())
        sentence_complete = time.perf_counter()
        early = [await _read(client)]
        while not AudioChunk.is_type(early[-1].type):
            early.append(await _read(client))
        first_audio = time.perf_counter() - sentence_complete
        for piece in ["w are y", "ou?"]:
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(Synthesize(text="Hello there. How are you?").event())  # compat: ignored
        await client.write_event(SynthesizeStop().event())
        events = early + await _read_until(client, "synthesize-stopped")

        assert _types(events) == ["audio-start", "audio-chunk", "audio-stop", "synthesize-stopped"]
        assert len(_audio(events)) == 2 * SENTENCE_BYTES  # two sentences; the compat synthesize added nothing
        print(f"first audio {first_audio * 1000:.0f} ms after the first sentence was complete")

        later = await _synthesize(client, "Bye now.")  # streaming state was reset at synthesize-stop
        assert _types(later) == ["audio-start", "audio-chunk", "audio-stop"]
        assert len(_audio(later)) == SENTENCE_BYTES


async def test_repeated_sentence_is_served_from_the_audio_cache(cached_daemon: Daemon) -> None:
    """Unseeded too: the second request gets the first one's audio, in the same chunks."""
    text = "A sentence asked for twice."
    async with cached_daemon.client() as client:
        fresh = await _synthesize(client, text)
    async with cached_daemon.client() as client:
        again = await _synthesize(client, text)
    sizes = [len(AudioChunk.from_event(e).audio) for e in fresh if AudioChunk.is_type(e.type)]
    assert [len(AudioChunk.from_event(e).audio) for e in again if AudioChunk.is_type(e.type)] == sizes
    assert _audio(again) == _audio(fresh) and len(sizes) > 1
    deadline = time.monotonic() + READ_TIMEOUT
    while "1 sentence(s), 1 from the audio cache" not in cached_daemon.log():
        assert time.monotonic() < deadline, cached_daemon.log()
        time.sleep(0.05)
    assert "1 sentence(s), 0 from the audio cache" in cached_daemon.log()


async def test_describe_answers_during_synthesis_and_disconnect_cancels(daemon: Daemon) -> None:
    busy = daemon.client()
    await busy.connect()
    await busy.write_event(Synthesize(text=LONG_SENTENCE).event())
    assert AudioStart.is_type((await _read(busy)).type)
    assert AudioChunk.is_type((await _read(busy)).type)  # the long sentence is being synthesized now

    latencies = []
    async with daemon.client() as client:
        for _ in range(10):
            started = time.perf_counter()
            await client.write_event(Describe().event())
            assert Info.is_type((await _read(client)).type)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    print(
        f"describe during synthesis: max {max(latencies) * 1000:.1f} ms, "
        f"median {sorted(latencies)[5] * 1000:.1f} ms"
    )
    assert max(latencies) < 1.0  # Home Assistant's limit; typically a few milliseconds

    await busy.disconnect()  # mid-reply: the engine drops the rest of the long sentence
    left = time.perf_counter()
    async with daemon.client() as client:
        await client.write_event(Synthesize(text="Next please.").event())
        assert AudioStart.is_type((await _read(client)).type)
        waited = time.perf_counter() - left
        events = await _read_until(client, "audio-stop")
    assert len(_audio(events)) == SENTENCE_BYTES
    # Without cancelling, the long sentence (over 10 s of compute) would run to its end first.
    assert waited < 5.0
    print(f"first audio {waited * 1000:.0f} ms after the busy client left")
    assert "finished: cancelled" in daemon.log()


async def test_concurrent_clients_all_get_complete_audio(daemon: Daemon) -> None:
    async def one(voice: str) -> bytes:
        async with daemon.client() as client:
            return _audio(await _synthesize(client, "Hi there.", SynthesizeVoice(name=voice)))

    results = await asyncio.gather(one("serena"), one("eric"), one("dylan"))
    assert [len(pcm) for pcm in results] == [SENTENCE_BYTES] * 3


# ---- errors end the reply ----


async def test_unknown_voice_ends_the_reply(daemon: Daemon) -> None:
    async with daemon.client() as client:
        events = await _synthesize(client, "Hello.", SynthesizeVoice(name="nobody"))
        assert _types(events) == ["error", "audio-stop"]
        error = Error.from_event(events[0])
        assert error.code == "unknown-voice" and "nobody" in error.text

        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event())
        events = await _read_until(client, "synthesize-stopped")
        assert _types(events) == ["error", "audio-stop", "synthesize-stopped"]
        # Home Assistant goes on sending the stream: all of it is ignored until synthesize-stop
        await client.write_event(SynthesizeChunk(text="Hello there. ").event())
        await client.write_event(Synthesize(text="Hello there.").event())
        await client.write_event(SynthesizeStop().event())

        events = await _synthesize(client, "Fine.", SynthesizeVoice(name="aiden"))
        assert _types(events) == ["audio-start", "audio-chunk", "audio-stop"]
        assert len(_audio(events)) == SENTENCE_BYTES


async def test_malformed_request_is_an_error_not_a_crash(daemon: Daemon) -> None:
    async with daemon.client() as client:
        await client.write_event(Event(type="synthesize", data={"text": 42}))
        events = await _read_until(client, "audio-stop")
        assert Error.from_event(events[0]).code == "invalid-request"
        await client.write_event(Event(type="synthesize", data={"text": "Hi.", "voice": "ryan"}))
        events = await _read_until(client, "audio-stop")
        assert Error.from_event(events[0]).code == "invalid-request"


async def test_text_too_long_ends_the_reply(small_daemon: Daemon) -> None:
    async with small_daemon.client() as client:
        events = await _synthesize(client, "This text is longer than the fifty characters allowed here.")
        assert _types(events) == ["error", "audio-stop"]
        assert Error.from_event(events[0]).code == "text-too-long"

        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="Hello there. Th").event())
        first = await _read(client)  # the first sentence is spoken...
        assert AudioStart.is_type(first.type)
        await client.write_event(SynthesizeChunk(text="is part makes the text too long to say.").event())
        events = [first, *await _read_until(client, "synthesize-stopped")]  # ...then the limit ends the reply
        assert _types(events) == ["audio-start", "audio-chunk", "error", "audio-stop", "synthesize-stopped"]
        assert Error.from_event(next(e for e in events if Error.is_type(e.type))).code == "text-too-long"
        await client.write_event(SynthesizeStop().event())

        events = await _synthesize(client, "Short.")
        assert len(_audio(events)) == SENTENCE_BYTES


# ---- hostile clients ----

GARBAGE = {
    "not json": b"hello there\n",
    "json that is not an object": b"[1, 2, 3]\n",
    "invalid utf-8": b'{"type": "describe", "x": "\xff\xfe"}\n',
    "huge data_length": json.dumps({"type": "synthesize", "data_length": 10**12}).encode() + b"\n",
    "huge payload_length": json.dumps({"type": "audio-chunk", "payload_length": 10**12}).encode() + b"\n",
    "negative data_length": json.dumps({"type": "synthesize", "data_length": -5}).encode() + b"\n",
    "invalid utf-8 data": b'{"type": "synthesize", "data_length": 4}\n\xff\xfe\xfd\xfc',
    "deeply nested json": b"[" * 20000 + b"\n",
    "oversized header line": b'{"type": "describe", "pad": "' + b"x" * 300_000,
}


@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
async def test_garbage_disconnects_only_that_client(daemon: Daemon, garbage: str) -> None:
    rss_before = daemon.rss_kb()
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
    writer.write(GARBAGE[garbage])
    # keep sending what the announced lengths promise: the server must close before taking it all
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < 64 * 1024 * 1024 and not reader.at_eof():
            writer.write(b"y" * 65536)
            await asyncio.wait_for(writer.drain(), 10)
            sent += 65536
            await asyncio.sleep(0)
    with contextlib.suppress(ConnectionResetError):  # a reset when the server closed with data unread
        assert await asyncio.wait_for(reader.read(), 10) == b""  # disconnected
    writer.close()
    assert sent < 64 * 1024 * 1024
    assert daemon.rss_kb() - rss_before < 30_000  # nothing like the announced size was allocated

    async with daemon.client() as client:  # everyone else is still served
        await client.write_event(Describe().event())
        assert Info.is_type((await _read(client)).type)
    assert daemon.process.poll() is None
    assert "broke the protocol" in daemon.log()


async def test_flooding_client_is_disconnected(daemon: Daemon) -> None:
    async with daemon.client() as client:
        for _ in range(6):  # one answered at a time, three more may wait: the fifth is too many
            await client.write_event(Synthesize(text="Flood.").event())
        while await asyncio.wait_for(client.read_event(), READ_TIMEOUT) is not None:
            pass  # whatever audio was already on its way, then the end of the connection
    assert "requests in flight" in daemon.log()


async def test_a_lone_surrogate_is_an_invalid_request(daemon: Daemon) -> None:
    """`\\ud800` is valid JSON but no character: an error for that request, like any bad text."""
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)

    async def send(event_type: str, data: str = "") -> None:
        header = {"type": event_type, "data_length": len(data)}
        writer.write(json.dumps(header).encode() + b"\n" + data.encode())
        await writer.drain()

    async def read_until(end_type: str) -> list[Event]:
        events = []
        while (event := await asyncio.wait_for(async_read_event(reader), READ_TIMEOUT)) is not None:
            events.append(event)
            if event.type == end_type:
                return events
        raise AssertionError(f"the server closed the connection after {events}")

    try:
        await send("synthesize", '{"text": "Hello \\ud800 there."}')
        events = await read_until("audio-stop")
        assert _types(events) == ["error", "audio-stop"]
        assert Error.from_event(events[0]).code == "invalid-request"

        await send("synthesize", '{"text": "Hello.", "voice": {"name": "\\udfff"}}')
        assert Error.from_event((await read_until("audio-stop"))[0]).code == "invalid-request"

        await send("synthesize-start")
        await send("synthesize-chunk", '{"text": "Hello \\ud800 there. "}')
        await send("synthesize-stop")
        events = await read_until("synthesize-stopped")
        assert _types(events) == ["error", "audio-stop", "synthesize-stopped"]
        assert Error.from_event(events[0]).code == "invalid-request"

        await send("synthesize", '{"text": "Fine."}')  # the connection goes on
        assert len(_audio(await read_until("audio-stop"))) == SENTENCE_BYTES
    finally:
        writer.close()
    assert "engine-failure" not in daemon.log()


# ---- idle and slow clients ----


async def _eof_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (reading whatever it sent)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def test_a_silent_connection_is_closed_when_idle(guarded_daemon: Daemon) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded_daemon.port)
    assert not await _eof_within(reader, IDLE_TIMEOUT / 2)
    assert await _eof_within(reader, IDLE_TIMEOUT + 5)
    writer.close()
    assert "idle for" in guarded_daemon.log()


async def test_a_client_that_never_reads_is_cut_off_without_hogging_engine(guarded_daemon: Daemon) -> None:
    """Asked for far more audio than the socket buffers hold and reading none: the reply is held and the
    connection closed once a write waited the stall timeout; the engine serves others meanwhile.
    (The engine's own stall cancel, client-too-slow, is tested in test_backpressure.py.)"""
    sentences = 40  # 40 x 6 s of audio, 11.5 MB: more than any socket buffer
    start = len(guarded_daemon.log())
    closed = f"read nothing for {STALL_TIMEOUT:g}s; closing the connection"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", guarded_daemon.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    await async_write_event(Synthesize(text=" ".join(["Again."] * sentences)).event(), writer)
    deadline = time.monotonic() + READ_TIMEOUT
    while closed not in guarded_daemon.log()[start:]:
        assert time.monotonic() < deadline, guarded_daemon.log()[start:]
        async with guarded_daemon.client() as other:  # served while the stuck reply waits
            assert len(_audio(await _synthesize(other, "Meanwhile."))) == SENTENCE_BYTES
        await asyncio.sleep(0.5)
    assert await _eof_within(reader, 10)
    writer.close()
    log = guarded_daemon.log()[start:]
    spoken = re.search(r"Reply \d+: .* in (\d+) sentence\(s\), .*finished: cancelled", log)
    assert spoken is not None and int(spoken[1]) < sentences // 2, log


async def test_an_event_must_arrive_in_full_once_started(guarded_daemon: Daemon) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded_daemon.port)
    header = json.dumps(Describe().event().to_dict()).encode() + b"\n"

    async def dribble() -> None:
        for byte in header:  # one byte at a time, slower than the event timeout allows
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(EVENT_TIMEOUT / 4)

    dribbling = asyncio.create_task(dribble())
    assert await _eof_within(reader, EVENT_TIMEOUT + 5)
    dribbling.cancel()
    writer.close()
    assert "took longer than" in guarded_daemon.log()


async def test_idle_connections_make_room_for_a_newcomer(guarded_daemon: Daemon) -> None:
    """All places taken by idle connections: a describe is still answered, at the oldest one's expense."""
    silent = [await asyncio.open_connection("127.0.0.1", guarded_daemon.port) for _ in range(2)]
    await asyncio.sleep(0.1)
    half_header = await asyncio.open_connection("127.0.0.1", guarded_daemon.port)
    half_header[1].write(b'{"type": "desc')
    for _ in range(3):  # more newcomers than places: each one is served
        async with guarded_daemon.client() as client:
            await client.write_event(Describe().event())
            assert Info.is_type((await _read(client)).type)
    for reader, _ in [*silent, half_header]:  # the idle ones made room, oldest first
        assert await _eof_within(reader, 10)
    for _, writer in [*silent, half_header]:
        writer.close()
    assert "idle: the connection limit (3) is reached" in guarded_daemon.log()


async def test_connections_in_use_are_not_closed_for_a_newcomer(guarded_daemon: Daemon) -> None:
    """A reply longer than the idle timeout, and an open text stream quiet for longer, both go on."""
    talking, streaming = guarded_daemon.client(), guarded_daemon.client()
    await talking.connect()
    await streaming.connect()
    await streaming.write_event(SynthesizeStart().event())
    opened = time.monotonic()
    await talking.write_event(Synthesize(text="One here. Two here. Three here.").event())
    async with guarded_daemon.client() as idle:
        await idle.write_event(Describe().event())
        assert Info.is_type((await _read(idle)).type)
        await asyncio.sleep(0.2)
        async with guarded_daemon.client() as newcomer:  # takes the idle connection's place
            await newcomer.write_event(Describe().event())
            assert Info.is_type((await _read(newcomer)).type)
            assert await asyncio.wait_for(idle.read_event(), 10) is None
            await newcomer.write_event(SynthesizeStart().event())  # busy too now
            await asyncio.sleep(0.2)
            async with guarded_daemon.client() as refused:  # nobody else is idle
                assert Error.from_event(await _read(refused)).code == "busy"
    await asyncio.sleep(max(0.0, IDLE_TIMEOUT + 0.5 - (time.monotonic() - opened)))
    await streaming.write_event(SynthesizeChunk(text="Still here.").event())
    await streaming.write_event(SynthesizeStop().event())
    events = await _read_until(talking, "audio-stop")
    assert len(_audio(events)) == 3 * SENTENCE_BYTES
    events = await _read_until(streaming, "synthesize-stopped")
    assert len(_audio(events)) == SENTENCE_BYTES
    await talking.disconnect()
    await streaming.disconnect()


async def test_an_open_text_stream_has_a_longer_bound(guarded_daemon: Daemon) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded_daemon.port)
    writer.write(json.dumps(SynthesizeStart().event().to_dict()).encode() + b"\n")
    assert not await _eof_within(reader, IDLE_TIMEOUT + 1)
    assert await _eof_within(reader, STREAM_IDLE_FACTOR * IDLE_TIMEOUT + 5)
    writer.close()


# ---- listeners ----


async def test_unix_socket(small_daemon: Daemon) -> None:
    assert small_daemon.socket_path is not None
    async with AsyncUnixClient(small_daemon.socket_path) as client:
        await client.write_event(Describe().event())
        assert Info.is_type((await _read(client)).type)
        events = await _synthesize(client, "Over the socket.")
    assert len(_audio(events)) == SENTENCE_BYTES


async def test_extra_connections_get_an_error_and_are_closed(small_daemon: Daemon) -> None:
    """Both connections have a text stream open (busy): a third one is refused, not served in their place."""
    first, second = small_daemon.client(), small_daemon.client()
    await first.connect()
    await second.connect()
    await first.write_event(Describe().event())
    await second.write_event(Describe().event())
    assert Info.is_type((await _read(first)).type)
    assert Info.is_type((await _read(second)).type)
    await first.write_event(SynthesizeStart().event())
    await second.write_event(SynthesizeStart().event())
    await asyncio.sleep(0.2)  # the server has read them
    async with small_daemon.client() as third:
        error = Error.from_event(await _read(third))
        assert error.code == "busy"
        assert await asyncio.wait_for(third.read_event(), 10) is None
    await first.disconnect()
    await asyncio.sleep(0.2)  # the server notices the closed connection
    async with small_daemon.client() as fourth:
        await fourth.write_event(Describe().event())
        assert Info.is_type((await _read(fourth)).type)
    await second.disconnect()


def _run_unix_daemon(model: Path, folder: Path, socket_path: Path) -> subprocess.CompletedProcess[str]:
    """A daemon on unix://`socket_path` that must exit by itself (it refuses the path)."""
    command = [str(Path(sys.executable).parent / "mlx-speechd"), "--model", str(model), "--no-warmup",
               "--uri", f"unix://{socket_path}"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=folder)


def test_unix_socket_path_that_is_a_file_is_refused(tiny_custom_voice: Path, tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("precious data")
    result = _run_unix_daemon(tiny_custom_voice, tmp_path, path)
    assert result.returncode == 1 and "not a socket" in result.stderr, result.stderr[-3000:]
    assert path.read_text() == "precious data"


def test_unix_socket_of_a_live_server_is_refused(
    small_daemon: Daemon, tiny_custom_voice: Path, tmp_path: Path
) -> None:
    assert small_daemon.socket_path is not None
    result = _run_unix_daemon(tiny_custom_voice, tmp_path, small_daemon.socket_path)
    assert result.returncode == 1 and "already in use" in result.stderr, result.stderr[-3000:]

    async def describe() -> None:
        assert small_daemon.socket_path is not None
        async with AsyncUnixClient(small_daemon.socket_path) as client:  # the running daemon still owns it
            await client.write_event(Describe().event())
            assert Info.is_type((await _read(client)).type)

    asyncio.run(describe())


def test_a_stale_unix_socket_is_replaced(tiny_custom_voice: Path, tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:  # bound, then closed: the file stays, nobody listens
        stale.bind(str(path))
    daemon = _launch(tiny_custom_voice, tmp_path, "--no-warmup", socket_path=path)
    try:
        _wait_ready(daemon)

        async def describe() -> None:
            async with AsyncUnixClient(path) as client:
                await client.write_event(Describe().event())
                assert Info.is_type((await _read(client)).type)

        asyncio.run(describe())
    finally:
        _stop(daemon)
    assert not path.exists()


async def test_zeroconf_failure_is_a_warning_and_the_daemon_serves_on(small_daemon: Daemon) -> None:
    # Whether advertising works depends on the machine's network (resolving over loopback mDNS here gave
    # the port but only sometimes the address), so the name forces the one outcome a test can count on.
    deadline = time.monotonic() + 30
    while "Zeroconf: " not in small_daemon.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert f"Zeroconf: could not advertise '{ZEROCONF_NAME}' on the network" in small_daemon.log()
    async with small_daemon.client() as client:
        await client.write_event(Describe().event())
        assert Info.is_type((await _read(client)).type)


def test_voice_design_model_offers_its_one_voice(tiny_voice_design: Path) -> None:
    engine = Engine(EngineConfig(model=str(tiny_voice_design), warmup=False))
    engine.start()
    try:
        (program,) = build_info(engine).tts
    finally:
        engine.close()
    assert [(voice.name, voice.description) for voice in program.voices] == [
        ("designed", "Designed voice (--instruct)")
    ]
    assert "en" in program.voices[0].languages


# ---- a third-party client ----


def test_wyoming_bench(daemon: Daemon) -> None:
    bench = Path(sys.executable).parent / "wyoming-bench"
    command = [str(bench), "tts", f"127.0.0.1:{daemon.port}", "--mode", "both", "--rounds", "2",
               "--warmup", "1", "--texts", "Hello there.", "--timeout", "60"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("non_streaming", "streaming"):
        assert re.search(rf"\[{mode}\] ok=2 fail=0", result.stdout), result.stdout
    assert "NOT SUPPORTED" not in result.stdout


# ---- shutdown (last: it stops the small daemon) ----


async def test_stop_signal_ends_replies_in_flight(small_daemon: Daemon) -> None:
    async with small_daemon.client() as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="Hello there, this runs a while. An").event())
        assert AudioStart.is_type((await _read(client)).type)
        small_daemon.process.terminate()
        events = await _read_until(client, "synthesize-stopped")
        assert _types(events) == ["audio-chunk", "error", "audio-stop", "synthesize-stopped"]
        assert Error.from_event(events[-3]).code == "engine-closed"
        assert await asyncio.wait_for(client.read_event(), 10) is None
    assert await asyncio.to_thread(small_daemon.process.wait, 30) == 0
    assert small_daemon.socket_path is not None and not small_daemon.socket_path.exists()
