"""Our engine called directly, in this process, the way the front ends call it."""

from __future__ import annotations

from mlx_speechd.engine import Engine, ReplyOptions, VoiceSettings

from .measure import Recorder, RequestResult


def engine_request(engine: Engine, text: str, voice: str | None = None) -> RequestResult:
    """Speak `text` as one reply and record when its audio arrives."""
    recorder = Recorder()
    reply = engine.reply(ReplyOptions(voice=VoiceSettings(speaker=voice)))
    reply.speak(text)
    reply.finish()
    for chunk in reply:
        recorder.audio(len(chunk.pcm))
    stats = reply.stats
    assert stats is not None
    return recorder.result(stats.peak_memory_bytes, stats.time_to_first_audio, stats.compute_seconds)


async def engine_request_async(engine: Engine, text: str, voice: str | None = None) -> RequestResult:
    """`engine_request` for a client on an event loop (as the Wyoming and stdio front ends are)."""
    recorder = Recorder()
    reply = engine.reply(ReplyOptions(voice=VoiceSettings(speaker=voice)))
    reply.speak(text)
    reply.finish()
    async for chunk in reply:
        recorder.audio(len(chunk.pcm))
    stats = reply.stats
    assert stats is not None
    return recorder.result(stats.peak_memory_bytes, stats.time_to_first_audio, stats.compute_seconds)
