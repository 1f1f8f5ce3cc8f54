"""The engine: one thread owns MLX and serves every reply from a fair queue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlx.core as mx

from ..audio.pcm import float_to_pcm16, silence
from ..cache import CacheKey
from ..errors import (
    ClientTooSlowError,
    EngineClosedError,
    EngineFailure,
    InvalidRequestError,
    SpeechdError,
    UnknownVoiceError,
)
from ..fingerprint import model_fingerprint
from ..voices.store import VoiceLibrary
from .adapter import Qwen3Model
from .decoder import StreamingDecoder
from .fast_generation import generate_utterance_fast
from .generation import GenerationSettings, Utterance
from .job import Job
from .loader import load_model
from .memory import IdleTrimmer
from .preflight import check_before_loading
from .reply import Reply
from .scheduler import BatchScheduler, RowRequest
from .sentence_cache import SentenceCache, open_audio_cache, replay_chunks
from .types import (
    EngineConfig,
    ModelInfo,
    ReferenceAudio,
    ReplyOptions,
    Variant,
    VoiceEntry,
    VoiceSettings,
)
from .voice_book import DEFAULT_DESIGN, VoiceBook

if TYPE_CHECKING:
    from ..cache import AudioCache
    from ..voices.prompt import VoicePrompt

_LOGGER = logging.getLogger(__name__)

_REF_AUDIO_CACHE = 4
_PROMPT_CACHE = 8


class Engine:
    """Loads the models and runs every synthesis on its own single thread.

    Replies take turns one sentence at a time, so a long reply cannot starve
    a short one. With `max_batch` above 1, up to that many sentences of different replies
    are generated together per model (`BatchScheduler`); a reply's next sentence joins when
    a row is free, in turn. `start()` blocks until every model is loaded and warmed up.
    Which model speaks which voice is the `voice_book`'s business (`VoiceBook`).
    A reply whose reader has `max_unsent_seconds` of audio unread is held
    (no new sentence starts for it) until the reader takes some; one held longer than
    `stall_timeout` is cancelled with `ClientTooSlowError`.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._runnable: deque[Job] = deque()
        self._held: set[Job] = set()
        """Jobs with work whose readers are behind; woken when their queue drains."""
        self._jobs: set[Job] = set()
        self._closing = False
        self._trimmer = IdleTrimmer()
        """Gives the C heap's freed pages back when the engine idles (engine thread only)."""
        self._next_id = 1
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._infos: tuple[ModelInfo, ...] = ()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="mlx-engine", daemon=True)
        self._ref_audio: OrderedDict[str, mx.array] = OrderedDict()
        self._prompts: OrderedDict[tuple[object, ...], VoicePrompt] = OrderedDict()
        library = VoiceLibrary(config.voices_dir) if config.voices_dir is not None else None
        self.voice_book = VoiceBook(config.voice, library, lambda: self.models)
        self._audio_cache: AudioCache | None = None

    # ---- life cycle ----
    def start(self) -> ModelInfo:
        """Load (on the engine thread), warm up, and return what the model can do (`check` first)."""
        self.check()
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        return self.info

    def check(self) -> None:
        """Raise now the mistakes that files alone reveal (a missing model folder or reference audio,
        an unknown voice), before the slow model load."""
        check_before_loading(self.config, self.library)

    async def astart(self) -> ModelInfo:
        return await asyncio.to_thread(self.start)

    def close(self) -> None:
        """Cancel everything and stop the engine thread."""
        with self._cond:
            self._closing = True
            jobs = list(self._jobs)
            self._cond.notify_all()
        for job in jobs:
            job.cancel()
        if self._thread.is_alive():
            self._stopped.wait(timeout=10)
        for job in jobs:
            self._end(job, EngineClosedError("the engine is shutting down"))

    @property
    def info(self) -> ModelInfo:
        """The default model's description."""
        return self.models[0]

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """Every loaded model, the default first."""
        if not self._infos:
            raise EngineClosedError("the engine has not started")
        return self._infos

    @property
    def library(self) -> VoiceLibrary | None:
        """The voice library the engine serves from, if any."""
        return self.voice_book.library

    @property
    def voices(self) -> tuple[str, ...]:
        """Voice names clients may ask for (library voices as the library is now)."""
        return self.voice_book.names

    def voice_entries(self) -> tuple[VoiceEntry, ...]:
        """Every voice clients may ask for, with its model (`VoiceBook.entries`)."""
        return self.voice_book.entries()

    @property
    def default_voice(self) -> str:
        """The voice used when a request names none."""
        return self.voice_book.default_voice

    # ---- replies ----
    def reply(self, options: ReplyOptions | None = None) -> Reply:
        """Start a reply (iterate it with `for` or `async for`); checks its voice now (SpeechdError)."""
        options = options or ReplyOptions()
        voice = self.resolve_voice(options.voice)
        options = ReplyOptions(
            voice=voice,
            seed=options.seed if options.seed is not None else voice.seed,
            sentence_pause=max(0.0, options.sentence_pause),
            lead_in=max(0.0, options.lead_in),
        )
        with self._cond:
            if self._closing:
                raise EngineClosedError("the engine is shutting down")
            job = Job(self._next_id, options, self._wake, self.config.max_unsent_seconds)
            self._next_id += 1
            self._jobs.add(job)
        return Reply(job, self.config.max_text_chars, self.config.max_sentence_chars)

    def _wake(self, job: Job) -> None:
        with self._cond:
            if job in self._jobs and job not in self._runnable:
                self._runnable.append(job)
            self._cond.notify_all()

    def resolve_voice(self, requested: VoiceSettings) -> VoiceSettings:
        """The voice and model for a request, merged over the defaults and checked (`VoiceBook.resolve`)."""
        return self.voice_book.resolve(requested)

    # ---- engine thread ----
    def _thread_main(self) -> None:
        try:
            self._run()
        finally:
            self._stopped.set()
        # Park instead of returning: MLX's CPU backend aborts the process ("terminate called
        # without an active exception") when a thread that ran kernels exits before the
        # interpreter does. A parked daemon thread holds no model (the locals are gone).
        threading.Event().wait()

    def _run(self) -> None:
        try:
            runtimes = self._load()
        except BaseException as err:  # reported to start()'s caller
            self._startup_error = err
            self._ready.set()
            return
        self._ready.set()
        if self.config.max_batch > 1:
            self._run_batched(runtimes)
        else:
            while (job := self._take()) is not None:
                self._serve_one(runtimes[self._model_name(job)], job)
        self._ref_audio.clear()
        self._prompts.clear()
        if self._audio_cache is not None:
            self._audio_cache.close()

    def _load(self) -> dict[str, _Runtime]:
        runtimes: dict[str, _Runtime] = {}
        self._audio_cache = open_audio_cache(self.config.audio_cache)
        for name in self.config.models:
            started, before = time.perf_counter(), mx.get_active_memory()
            model, info = load_model(name)
            window = self.config.decoder_window or info.decoder_window
            fingerprint = model_fingerprint(info.path)
            runtimes[info.name] = _Runtime(
                info,
                model,
                StreamingDecoder(model.decoder, window),
                GenerationSettings(
                    self.config.schedule,
                    self.config.guards,
                    self.config.cache_policy,
                    self.config.cache_limit_mb * 1024 * 1024,
                ),
                fingerprint,
                SentenceCache(
                    self._audio_cache, fingerprint, window, model.sampling, row_keys=self.config.max_batch > 1
                )
                if self._audio_cache is not None
                else None,
            )
            _LOGGER.info(
                "Loaded %s (%s, %s) in %.1fs, %.0f MB",
                name,
                info.variant,
                info.size,
                time.perf_counter() - started,
                (mx.get_active_memory() - before) / 1e6,
            )
        self._infos = tuple(runtime.info for runtime in runtimes.values())
        _LOGGER.info("Voices: %s", ", ".join(self.voices))
        self._check_default_voice()
        if self.config.warmup:
            for runtime in runtimes.values():
                self._warm_up(runtime)
        return runtimes

    def _model_name(self, job: Job) -> str:
        return job.options.voice.model or self.info.name

    def _take(self, fits: Callable[[Job], bool] | None = None) -> Job | None:
        """Wait for the next job with work (or one that can end) whose reader keeps up; None when closing.

        With `fits` (rows are running): the first such job that `fits` accepts, or None at once.
        """
        while True:
            with self._cond:
                if self._closing:
                    return None
                stalled = [job for job in self._held if job.output.stalled_for() > self.config.stall_timeout]
                self._held.difference_update(stalled)
                if not stalled:
                    job = self._next_runnable(fits)
                    if job is not None or fits is not None:
                        self._trimmer.busy()
                        return job
                    if not (trim := self._trimmer.due()):
                        limit = self.config.stall_timeout / 4 if self._held else None
                        self._cond.wait(self._trimmer.wait_seconds(limit))
            if not stalled and trim:  # idle for a while: once per idle spell, outside the lock
                self._trimmer.trim()
            for job in stalled:
                self._stall(job)

    def _next_runnable(self, fits: Callable[[Job], bool] | None) -> Job | None:
        """Pop the first runnable job that keeps up (and fits); the condition is held."""
        skipped: list[Job] = []
        found = None
        while self._runnable:
            job = self._runnable.popleft()
            if job.output.backlogged and not job.cancelled:
                self._held.add(job)  # back in the queue when its reader drains (ChunkQueue.on_drain)
            elif fits is not None and not fits(job):
                skipped.append(job)  # keeps its turn
            else:
                self._held.discard(job)
                found = job
                break
        self._runnable.extendleft(reversed(skipped))
        return found

    def _stall(self, job: Job) -> None:
        """Cancel a reply whose reader took nothing for too long."""
        _LOGGER.warning(
            "Reply %d: the client read no audio for %.0fs with %.1fs unsent; cancelling it",
            job.id,
            job.output.stalled_for(),
            job.output.unsent_seconds,
        )
        job.cancel()
        self._end(job, ClientTooSlowError(f"the client read no audio for {self.config.stall_timeout:g}s"))

    def _serve_one(self, runtime: _Runtime, job: Job) -> None:
        item = job.next_sentence()
        if (
            item is not None
            and not job.cancelled
            and not self._attempt(job, self._speak, runtime, job, *item)
        ):
            return
        self._sentence_ended(job)

    def _attempt(self, job: Job, action: Callable[..., None], *args: object) -> bool:
        """Run `action(*args)` for `job`; on an error end the job with it and return False."""
        try:
            action(*args)
        except SpeechdError as err:
            self._end(job, err)
            return False
        except Exception as err:
            _LOGGER.exception("Synthesis failed for reply %d", job.id)
            self._end(job, EngineFailure(f"synthesis failed: {err}"))
            return False
        return True

    def _sentence_ended(self, job: Job, error: SpeechdError | None = None) -> None:
        """After a sentence of `job`: its next one takes its turn, or the job ends."""
        if error is not None:
            self._end(job, error)
        elif job.has_pending():
            self._wake(job)
        elif job.complete():
            self._end(job)

    # ---- the batched loop (max_batch > 1) ----
    def _run_batched(self, runtimes: dict[str, _Runtime]) -> None:
        """Admit sentences into their models' batches while rows are free, else step every batch a frame."""
        schedulers = {name: self._scheduler(runtime) for name, runtime in runtimes.items()}

        def fits(job: Job) -> bool:
            scheduler = schedulers[self._model_name(job)]
            return job.cancelled or scheduler.has_room or scheduler.serves(job)

        while not self._closing:
            busy = any(scheduler.busy for scheduler in schedulers.values())
            job = self._take(fits if busy else None)
            if job is not None:
                name = self._model_name(job)
                self._admit(runtimes[name], schedulers[name], job)
            elif busy:
                for scheduler in schedulers.values():
                    scheduler.step()

    def _scheduler(self, runtime: _Runtime) -> BatchScheduler:
        scheduler = BatchScheduler(
            runtime.model,
            runtime.info,
            runtime.settings,
            runtime.cache,
            runtime.decoder.window,
            self.config.max_batch,
            lambda job: job.cancelled or self._closing,
            self._sentence_ended,
        )
        if self.config.warmup:
            scheduler.warm_up(self._utterance(runtime, self._warm_up_voice(runtime.info), "Hello."))
        return scheduler

    def _admit(self, runtime: _Runtime, scheduler: BatchScheduler, job: Job) -> None:
        """Start `job`'s next sentence as a row (or replay it from the audio cache)."""
        if scheduler.serves(job):
            return  # one row per reply, so its sentences stay in order; the row's end wakes it
        item = job.next_sentence()
        if item is None or job.cancelled:
            self._sentence_ended(job)
        else:  # the row's end (or an error) takes the job on from here
            self._attempt(job, self._start_row, runtime, scheduler, job, *item)

    def _start_row(
        self, runtime: _Runtime, scheduler: BatchScheduler, job: Job, index: int, text: str
    ) -> None:
        replayed, key = self._open_sentence(runtime, job, index, text)
        if replayed:
            self._sentence_ended(job)
            return
        utterance = self._utterance(runtime, job.options.voice, text)
        scheduler.join(RowRequest(job, index, utterance, job.options.seed, key))

    def _end(self, job: Job, error: SpeechdError | None = None) -> None:
        with self._cond:
            self._jobs.discard(job)
            self._held.discard(job)
        if job.end(error) and job.stats is not None:
            _LOGGER.info("Reply %d: %s", job.id, job.stats.summary())

    def _open_sentence(
        self, runtime: _Runtime, job: Job, index: int, text: str
    ) -> tuple[bool, CacheKey | None]:
        """Send the silence before a sentence and look it up in the audio cache: whether it was
        replayed from there, and its cache key (None when the cache is off)."""
        options = job.options
        if index == 0 and options.lead_in:
            job.emit(silence(options.lead_in), index, 0, 0.0)
        elif index > 0 and options.sentence_pause:
            job.emit(silence(options.sentence_pause), index, 0, 0.0)
        cache, library = runtime.cache, options.voice.library
        if cache is None:
            return False, None
        # a library voice's definition is part of the key
        key = cache.key(options, index, text, self.voice_book.library_voice(library) if library else None)
        return self._replay(cache, runtime, job, index, key), key

    def _speak(self, runtime: _Runtime, job: Job, index: int, text: str) -> None:
        """Speak one sentence of `job` with `runtime`'s model (the one its voice belongs to)."""
        replayed, key = self._open_sentence(runtime, job, index, text)
        if replayed:
            return
        options, cache = job.options, runtime.cache
        if options.seed is not None:
            mx.random.seed(options.seed + index)
        mx.reset_peak_memory()
        utterance = self._utterance(runtime, options.voice, text)
        reason = "cancelled"
        pieces: list[bytes] = []
        frames = 0
        for chunk in generate_utterance_fast(
            runtime.model,
            runtime.info,
            runtime.decoder,
            utterance,
            runtime.settings,
            lambda: job.cancelled or self._closing,
        ):
            if chunk.audio.size:
                pieces.append(float_to_pcm16(chunk.audio))
                job.emit(pieces[-1], index, chunk.frames, chunk.compute_seconds)
            job.account(chunk.frames, chunk.compute_seconds, mx.get_peak_memory())
            frames += chunk.frames
            reason = chunk.finish_reason or reason
        job.sentence_done(reason)
        if cache is not None and key is not None:
            cache.save(key, b"".join(pieces), frames, reason)

    def _replay(self, cache: SentenceCache, runtime: _Runtime, job: Job, index: int, key: CacheKey) -> bool:
        """Stream a cached sentence in the chunk sizes of a fresh one; False on a miss."""
        started = time.perf_counter()
        cached = cache.lookup(key)
        if cached is None:
            return False
        for pcm, frames in replay_chunks(cached, runtime.settings.schedule):
            if job.cancelled or self._closing:
                job.sentence_done("cancelled", cached=True)
                return True
            now = time.perf_counter()
            job.emit(pcm, index, frames, now - started)
            job.account(frames, now - started, 0)
            started = now
        job.sentence_done(cached.finish_reason, cached=True)
        return True

    def _utterance(self, runtime: _Runtime, voice: VoiceSettings, text: str) -> Utterance:
        language = voice.language or "auto"
        if voice.library is not None:
            prompt = self._library_prompt(runtime, voice.library)
            return Utterance(text, None, language, None, None, None, prompt.clone, prompt.decoder)
        return Utterance(
            text=text,
            speaker=voice.speaker,
            language=language,
            instruct=voice.instruct,
            ref_audio=self._load_ref_audio(runtime.model, voice.ref_audio) if voice.ref_audio else None,
            ref_text=voice.ref_text,
        )

    def _library_prompt(self, runtime: _Runtime, name: str) -> VoicePrompt:
        """A clone voice's saved prompt for `runtime`'s model: kept in memory, read from its folder,
        or computed (and saved there) the first time."""
        from ..voices.prompt import voice_prompt  # imports the engine's modules: not at import time

        if self.library is None:
            raise UnknownVoiceError(f"Unknown voice '{name}': no voice library")
        voice = self.library.get(name)  # removed or replaced since the request: seen here
        try:
            ref = voice.ref_audio_path.stat()
        except OSError as err:
            raise UnknownVoiceError(f"voice '{name}' is unreadable: {err}") from err
        key: tuple[object, ...] = (runtime.info.name, voice.name, voice.created, ref.st_ino, ref.st_mtime_ns)
        key += (ref.st_size, voice.settings.ref_text, voice.settings.x_vector_only)
        if key in self._prompts:
            self._prompts.move_to_end(key)
            return self._prompts[key]
        started = time.perf_counter()
        prompt = voice_prompt(runtime.model, runtime.decoder, voice, runtime.fingerprint)
        _LOGGER.info("Prompt of voice '%s' ready in %.3fs", name, time.perf_counter() - started)
        self._prompts[key] = prompt
        if len(self._prompts) > _PROMPT_CACHE:
            self._prompts.popitem(last=False)
        return prompt

    def _load_ref_audio(self, model: Qwen3Model, ref: str | ReferenceAudio) -> mx.array:
        if isinstance(ref, ReferenceAudio):
            return mx.array(ref.samples)  # made here, on the engine thread
        if ref in self._ref_audio:
            self._ref_audio.move_to_end(ref)
            return self._ref_audio[ref]
        try:
            audio = model.load_audio(str(Path(ref).expanduser()))
        except Exception as err:
            raise InvalidRequestError(f"Cannot read reference audio '{ref}': {err}") from err
        self._ref_audio[ref] = audio
        if len(self._ref_audio) > _REF_AUDIO_CACHE:
            self._ref_audio.popitem(last=False)
        return audio

    def _check_default_voice(self) -> None:
        """Fail at start-up, not at the first request, when the configured voice is wrong."""
        try:
            self.resolve_voice(VoiceSettings())
        except InvalidRequestError as err:
            if self.info.variant is not Variant.BASE or self.config.voice.ref_audio:
                raise
            if own := self.voice_book.library_voices(self.info.name):  # requests can name one of them
                names = ", ".join(own)
                _LOGGER.info("No default voice for %s; its library voices: %s", self.info.name, names)
            else:
                _LOGGER.warning("%s; until then every request must bring its own reference audio", err)

    def _warm_up(self, runtime: _Runtime) -> None:
        """Compile kernels for the first-chunk and steady chunk shapes before serving."""
        started = time.perf_counter()
        frames = runtime.settings.schedule.size(0) + runtime.settings.schedule.size(1)
        for _ in generate_utterance_fast(
            runtime.model,
            runtime.info,
            runtime.decoder,
            self._utterance(runtime, self._warm_up_voice(runtime.info), "Hello."),
            runtime.settings,
            lambda: False,
            max_frames=frames,
        ):
            pass
        mx.clear_cache()
        _LOGGER.info("Warmed up %s in %.2fs", runtime.info.name, time.perf_counter() - started)

    def _warm_up_voice(self, info: ModelInfo) -> VoiceSettings:
        if info is self.info:
            try:
                return self.voice_book.resolve_default(self.config.voice)
            except InvalidRequestError:  # a Base model without reference audio: warm up unconditioned
                return VoiceSettings(language="auto")
        if info.variant is Variant.CUSTOM_VOICE:
            return VoiceSettings(speaker=info.speakers[0], language="auto")
        if info.variant is Variant.VOICE_DESIGN:
            return VoiceSettings(language="auto", instruct=DEFAULT_DESIGN)
        return VoiceSettings(language="auto")


@dataclass(frozen=True)
class _Runtime:
    """What the engine thread holds per model while serving."""

    info: ModelInfo
    model: Qwen3Model
    decoder: StreamingDecoder
    settings: GenerationSettings
    fingerprint: str
    """`model_fingerprint` of its folder: which saved voice prompts fit it."""
    cache: SentenceCache | None
    """Its keys into the shared audio cache; None when the cache is off."""
