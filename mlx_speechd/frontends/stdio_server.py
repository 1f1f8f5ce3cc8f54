"""The JSON-lines front end on stdin/stdout, for a Bun or Node server that spawns the daemon.

Requests arrive one per line on stdin (read with a bounded asyncio reader); every
response is one line on the claimed stdout, written by a single non-blocking writer.
Each request gets its own engine reply and a task that forwards the reply's audio
to its outputs (base64 lines, a WAV file, the daemon's speaker). Protocol: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
import threading
from typing import Any, BinaryIO

from ..audio.pcm import SAMPLE_RATE
from ..audio.wavfile import WavFile
from ..engine import AudioChunk, Engine, Reply, SpeechdError, TextTooLongError, VoiceSettings
from ..playback import PlaybackError, Player, check_output_device
from ..settings import Device, EofPolicy, SpeechDefaults, StdioSettings
from .stdio_protocol import (
    Cancel,
    Describe,
    ErrorCode,
    Message,
    Output,
    Ping,
    ProtocolError,
    Request,
    RequestId,
    StreamAppend,
    StreamEnd,
    StreamStart,
    Synthesize,
    audio_chunk_message,
    audio_start_message,
    done_message,
    encode,
    error_message,
    info_message,
    parse_request,
    pong_message,
)

_LOGGER = logging.getLogger(__name__)

_PIPE_CHUNK = 65536
_INTERNAL_ERROR = "internal error while serving this request (the daemon's log has the details)"


async def serve_stdio(engine: Engine, settings: StdioSettings, speech: SpeechDefaults, out: BinaryIO) -> None:
    """Serve requests from stdin until EOF (or until stdout closes); `out` is the claimed stdout."""
    max_line = _max_line_bytes(engine.config.max_text_chars)
    writer = await _LineWriter.open(out)
    reader = await _LineReader.open(sys.stdin.fileno(), max_line)
    server = _Server(engine, settings.device, speech, writer, max_line)
    reading = asyncio.create_task(server.read_requests(reader))
    ending: asyncio.Task[None] | None = None
    try:
        await writer.send(await asyncio.to_thread(info_message, "ready", engine, max_line))
        _LOGGER.info("Serving JSON lines on stdin/stdout")
        await _first_of(reading, writer.lost)
        if not writer.lost.done():
            reading.result()
            cancel = settings.eof is EofPolicy.CANCEL
            _LOGGER.info("End of input: %s the requests in flight", "cancelling" if cancel else "finishing")
            ending = asyncio.create_task(server.end_all(cancel=cancel))
            await _first_of(ending, writer.lost)
            if ending.done():
                ending.result()
                await writer.close()
        if writer.lost.done() and writer.lost.result() is not None:
            _LOGGER.warning("stdout was closed (the client went away); stopping")
    finally:
        reading.cancel()
        if ending is not None:
            ending.cancel()
        reader.close()
        await server.abort_all()
        writer.abort()


async def _first_of(*futures: asyncio.Future[Any]) -> None:
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)


def _max_line_bytes(max_text_chars: int) -> int:
    """The longest request line accepted: room for the longest text, JSON-escaped, and then some."""
    return max(1 << 20, 12 * max_text_chars + 65536)


def write_startup_error(out: BinaryIO, error: SpeechdError) -> None:
    """Tell a stdio client why the daemon could not start (it exits right after)."""
    with contextlib.suppress(OSError):
        out.write(encode(error_message(None, error.code, str(error))))


class _Server:
    """Dispatches request lines; owns the requests in flight."""

    def __init__(
        self, engine: Engine, device: Device, speech: SpeechDefaults, writer: _LineWriter, max_line: int
    ) -> None:
        self._engine = engine
        self._device = device
        self._speech = speech
        self._writer = writer
        self._max_line = max_line
        self._requests: dict[RequestId, _Request] = {}
        self._playback_turn = asyncio.Lock()

    async def read_requests(self, reader: _LineReader) -> None:
        """Handle lines until EOF; bad lines get an error line and reading goes on."""
        while True:
            try:
                line = await reader.readline()
            except _LineTooLongError:
                message = f"request line longer than {self._max_line} bytes; discarded"
                await self._writer.send(error_message(None, ErrorCode.LINE_TOO_LONG, message))
                continue
            if line is None:
                return
            if line.strip():
                await self._handle(line)

    async def _handle(self, line: bytes) -> None:
        """Serve one line; whatever goes wrong becomes an error line for it, never the daemon's end."""
        request_id: RequestId | None = None
        try:
            request = parse_request(line)
            request_id = request.id
            await self._dispatch(request)
        except ProtocolError as err:
            _LOGGER.debug("Rejected request %r: %s", err.request_id, err.message)
            await self._reject(err)
        except Exception:
            _LOGGER.exception("Request %r failed unexpectedly", request_id)
            await self._reject(ProtocolError(ErrorCode.INTERNAL_ERROR, _INTERNAL_ERROR, request_id))

    async def _reject(self, err: ProtocolError) -> None:
        request = self._requests.get(err.request_id) if err.request_id is not None else None
        if request is not None:  # an error naming a request in flight ends it (its one final line)
            request.fail(err.code, err.message)
        else:
            await self._writer.send(error_message(err.request_id, err.code, err.message))

    async def _dispatch(self, request: Request) -> None:
        match request:
            case Synthesize() | StreamStart():
                await self._admit(request)
            case StreamAppend(id=rid, text=text):
                if (stream := self._open_stream(rid)) is not None:
                    stream.append(text)
            case StreamEnd(id=rid):
                if (stream := self._open_stream(rid)) is not None:
                    stream.end()
            case Cancel(id=rid):
                if rid in self._requests:
                    self._requests[rid].cancel()
                else:
                    _LOGGER.debug("Cancel of %r, which is not in flight", rid)
            case Describe(id=rid):
                info = await asyncio.to_thread(info_message, "info", self._engine, self._max_line, rid)
                await self._writer.send(info)
            case Ping(id=rid):
                await self._writer.send(pong_message(rid))

    def _open_stream(self, rid: RequestId) -> _Request | None:
        """The open text stream `rid`; None for one already cancelled (late text is dropped)."""
        request = self._requests.get(rid)
        if request is not None and request.reply.cancelled:
            return None
        if request is None or not request.streaming:
            raise ProtocolError(ErrorCode.UNKNOWN_REQUEST, f"no open text stream with id {rid!r}", rid)
        return request

    async def _admit(self, request: Synthesize | StreamStart) -> None:
        rid, options = request.id, request.options
        if rid in self._requests:
            raise ProtocolError(ErrorCode.DUPLICATE_ID, f"id {rid!r} is already in flight", rid)
        reply_options = self._speech.reply_options(
            VoiceSettings(
                speaker=options.voice,
                language=options.language,
                instruct=options.instruct,
                ref_audio=options.ref_audio,
                ref_text=options.ref_text,
            ),
            seed=options.seed,
            sentence_pause=options.sentence_pause,
            lead_in=options.lead_in,
        )
        try:
            reply = self._engine.reply(reply_options)
            if isinstance(request, Synthesize):
                reply.speak(request.text)  # the engine starts on the first sentence at once
        except SpeechdError as err:  # unknown voice, text too long, ...
            raise ProtocolError(err.code, str(err), rid) from None
        try:
            wav = await asyncio.to_thread(WavFile, options.wav) if options.wav else None
            if options.output is Output.PLAY:
                await asyncio.to_thread(check_output_device, self._device)
        except (OSError, ValueError, RuntimeError, PlaybackError) as err:  # ValueError: a NUL in the path
            reply.cancel()
            raise ProtocolError(ErrorCode.OUTPUT_FAILED, str(err), rid) from None
        except BaseException:
            reply.cancel()
            raise
        playback = _Playback(self._playback_turn, self._device) if options.output is Output.PLAY else None
        entry = _Request(rid, reply, options.output, wav, options.wav, playback, self._writer)
        self._requests[rid] = entry
        entry.task = asyncio.create_task(self._serve(entry))
        if isinstance(request, Synthesize):
            entry.end()

    async def _serve(self, request: _Request) -> None:
        try:
            await request.run()
        finally:
            del self._requests[request.id]
        await self._writer.send(request.final_message())

    async def end_all(self, *, cancel: bool) -> None:
        """At EOF: finish (ending open text streams) or cancel every request, and wait for them."""
        requests = list(self._requests.values())
        for request in requests:
            if cancel:
                request.cancel()
            else:
                request.end()
        await asyncio.gather(*(r.task for r in requests if r.task is not None))

    async def abort_all(self) -> None:
        """Stop everything now (SIGTERM, or nobody is reading stdout any more)."""
        requests = list(self._requests.values())
        for request in requests:
            request.cancel()
            if request.task is not None:
                request.task.cancel()
        await asyncio.gather(*(r.task for r in requests if r.task is not None), return_exceptions=True)


class _Request:
    """One request in flight: its reply and where the reply's audio goes."""

    def __init__(
        self,
        rid: RequestId,
        reply: Reply,
        output: Output,
        wav: WavFile | None,
        wav_path: str | None,
        playback: _Playback | None,
        writer: _LineWriter,
    ) -> None:
        self.id = rid
        self.reply = reply
        self.streaming = True
        self.task: asyncio.Task[None] | None = None
        self._output = output
        self._wav = wav
        self._wav_path = wav_path
        self._playback = playback
        self._writer = writer
        self._chunks = 0
        self._failure: tuple[str, str] | None = None
        self._wav_written = False

    def append(self, text: str) -> None:
        try:
            self.reply.add_text(text)
        except TextTooLongError as err:
            self.fail(err.code, str(err))

    def end(self) -> None:
        if self.streaming:
            self.streaming = False
            self.reply.finish()

    def cancel(self) -> None:
        self.streaming = False
        self.reply.cancel()
        if self._playback is not None:
            self._playback.stop()

    def fail(self, code: str, message: str) -> None:
        """End this request with an error (the first one wins) instead of `done`."""
        if self._failure is None:
            self._failure = (code, message)
        self.cancel()

    async def run(self) -> None:
        """Forward the reply's audio to the outputs until it ends; closes the outputs."""
        complete = False
        try:
            async for chunk in self.reply:
                await self._forward(chunk)
            if self._playback is not None:
                await self._playback.finish()
            complete = True
        except SpeechdError as err:
            self.fail(err.code, str(err))
        except PlaybackError as err:
            self.fail(ErrorCode.OUTPUT_FAILED, str(err))
        except Exception:
            _LOGGER.exception("Request %r failed unexpectedly", self.id)
            self.fail(ErrorCode.INTERNAL_ERROR, _INTERNAL_ERROR)
        finally:
            if self._playback is not None:
                self._playback.stop()
            if self._wav is not None:
                self._close_wav(keep=complete and self._failure is None and not self.reply.cancelled)

    async def _forward(self, chunk: AudioChunk) -> None:
        """Send one chunk to every output (after `audio-start` for the first; nowhere once failed)."""
        if self._chunks == 0:
            await self._writer.send(audio_start_message(self.id, SAMPLE_RATE))
        self._chunks += 1
        if self._failure is not None:
            return
        if self._output is Output.PCM:
            await self._writer.send(audio_chunk_message(self.id, chunk))
        if self._playback is not None:
            self._playback.write(chunk.pcm)
        if self._wav is not None:
            await self._write_wav(chunk.pcm)

    async def _write_wav(self, pcm: bytes) -> None:
        assert self._wav is not None
        try:
            await asyncio.to_thread(self._wav.write, pcm)
        except (OSError, RuntimeError) as err:
            self.fail(ErrorCode.OUTPUT_FAILED, f"cannot write {self._wav_path}: {err}")

    def _close_wav(self, *, keep: bool) -> None:
        assert self._wav is not None
        try:
            self._wav.close(keep=keep)
        except (OSError, RuntimeError) as err:
            self.fail(ErrorCode.OUTPUT_FAILED, f"cannot write {self._wav_path}: {err}")
            return
        self._wav_written = keep

    def final_message(self) -> Message:
        if self._failure is not None:
            return error_message(self.id, *self._failure)
        assert self.reply.stats is not None
        return done_message(
            self.id, self.reply.stats, self._chunks, self._wav_path if self._wav_written else None
        )


class _Playback:
    """Plays one request's audio on the daemon's output device, after the play requests before it.

    Chunks are queued at once; a worker thread writes them to the device (a blocking call).
    """

    def __init__(self, turn: asyncio.Lock, device: str | int | None) -> None:
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stopped = False
        self._playing = False
        self._task = asyncio.create_task(self._play(turn, device))

    def write(self, pcm: bytes) -> None:
        self._chunks.put_nowait(pcm)

    def stop(self) -> None:
        """Drop the audio not yet played and stop at once."""
        if self._stopped:
            return
        self._stopped = True
        self._chunks.put_nowait(None)
        if not self._playing:  # still waiting for its turn
            self._task.cancel()

    async def finish(self) -> None:
        """Wait until everything written has played; raises PlaybackError."""
        self._chunks.put_nowait(None)
        await asyncio.wait([self._task])
        if not self._task.cancelled() and (error := self._task.exception()) is not None:
            raise error

    async def _play(self, turn: asyncio.Lock, device: str | int | None) -> None:
        async with turn:
            self._playing = True
            player = Player(device)
            try:
                while not self._stopped and (pcm := await self._chunks.get()) is not None:
                    await asyncio.to_thread(player.write, pcm)
            finally:
                await asyncio.to_thread(player.abort if self._stopped else player.close)


# ---- line I/O ----
class _LineTooLongError(Exception):
    """A request line over the size limit (already discarded up to its newline)."""


def _pollable(fd: int) -> bool:
    """Whether asyncio can watch `fd` (pipes and sockets; not files or terminals)."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _pump(source: int, target: int, owned: int) -> None:
    """Copy `source` to `target` until EOF or an error, then close `owned` (a pipe end)."""
    try:
        while data := os.read(source, _PIPE_CHUNK):
            view = memoryview(data)
            while view:
                view = view[os.write(target, view) :]
    except OSError as err:
        _LOGGER.debug("stdio pump stopped: %s", err)
    finally:
        os.close(owned)


def _start_pump(source: int, target: int, owned: int) -> threading.Thread:
    thread = threading.Thread(target=_pump, args=(source, target, owned), name="stdio-pump", daemon=True)
    thread.start()
    return thread


class _LineReader:
    """Reads stdin line by line without blocking the event loop and with bounded memory.

    A pipe or socket is read through asyncio directly; anything else (a file, a terminal)
    is copied into a pipe by a thread, so it never has to be put in non-blocking mode.
    """

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.ReadTransport) -> None:
        self._reader = reader
        self._transport = transport

    @classmethod
    async def open(cls, fd: int, limit: int) -> _LineReader:
        if _pollable(fd):
            ours = os.dup(fd)
        else:
            ours, write_end = os.pipe()
            _start_pump(fd, write_end, write_end)
        reader = asyncio.StreamReader(limit=limit)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ours, "rb", buffering=0)
        )
        return cls(reader, transport)

    async def readline(self) -> bytes | None:
        """The next line (a last line without a newline counts); None at EOF.

        Raises _LineTooLongError after discarding a line over the limit, up to and including its newline.
        """
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as err:
            return err.partial or None
        except asyncio.LimitOverrunError as err:
            await self._reader.readexactly(err.consumed)
        while True:  # drop the rest of the long line, never holding more than the limit
            try:
                await self._reader.readuntil(b"\n")
                break
            except asyncio.IncompleteReadError:
                break
            except asyncio.LimitOverrunError as err:
                await self._reader.readexactly(err.consumed)
        raise _LineTooLongError

    def close(self) -> None:
        self._transport.close()


class _WriteProtocol(asyncio.BaseProtocol):
    def __init__(self) -> None:
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._writable = asyncio.Event()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._writable.set()
        if not self.lost.done():
            self.lost.set_result(exc)

    async def drain(self) -> None:
        await self._writable.wait()


class _LineWriter:
    """The one writer of protocol lines: whole lines, in order, never blocking the event loop.

    Waits (per caller) while the pipe is full. Once stdout is gone, lines are dropped
    quietly and `lost` holds the error (BrokenPipeError when the reader went away).
    """

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: _WriteProtocol,
        pump: threading.Thread | None,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._pump = pump

    @classmethod
    async def open(cls, out: BinaryIO) -> _LineWriter:
        fd = out.fileno()
        pump = None
        if not _pollable(fd):
            read_end, write_end = os.pipe()
            pump = _start_pump(read_end, fd, read_end)
            out = os.fdopen(write_end, "wb", buffering=0)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(_WriteProtocol, out)
        return cls(transport, protocol, pump)

    @property
    def lost(self) -> asyncio.Future[BaseException | None]:
        return self._protocol.lost

    async def send(self, message: Message) -> None:
        if self._transport.is_closing():
            return
        self._transport.write(encode(message))
        await self._protocol.drain()

    async def close(self) -> None:
        """Flush every line and close stdout."""
        self._transport.close()
        await asyncio.shield(self.lost)
        if self._pump is not None:
            await asyncio.to_thread(self._pump.join)

    def abort(self) -> None:
        """Close stdout now, dropping unwritten lines (also when `close` is still waiting to flush them)."""
        if not self._transport.is_closing() or self._transport.get_write_buffer_size():
            self._transport.abort()
