"""A reply whose reader does not keep up: held by the engine, cancelled when it stalls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlx_speechd.audio.pcm import SAMPLE_RATE
from mlx_speechd.engine import AudioChunk, ClientTooSlowError, Engine, EngineConfig
from mlx_speechd.engine.job import ChunkQueue

SENTENCES = "One. Two. Three. Four. Five. Six."
"""Six sentences; the fixed-length tiny model speaks each for its 6 s frame-cap floor."""


def _chunk(seconds: float, sequence: int = 0) -> AudioChunk:
    return AudioChunk(bytes(2 * round(seconds * SAMPLE_RATE)), sequence, 0, 0, 0.0)


def test_chunk_queue_counts_unsent_audio_and_reports_the_end_of_a_backlog() -> None:
    drained: list[float] = []
    queue = ChunkQueue(SAMPLE_RATE, lambda: drained.append(queue.unsent_seconds))  # a 1 s limit
    queue.put(_chunk(0.5, 0))
    assert queue.unsent_seconds == pytest.approx(0.5) and not queue.backlogged
    queue.put(_chunk(0.75, 1))
    assert queue.backlogged
    assert queue.get() is not None
    assert drained == [pytest.approx(0.75)]  # called once, when the take ended the backlog
    assert queue.get() is not None
    assert drained == [pytest.approx(0.75)]
    assert queue.unsent_seconds == 0


def _wait_until_ended(reply: object, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while reply.stats is None:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the reply never ended"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def impatient(tiny_custom_voice: Path) -> Iterator[Engine]:
    engine = Engine(EngineConfig(model=str(tiny_custom_voice), max_unsent_seconds=1.0, stall_timeout=1.0))
    engine.start()
    yield engine
    engine.close()


def test_a_reply_nobody_reads_is_not_synthesized_and_is_cancelled(impatient: Engine) -> None:
    reply = impatient.reply()
    reply.speak(SENTENCES)
    reply.finish()
    _wait_until_ended(reply)  # without reading anything
    assert isinstance(reply.error, ClientTooSlowError)
    assert reply.error.code == "client-too-slow"
    assert reply.stats is not None and reply.stats.sentences == 1  # not the other five
    with pytest.raises(ClientTooSlowError):
        for _ in reply:
            pass
    # the engine serves the next reply as usual
    other = impatient.reply()
    other.speak("Next.")
    other.finish()
    assert sum(c.frames for c in other) > 0 and other.error is None


@pytest.fixture(scope="module")
def patient(tiny_custom_voice: Path) -> Iterator[Engine]:
    engine = Engine(EngineConfig(model=str(tiny_custom_voice), max_unsent_seconds=1.0, stall_timeout=600.0))
    engine.start()
    yield engine
    engine.close()


def test_a_held_reply_lets_others_through_and_resumes_when_read(patient: Engine) -> None:
    held = patient.reply()
    held.speak("First. Second. Third.")
    held.finish()
    quick = patient.reply()
    quick.speak("Quick.")
    quick.finish()
    assert sum(c.frames for c in quick) > 0
    assert held.stats is None
    chunks: list[AudioChunk] = []
    reader = threading.Thread(target=lambda: chunks.extend(held))
    reader.start()
    reader.join(timeout=120)
    assert not reader.is_alive(), "the held reply never resumed"
    assert held.error is None
    assert held.stats is not None and held.stats.sentences == 3
    assert {c.sentence for c in chunks} == {0, 1, 2}
