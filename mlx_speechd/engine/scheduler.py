"""Continuous batching for one loaded model: up to `max_batch` sentences advance in lockstep.

Each sentence is a row of a `BatchGenerator`: it joins at a frame boundary (prefilled alone),
leaves as soon as it ends or its reply is cancelled, and streams its own chunks on its own
schedule through its own `StreamingDecoder` (one per batch slot, over its own copy of the codec
decoder's streaming state), with its own runaway guard and frame cap. The codec decoder is not
batched: its convolutions cost about linearly in rows on the CPU measured (docs/performance.md).

Seeding: a row draws from its own random key, `mx.random.key(seed + index)` for sentence `index`
of a seeded reply, so a seeded sentence gives the same audio alone and in any batch. It is not
the audio the one-sentence-at-a-time path (`max_batch` 1, MLX's global random state) gives for
that seed; the audio cache keys the two apart. Runs on the engine thread only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx

from ..audio.pcm import float_to_pcm16
from ..cache import CacheKey
from ..errors import EngineFailure, SpeechdError
from .adapter import Qwen3Model
from .batch import BatchGenerator, RowFrame
from .decoder import StreamingDecoder
from .fast_generation import FrameCollector
from .generation import GeneratedChunk, GenerationSettings, Utterance, log_end, start_utterance
from .guards import frame_cap
from .job import Job
from .sentence_cache import SentenceCache
from .types import ModelInfo

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowRequest:
    """A sentence ready to be generated as a row: reply, index, resolved voice and text."""

    job: Job
    index: int
    utterance: Utterance
    seed: int | None
    """The reply's seed (the row's key is `seed + index`); None draws a key from MLX's random state."""
    cache_key: CacheKey | None
    """Where to store the audio if the sentence ends by EOS; None when the audio cache is off."""


class _Row:
    """One sentence in the batch: its decoder slot, chunking and guards, and its audio so far."""

    def __init__(self, request: RowRequest, collector: FrameCollector, slot: int, cap: int) -> None:
        self.request = request
        self.collector = collector
        self.slot = slot
        self.cap = cap
        self.taken = 0
        """Frames taken (the frame cap counts these)."""
        self.frames = 0
        """Frames sent out as audio."""
        self.pieces: list[bytes] = []

    def deliver(self, chunk: GeneratedChunk) -> None:
        """Send a chunk to the reply's reader."""
        job = self.request.job
        if chunk.audio.size:
            self.pieces.append(float_to_pcm16(chunk.audio))
            job.emit(self.pieces[-1], self.request.index, chunk.frames, chunk.compute_seconds)
            time.sleep(0)  # let the chunk's receiver run now (see generate_utterance)
        self.frames += chunk.frames
        job.account(chunk.frames, chunk.compute_seconds, mx.get_peak_memory())


class BatchScheduler:
    """One model's lockstep batch of sentences from different replies (voices and languages may differ).

    `ended(job, error)` is called when a row leaves: its sentence is done (error None) or failed.
    """

    def __init__(
        self,
        model: Qwen3Model,
        info: ModelInfo,
        settings: GenerationSettings,
        cache: SentenceCache | None,
        window: int | None,
        max_batch: int,
        stop: Callable[[Job], bool],
        ended: Callable[[Job, SpeechdError | None], None],
    ) -> None:
        """`window`: the codec decoder's attention window; `stop(job)`: whether a row of `job` must
        leave now (cancelled, or the engine closing)."""
        self._model = model
        self._info = info
        self._settings = settings
        self._cache = cache
        self._stop = stop
        self._ended = ended
        self._decoders = [StreamingDecoder(model.decoder.copy(), window) for _ in range(max_batch)]
        self._batch = BatchGenerator(model, model.sampling(cloning=False))
        self._rows: dict[int, _Row] = {}
        self._ahead: dict[int, RowFrame] = {}
        """Every row's next frame, queued (its first at its join, the others a step ahead)."""
        self._next_id = 0

    @property
    def has_room(self) -> bool:
        return len(self._rows) < len(self._decoders)

    @property
    def busy(self) -> bool:
        return bool(self._rows)

    def serves(self, job: Job) -> bool:
        """Whether a sentence of `job` is a row now."""
        return any(row.request.job is job for row in self._rows.values())

    def join(self, request: RowRequest) -> None:
        """Prefill the sentence alone and queue its first frame; it steps with the batch from the next frame.

        Raises (SpeechdError for bad input) without joining when its prompt cannot be built.
        """
        slot = min(set(range(len(self._decoders))) - {row.slot for row in self._rows.values()})
        decoder = self._decoders[slot]
        utt = request.utterance
        prompt = start_utterance(self._model, decoder, utt)
        seed = request.seed + request.index if request.seed is not None else None
        if seed is None:  # drawn from MLX's global state: `mx.random.seed` still reproduces a run
            seed = int(mx.random.randint(0, 2**31 - 1))
        key = mx.random.key(seed)
        penalty = self._model.sampling(cloning=utt.in_context_clone).repetition_penalty
        ident, self._next_id = self._next_id, self._next_id + 1
        first = self._batch.add(ident, prompt, key, penalty)
        collector = FrameCollector(self._model, decoder, self._settings, None)
        cap = frame_cap(utt.text, self._settings.guards, self._info.max_frames)
        self._rows[ident] = _Row(request, collector, slot, cap)
        mx.async_eval(first.token, first.codes)
        self._ahead[ident] = first  # taken at the next step, once the frame after it is queued

    def warm_up(self, utt: Utterance) -> None:
        """Trace the batched frame for every batch size up to `max_batch` before serving."""
        prompt = start_utterance(self._model, self._decoders[0], utt)
        penalty = self._model.sampling(cloning=utt.in_context_clone).repetition_penalty
        idents = [-1 - i for i in range(len(self._decoders))]  # never a real row's
        for ident in idents:
            first = self._batch.add(ident, prompt, mx.random.key(0), penalty)
            mx.eval(first.token, [frame.codes for frame in self._batch.step().values()])
        for ident in idents:
            self._batch.remove(ident)

    def step(self) -> None:
        """Drop stopped rows, then hand every other row its next frame (chunks go out as they are due).

        Pipelined as the single-stream loop is: the following frame's graph is built and queued
        before this one is waited for, so a row that ends had one frame too many computed (dropped).
        """
        for ident in [i for i, row in self._rows.items() if self._stop(row.request.job)]:
            self._leave(ident, "cancelled")
        if not self._rows:
            return
        frames = self._ahead
        try:
            self._ahead = self._queue_step()
        except Exception as err:  # the whole batch is lost: every row's reply fails
            _LOGGER.exception("A batch step failed")
            for ident in list(self._rows):
                self._leave(ident, "failed", EngineFailure(f"synthesis failed: {err}"))
            return
        for ident, frame in frames.items():
            self._take(ident, frame)

    def _queue_step(self) -> dict[int, RowFrame]:
        frames = self._batch.step()
        mx.async_eval([array for frame in frames.values() for array in (frame.token, frame.codes)])
        return frames

    def _take(self, ident: int, frame: RowFrame) -> None:
        """Hand a row its (evaluated) frame; it leaves if that ended it."""
        row = self._rows[ident]
        try:
            mx.eval(frame.token, frame.codes)
            chunk, finish = row.collector.take(frame.token.reshape(1, 1), frame.codes[None])
            row.taken += 1
            if chunk is not None:
                row.deliver(chunk)
            if finish is None and row.taken >= row.cap:
                finish = "frame-cap"
            if finish is not None:
                log_end(finish, row.request.utterance.text, row.cap, quiet=False)
                row.deliver(row.collector.flush(finish))
                self._leave(ident, finish)
        except Exception as err:
            _LOGGER.exception("Synthesis failed for reply %d", row.request.job.id)
            self._leave(ident, "failed", EngineFailure(f"synthesis failed: {err}"))

    def _leave(self, ident: int, reason: str, error: SpeechdError | None = None) -> None:
        """Remove a row now (its KV caches go with it); store EOS-ended audio; tell the engine."""
        row = self._rows.pop(ident)
        self._batch.remove(ident)
        self._ahead.pop(ident, None)
        self._decoders[row.slot].reset()  # its window cache goes too
        request = row.request
        if error is None:
            request.job.sentence_done(reason)
            if self._cache is not None and request.cache_key is not None:
                self._cache.save(request.cache_key, b"".join(row.pieces), row.frames, reason)
        self._ended(request.job, error)
