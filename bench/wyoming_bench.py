"""Our Wyoming server, as a real `mlx-speechd --uri` subprocess, through wyoming's own AsyncTcpClient."""

from __future__ import annotations

import asyncio

from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from .measure import Recorder, RequestResult
from .servers import ServerProcess, daemon_argv, free_port


class WyomingDaemon:
    """`python -m mlx_speechd --model M --uri tcp://127.0.0.1:PORT`, ready once it listens."""

    def __init__(self, model: str, *options: str) -> None:
        self.port = free_port()
        self.server = ServerProcess(daemon_argv(model, "--uri", f"tcp://127.0.0.1:{self.port}", *options))

    def wait_ready(self) -> float:
        """Block until the daemon listens; returns seconds since it was launched."""
        return self.server.wait_for_port(self.port)

    def request(self, text: str, voice: str | None, streaming: bool) -> RequestResult:
        """One request on a fresh connection (as Home Assistant makes them)."""
        return asyncio.run(_request(self.port, text, voice, streaming))


async def _request(port: int, text: str, voice: str | None, streaming: bool) -> RequestResult:
    """Plain `synthesize`, or Home Assistant's trio: start, chunk, synthesize (compat), stop."""
    synth_voice = SynthesizeVoice(name=voice) if voice else None
    async with AsyncTcpClient("127.0.0.1", port) as client:
        recorder = Recorder()
        if streaming:
            await client.write_event(SynthesizeStart(voice=synth_voice).event())
            await client.write_event(SynthesizeChunk(text=text).event())
            await client.write_event(Synthesize(text=text, voice=synth_voice).event())
            await client.write_event(SynthesizeStop().event())
        else:
            await client.write_event(Synthesize(text=text, voice=synth_voice).event())
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                recorder.audio(len(event.payload or b""))
            elif Error.is_type(event.type):
                raise RuntimeError(f"Wyoming error: {Error.from_event(event).text}")
            elif (SynthesizeStopped if streaming else AudioStop).is_type(event.type):
                return recorder.result()
    raise RuntimeError("the Wyoming server closed the connection before the end of the reply")
