"""One Wyoming client connection: describe, plain synthesize, and the streaming trio.

Requests on a connection are answered in order, each by its own task, while the
connection keeps being read: text chunks reach the engine as they arrive, and a
client that disconnects has its replies cancelled at once.

A connection with nothing in flight is closed after `idle_timeout` seconds of silence
(one with a text stream open after `STREAM_IDLE_FACTOR` times that); when the listener is
full, the longest-idle such connection is closed to make room for a newcomer. A client that
stops reading is closed once a write has waited `write_timeout` seconds (its reply was held
by the engine meanwhile, see `Engine`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from ..audio.pcm import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from ..engine import (
    Engine,
    EngineClosedError,
    InvalidRequestError,
    Reply,
    SpeechdError,
    VoiceSettings,
)
from ..settings import SpeechDefaults
from .wyoming_reader import ProtocolError, ReadLimits, read_event

_LOGGER = logging.getLogger(__name__)

MAX_PENDING_REQUESTS = 4
"""Requests one connection may have in flight; a client that sends more is disconnected."""
_FORMAT = {"rate": SAMPLE_RATE, "width": SAMPLE_WIDTH, "channels": CHANNELS}
IDLE_TIMEOUT = 60.0
"""Default seconds a connection with nothing in flight may stay silent."""
STREAM_IDLE_FACTOR = 5
"""An open text stream may stay silent this many times the idle timeout (LLMs pause)."""
SEND_BUFFER_BYTES = 1 << 17
"""The kernel's send buffer per connection (Linux doubles it): a few seconds of audio, so a client
that stops reading soon blocks the writes, its reply is held, and `write_timeout` can apply
(autotuned buffers would take up to 4 MB, 90 s of audio, first)."""


@dataclass(frozen=True)
class HandlerSettings:
    """What every connection of one listener shares."""

    info: Callable[[], Event]
    """Builds the `info` answer to `describe` (it reads the voice library: call it off the event loop)."""
    speech: SpeechDefaults
    """Per-reply defaults (seed, pauses); the voice comes from each request."""
    limits: ReadLimits
    idle_timeout: float = IDLE_TIMEOUT
    """Seconds a connection with nothing in flight may stay silent before it is closed."""
    write_timeout: float = 30.0
    """Seconds a write may wait for the client to read before the connection is closed."""


@dataclass
class Connections:
    """The connections one listener is serving, against its limit."""

    limit: int
    handlers: set[WyomingHandler] = field(default_factory=set)
    closing: bool = False
    """Set when the server shuts down: new connections are refused."""

    def admit(self, handler: WyomingHandler) -> str | None:
        """Register `handler` (closing the longest-idle connection if full), or say why it can't be served."""
        if self.closing:
            return "The server is shutting down"
        if len(self.handlers) >= self.limit:
            idle = [(since, h) for h in self.handlers if (since := h.idle_since) is not None]
            if not idle:
                return f"Too many connections (limit {self.limit}), all busy; try again later"
            _, oldest = min(idle, key=lambda pair: pair[0])
            self.handlers.discard(oldest)
            oldest.evict(f"the connection limit ({self.limit}) is reached")
        self.handlers.add(handler)
        return None

    async def shut_down(self) -> None:
        """Refuse new connections; end every answer in flight properly and close."""
        self.closing = True
        await asyncio.gather(*(handler.shut_down() for handler in list(self.handlers)))


@dataclass(eq=False)
class _Response:
    """The answer to one request: a reply's audio, or just an error."""

    kind: str
    streaming: bool
    received: float = field(default_factory=time.perf_counter)
    reply: Reply | None = None
    error: SpeechdError | None = None
    first_audio: float | None = None
    """Seconds from the request to its first audio chunk, once sent."""
    sent: int = 0
    """Bytes of audio sent."""

    def fail(self, error: SpeechdError) -> None:
        self.error = self.error or error
        if self.reply is not None:
            self.reply.cancel()


class WyomingHandler(AsyncEventHandler):
    """Serves one client; created per connection by the server."""

    def __init__(
        self,
        engine: Engine,
        settings: HandlerSettings,
        connections: Connections,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(reader, writer)
        self._engine = engine
        self._settings = settings
        self._connections = connections
        self._client = _peer_name(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._stream: _Response | None = None
        """The open synthesize-start stream, until synthesize-stop."""
        self._tasks: list[asyncio.Task[None]] = []
        """Answer tasks not yet done, oldest first; each waits for the one before it."""
        self._responses: set[_Response] = set()
        self._last_activity = time.monotonic()
        """When the client last sent an event, or was last sent audio or the end of an answer."""

    @property
    def idle_since(self) -> float | None:
        """When this connection last did anything; None while an answer or a text stream is in flight."""
        if self._stream is not None or self._answering():
            return None
        return self._last_activity

    def evict(self, reason: str) -> None:
        """Close this idle connection (its read loop then ends and cleans up)."""
        _LOGGER.info(
            "%s closed after %.1fs idle: %s", self._client, time.monotonic() - self._last_activity, reason
        )
        self.writer.close()

    async def run(self) -> None:
        """Read events until the client leaves, misbehaves or idles; replaces the unbounded library loop."""
        if (refusal := self._connections.admit(self)) is not None:
            await self._refuse(refusal)
            return
        _LOGGER.debug("%s connected", self._client)
        try:
            while (first := await self._wait_for_input()) and (
                event := await read_event(self.reader, self._settings.limits, first)
            ):
                self._last_activity = time.monotonic()
                if not await self.handle_event(event):
                    break
        except ProtocolError as err:
            _LOGGER.warning("%s broke the protocol (%s); disconnecting it", self._client, err)
        except OSError as err:
            _LOGGER.debug("%s: connection error: %s", self._client, err)
        except Exception:
            _LOGGER.exception("%s: unexpected error; disconnecting it", self._client)
        finally:
            self._connections.handlers.discard(self)
            await self._disconnect()

    async def _wait_for_input(self) -> bytes:
        """The first byte of the next event; b"" at the end of input or once idle too long."""
        reading = asyncio.ensure_future(self.reader.read(1))
        try:
            while True:
                limit = self._idle_limit()
                wait = self._settings.idle_timeout  # busy: look again later
                if limit is not None:
                    wait = self._last_activity + limit - time.monotonic()
                    if wait <= 0:
                        _LOGGER.info("%s idle for %.0fs; closing the connection", self._client, limit)
                        return b""
                done, _ = await asyncio.wait([reading], timeout=wait)
                if done:
                    return reading.result()
        finally:
            reading.cancel()

    def _idle_limit(self) -> float | None:
        """How long the client may stay silent now; None while it waits for an answer."""
        if self._stream is not None:
            return self._settings.idle_timeout * STREAM_IDLE_FACTOR
        if self._answering():
            return None
        return self._settings.idle_timeout

    async def write_event(self, event: Event) -> None:
        """Send an event; a client that reads nothing for `write_timeout` is disconnected (TimeoutError)."""
        try:
            async with asyncio.timeout(self._settings.write_timeout):
                await super().write_event(event)
        except TimeoutError:
            _LOGGER.warning(
                "%s read nothing for %gs; closing the connection", self._client, self._settings.write_timeout
            )
            self.writer.transport.abort()  # close() would wait for the unread data to go out
            raise

    def _answering(self) -> bool:
        return any(not task.done() for task in self._tasks)

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(await asyncio.to_thread(self._settings.info))
        elif SynthesizeStart.is_type(event.type):
            self._start_stream(event.data)
        elif SynthesizeChunk.is_type(event.type):
            self._add_chunk(event.data)
        elif SynthesizeStop.is_type(event.type):
            self._stop_stream()
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # inside a stream it only repeats the text, for old servers
                self._synthesize(event.data)
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        else:
            _LOGGER.debug("%s: ignoring %s", self._client, event.type)
        return True

    # ---- requests ----
    def _synthesize(self, data: dict[str, Any]) -> None:
        response = _Response("synthesize", streaming=False)
        try:
            text = _text(data)
            response.reply = self._reply(data)
            response.reply.speak(text)
            response.reply.finish()
        except SpeechdError as err:
            response.fail(err)
        self._answer(response)

    def _start_stream(self, data: dict[str, Any]) -> None:
        if self._stream is not None:
            _LOGGER.warning("%s: synthesize-start inside a stream; ending the previous stream", self._client)
            self._stop_stream()
        self._stream = _Response("streamed synthesize", streaming=True)
        try:
            self._stream.reply = self._reply(data)
        except SpeechdError as err:
            self._stream.fail(err)
        self._answer(self._stream)

    def _add_chunk(self, data: dict[str, Any]) -> None:
        stream = self._stream
        if stream is None:
            _LOGGER.debug("%s: synthesize-chunk outside a stream; ignored", self._client)
            return
        if stream.reply is None or stream.error is not None:
            return  # the stream already failed and was answered; wait for synthesize-stop
        try:
            stream.reply.add_text(_text(data))
        except SpeechdError as err:
            stream.fail(err)

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            _LOGGER.debug("%s: synthesize-stop outside a stream; ignored", self._client)
        elif stream.reply is not None:
            stream.reply.finish()

    def _reply(self, data: dict[str, Any]) -> Reply:
        return self._engine.reply(self._settings.speech.reply_options(_voice(data)))

    # ---- answers ----
    def _answer(self, response: _Response) -> None:
        self._tasks = [task for task in self._tasks if not task.done()]
        if len(self._tasks) >= MAX_PENDING_REQUESTS:
            response.fail(InvalidRequestError("Too many requests in flight"))
            raise ProtocolError(f"more than {MAX_PENDING_REQUESTS} requests in flight")
        previous = self._tasks[-1] if self._tasks else None
        self._responses.add(response)
        self._tasks.append(asyncio.create_task(self._send(response, previous)))

    async def _send(self, response: _Response, previous: asyncio.Task[None] | None) -> None:
        """Write one answer: audio as the engine makes it, then the events that end it."""
        if previous is not None:
            await asyncio.wait([previous])
        try:
            await self._send_audio(response)
            if response.error is not None:
                await self.write_event(Error(text=str(response.error), code=response.error.code).event())
            elif response.first_audio is None:
                await self.write_event(AudioStart(**_FORMAT).event())
            await self.write_event(AudioStop().event())
            if response.streaming:
                await self.write_event(SynthesizeStopped().event())
        except OSError as err:
            _LOGGER.debug("%s: could not write the answer: %s", self._client, err)
        finally:
            self._last_activity = time.monotonic()
            self._responses.discard(response)
            if response.reply is not None:
                response.reply.cancel()  # a no-op once the reply has ended
        self._log(response)

    async def _send_audio(self, response: _Response) -> None:
        """Forward the reply's audio chunks, the first one after `audio-start`."""
        if response.reply is None:
            return
        try:
            async for chunk in response.reply:
                if response.first_audio is None:
                    response.first_audio = time.perf_counter() - response.received
                    await self.write_event(AudioStart(**_FORMAT).event())
                await self.write_event(AudioChunk(audio=chunk.pcm, **_FORMAT).event())
                response.sent += len(chunk.pcm)
        except SpeechdError as err:
            response.fail(err)

    def _log(self, response: _Response) -> None:
        reply = f"reply {response.reply.id}" if response.reply is not None else "no reply"
        if response.error is not None:
            _LOGGER.warning(
                "%s %s (%s): error %s: %s",
                self._client,
                response.kind,
                reply,
                response.error.code,
                response.error,
            )
            return
        seconds = response.sent / (SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS)
        waited = (
            "no audio"
            if response.first_audio is None
            else f"first audio {response.first_audio:.3f}s after the request"
        )
        _LOGGER.info(
            "%s %s (%s): %s, %.2fs audio sent in %.2fs",
            self._client,
            response.kind,
            reply,
            waited,
            seconds,
            time.perf_counter() - response.received,
        )

    # ---- connection ----
    async def shut_down(self) -> None:
        """The server is stopping: cancel this client's replies, end each answer with an error, close."""
        for response in list(self._responses):
            response.fail(EngineClosedError("The server is shutting down"))
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self.stop()  # the read loop sees the end of input and cleans up

    async def _refuse(self, reason: str) -> None:
        _LOGGER.warning("%s refused: %s", self._client, reason)
        with contextlib.suppress(OSError):
            await self.write_event(Error(text=reason, code="busy").event())
        await self._close()

    async def _disconnect(self) -> None:
        """Cancel everything this client asked for and close the connection."""
        if self._responses:
            _LOGGER.info("%s left; cancelling %d unanswered request(s)", self._client, len(self._responses))
        for response in list(self._responses):
            if response.reply is not None:
                response.reply.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()
        _LOGGER.debug("%s disconnected", self._client)

    async def _close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def _text(data: dict[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError("'text' must be a string")
    return _unicode("text", text)


def _unicode(name: str, value: str) -> str:
    """`value`, unless it holds a lone surrogate (a JSON escape such as \\ud800 that is no character)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequestError(f"'{name}' is not valid Unicode: {err.reason} at {err.start}") from None
    return value


def _voice(data: dict[str, Any]) -> VoiceSettings:
    """The requested voice: a `name` from our info (a preset or library voice), a `speaker` override,
    a `language`. Names only: nothing a client sends here is used as a path."""
    voice = data.get("voice") or {}
    if not isinstance(voice, dict):
        raise InvalidRequestError("'voice' must be an object")
    fields = {key: voice.get(key) for key in ("name", "speaker", "language")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(f"voice '{key}' must be a string")
        if value is not None:
            _unicode(f"voice {key}", value)
    return VoiceSettings(speaker=fields["speaker"] or fields["name"], language=fields["language"])


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"client {peer[0]}:{peer[1]}"
    return "unix client"
