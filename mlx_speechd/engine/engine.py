"""The engine: one thread owns MLX and serves every reply from a fair queue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx

from ..audio.pcm import float_to_pcm16, silence
from ..errors import (
    ClientTooSlowError,
    EngineClosedError,
    EngineFailure,
    InvalidRequestError,
    SpeechdError,
    UnknownVoiceError,
)
from .adapter import Qwen3Model
from .decoder import StreamingDecoder
from .generation import GenerationSettings, Utterance, generate_utterance
from .job import Job
from .loader import ISO_LANGUAGES, load_model
from .reply import Reply
from .types import EngineConfig, ModelInfo, ReferenceAudio, ReplyOptions, Variant, VoiceSettings

_LOGGER = logging.getLogger(__name__)

DEFAULT_DESIGN = "A clear, warm, natural voice speaking at a relaxed pace."
_REF_AUDIO_CACHE = 4


class Engine:
    """Loads the model and runs every synthesis on its own single thread.

    Replies take turns one sentence at a time, so a long reply cannot starve
    a short one. A reply whose reader has `max_unsent_seconds` of audio unread is held
    (no new sentence starts for it) until the reader takes some; one held longer than
    `stall_timeout` is cancelled with `ClientTooSlowError`. `start()` blocks until the
    model is loaded and warmed up.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._runnable: deque[Job] = deque()
        self._held: set[Job] = set()
        """Jobs with work whose readers are behind; woken when their queue drains."""
        self._jobs: set[Job] = set()
        self._closing = False
        self._next_id = 1
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._info: ModelInfo | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="mlx-engine", daemon=True)
        self._ref_audio: OrderedDict[str, mx.array] = OrderedDict()

    # ---- life cycle ----
    def start(self) -> ModelInfo:
        """Load (on the engine thread), warm up, and return what the model can do."""
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        assert self._info is not None
        return self._info

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
        if self._info is None:
            raise EngineClosedError("the engine has not started")
        return self._info

    @property
    def voices(self) -> tuple[str, ...]:
        """Voice names clients may ask for."""
        info = self.info
        if info.variant is Variant.CUSTOM_VOICE:
            return info.speakers
        return (self._own_voice_name(),)

    def _own_voice_name(self) -> str:
        ref = self.config.voice.ref_audio
        if self.info.variant is Variant.BASE and ref:
            return ref.name if isinstance(ref, ReferenceAudio) else Path(ref).stem
        return "designed" if self.info.variant is Variant.VOICE_DESIGN else "default"

    @property
    def default_voice(self) -> str:
        """The voice used when a request names none."""
        speaker = (self.config.voice.speaker or "").lower()
        if speaker in self.voices:
            return speaker
        return "ryan" if "ryan" in self.voices else self.voices[0]

    # ---- replies ----
    def reply(self, options: ReplyOptions | None = None) -> Reply:
        """Start a reply (iterate it with `for` or `async for`); checks its voice now (SpeechdError)."""
        options = options or ReplyOptions()
        options = ReplyOptions(
            voice=self.resolve_voice(options.voice),
            seed=options.seed,
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
        """Merge `requested` over the defaults and check it against the model."""
        info = self.info
        voice = requested.over(self.config.voice)
        language = normalize_language(voice.language or "auto", info.languages)
        speaker = (voice.speaker or "").strip().lower() or None
        if speaker is not None and speaker not in self.voices:
            raise UnknownVoiceError(
                f"Unknown voice '{voice.speaker}'. This model's voices: {', '.join(self.voices)}"
            )
        instruct = voice.instruct or None
        if info.variant is Variant.CUSTOM_VOICE:
            speaker = speaker or self.default_voice
            if instruct and info.size == "0b6":
                _LOGGER.warning("0.6B CustomVoice models ignore instruct; dropping it")
                instruct = None
            return VoiceSettings(speaker=speaker, language=language, instruct=instruct)
        if info.variant is Variant.VOICE_DESIGN:
            return VoiceSettings(language=language, instruct=instruct or DEFAULT_DESIGN)
        if not voice.ref_audio:
            raise InvalidRequestError(
                "This is a Base (voice cloning) model: give reference audio (--ref-audio) and "
                "its transcript (--ref-text)"
            )
        if isinstance(voice.ref_audio, str) and not Path(voice.ref_audio).expanduser().is_file():
            raise InvalidRequestError(f"Reference audio '{voice.ref_audio}' does not exist")
        return VoiceSettings(language=language, ref_audio=voice.ref_audio, ref_text=voice.ref_text or None)

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
            runtime = self._load()
        except BaseException as err:  # reported to start()'s caller
            self._startup_error = err
            self._ready.set()
            return
        self._ready.set()
        while (job := self._take()) is not None:
            self._serve_one(runtime, job)
        self._ref_audio.clear()

    def _load(self) -> _Runtime:
        model, self._info = load_model(self.config.model)
        window = self.config.decoder_window or self._info.decoder_window
        runtime = _Runtime(
            model,
            StreamingDecoder(model.decoder, window),
            GenerationSettings(
                self.config.schedule,
                self.config.guards,
                self.config.cache_policy,
                self.config.cache_limit_mb * 1024 * 1024,
            ),
        )
        _LOGGER.info(
            "Loaded %s (%s, %s), voices: %s",
            self.config.model,
            self._info.variant,
            self._info.size,
            ", ".join(self.voices),
        )
        self._check_default_voice()
        if self.config.warmup:
            self._warm_up(runtime)
        return runtime

    def _take(self) -> Job | None:
        """Wait for the next job with work (or one that can end) whose reader keeps up; None when closing."""
        while True:
            with self._cond:
                if self._closing:
                    return None
                stalled = [job for job in self._held if job.output.stalled_for() > self.config.stall_timeout]
                self._held.difference_update(stalled)
                if not stalled:
                    while self._runnable:
                        job = self._runnable.popleft()
                        if not job.output.backlogged or job.cancelled:
                            self._held.discard(job)
                            return job
                        self._held.add(job)  # back in the queue when its reader drains (ChunkQueue.on_drain)
                    self._cond.wait(self.config.stall_timeout / 4 if self._held else None)
            for job in stalled:
                self._stall(job)

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
        if item is not None and not job.cancelled:
            try:
                self._speak(runtime, job, *item)
            except SpeechdError as err:
                self._end(job, err)
                return
            except Exception as err:
                _LOGGER.exception("Synthesis failed for reply %d", job.id)
                self._end(job, EngineFailure(f"synthesis failed: {err}"))
                return
        if job.has_pending():
            self._wake(job)
        elif job.complete():
            self._end(job)

    def _end(self, job: Job, error: SpeechdError | None = None) -> None:
        with self._cond:
            self._jobs.discard(job)
            self._held.discard(job)
        if job.end(error) and job.stats is not None:
            _LOGGER.info("Reply %d: %s", job.id, job.stats.summary())

    def _speak(self, runtime: _Runtime, job: Job, index: int, text: str) -> None:
        options = job.options
        if index == 0 and options.lead_in:
            job.emit(silence(options.lead_in), index, 0, 0.0)
        elif index > 0 and options.sentence_pause:
            job.emit(silence(options.sentence_pause), index, 0, 0.0)
        if options.seed is not None:
            mx.random.seed(options.seed + index)
        mx.reset_peak_memory()
        utterance = self._utterance(runtime.model, options.voice, text)
        reason = "cancelled"
        for chunk in generate_utterance(
            runtime.model,
            self.info,
            runtime.decoder,
            utterance,
            runtime.settings,
            lambda: job.cancelled or self._closing,
        ):
            if chunk.audio.size:
                job.emit(float_to_pcm16(chunk.audio), index, chunk.frames, chunk.compute_seconds)
            job.account(chunk.frames, chunk.compute_seconds, mx.get_peak_memory())
            reason = chunk.finish_reason or reason
        job.sentence_done(reason)

    def _utterance(self, model: Qwen3Model, voice: VoiceSettings, text: str) -> Utterance:
        return Utterance(
            text=text,
            speaker=voice.speaker,
            language=voice.language or "auto",
            instruct=voice.instruct,
            ref_audio=self._load_ref_audio(model, voice.ref_audio) if voice.ref_audio else None,
            ref_text=voice.ref_text,
        )

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
            _LOGGER.warning("%s; until then every request must bring its own reference audio", err)

    def _warm_up(self, runtime: _Runtime) -> None:
        """Compile kernels for the first-chunk and steady chunk shapes before serving."""
        started = time.perf_counter()
        try:
            voice = self.resolve_voice(VoiceSettings())
        except InvalidRequestError:  # a Base model without reference audio: warm up unconditioned
            voice = VoiceSettings(language="auto")
        frames = runtime.settings.schedule.size(0) + runtime.settings.schedule.size(1)
        for _ in generate_utterance(
            runtime.model,
            self.info,
            runtime.decoder,
            self._utterance(runtime.model, voice, "Hello."),
            runtime.settings,
            lambda: False,
            max_frames=frames,
        ):
            pass
        mx.clear_cache()
        _LOGGER.info("Warmed up in %.2fs", time.perf_counter() - started)


@dataclass(frozen=True)
class _Runtime:
    """What the engine thread holds while serving: the model, its decoder, generation settings."""

    model: Qwen3Model
    decoder: StreamingDecoder
    settings: GenerationSettings


def normalize_language(language: str, supported: tuple[str, ...]) -> str:
    """Map 'en', 'en-US', 'English' etc. to the model's language names."""
    key = language.strip().lower().replace("-", "_")
    key = ISO_LANGUAGES.get(key.split("_")[0], key) if key not in supported else key
    if key not in supported:
        raise InvalidRequestError(f"Unsupported language '{language}'. Supported: {', '.join(supported)}")
    return key
