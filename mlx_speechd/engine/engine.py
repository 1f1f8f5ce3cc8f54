"""The engine: one thread owns MLX and serves every reply from a fair queue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import mlx.core as mx

from ..audio.pcm import float_to_pcm16, silence
from .decoder import StreamingDecoder, raw_decoder
from .generation import GenerationSettings, Utterance, generate_utterance
from .loader import ISO_LANGUAGES, ModelInfo, load_model
from .reply import Reply
from .types import (
    EngineClosedError,
    EngineConfig,
    EngineFailure,
    InvalidRequestError,
    ReplyOptions,
    SpeechdError,
    UnknownVoiceError,
    Variant,
    VoiceSettings,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_DESIGN = "A clear, warm, natural voice speaking at a relaxed pace."
_REF_AUDIO_CACHE = 4


class Engine:
    """Loads the model and runs every synthesis on its own single thread.

    Replies take turns one sentence at a time, so a long reply cannot starve
    a short one. `start()` blocks until the model is loaded and warmed up.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._runnable: deque[Reply] = deque()
        self._replies: set[Reply] = set()
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
            replies = list(self._replies)
            self._cond.notify_all()
        for reply in replies:
            reply.cancel()
        if self._thread.is_alive():
            self._stopped.wait(timeout=10)
        for reply in replies:
            self._end(reply, EngineClosedError("the engine is shutting down"))

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
        if self.info.variant is Variant.BASE and self.config.voice.ref_audio:
            return Path(self.config.voice.ref_audio).stem
        return "designed" if self.info.variant is Variant.VOICE_DESIGN else "default"

    @property
    def default_voice(self) -> str:
        """The voice used when a request names none."""
        speaker = (self.config.voice.speaker or "").lower()
        if speaker in self.voices:
            return speaker
        return "ryan" if "ryan" in self.voices else self.voices[0]

    # ---- replies ----
    def reply(self, options: ReplyOptions | None = None, *, asynchronous: bool = False) -> Reply:
        """Start a reply; validates its voice now (raises SpeechdError)."""
        options = options or ReplyOptions()
        options = ReplyOptions(
            voice=self.resolve_voice(options.voice),
            seed=options.seed,
            sentence_pause=max(0.0, options.sentence_pause),
            lead_in=max(0.0, options.lead_in),
        )
        loop = asyncio.get_running_loop() if asynchronous else None
        with self._cond:
            if self._closing:
                raise EngineClosedError("the engine is shutting down")
            reply = Reply(self._next_id, options, self.config.max_text_chars, self._wake, loop)
            self._next_id += 1
            self._replies.add(reply)
        return reply

    def _wake(self, reply: Reply) -> None:
        with self._cond:
            if reply in self._replies and reply not in self._runnable:
                self._runnable.append(reply)
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
        if not Path(voice.ref_audio).expanduser().is_file():
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
            model, self._info = load_model(self.config.model)
            window = self.config.decoder_window or self._info.decoder_window
            decoder = StreamingDecoder(raw_decoder(model), window)
            settings = GenerationSettings(
                self.config.schedule,
                self.config.guards,
                self.config.cache_policy,
                self.config.cache_limit_mb * 1024 * 1024,
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
                self._warm_up(model, decoder, settings)
        except BaseException as err:  # reported to start()'s caller
            self._startup_error = err
            self._ready.set()
            return
        self._ready.set()
        while (reply := self._take()) is not None:
            self._serve_one(model, decoder, settings, reply)

    def _take(self) -> Reply | None:
        """Wait for the next reply with work (or one that can end); None when closing."""
        with self._cond:
            while True:
                if self._closing:
                    return None
                if self._runnable:
                    return self._runnable.popleft()
                self._cond.wait()

    def _serve_one(
        self, model: Any, decoder: StreamingDecoder, settings: GenerationSettings, reply: Reply
    ) -> None:
        item = reply._next_sentence()
        if item is not None and not reply.cancelled:
            try:
                self._speak(model, decoder, settings, reply, *item)
            except SpeechdError as err:
                self._end(reply, err)
                return
            except Exception as err:
                _LOGGER.exception("Synthesis failed for reply %d", reply.id)
                self._end(reply, EngineFailure(f"synthesis failed: {err}"))
                return
        if reply._has_pending():
            self._wake(reply)
        elif reply._complete():
            self._end(reply)

    def _end(self, reply: Reply, error: SpeechdError | None = None) -> None:
        with self._cond:
            self._replies.discard(reply)
        if reply._end(error) and reply.stats is not None:
            _LOGGER.info("Reply %d: %s", reply.id, reply.stats.summary())

    def _speak(
        self,
        model: Any,
        decoder: StreamingDecoder,
        settings: GenerationSettings,
        reply: Reply,
        index: int,
        text: str,
    ) -> None:
        options = reply.options
        if index == 0 and options.lead_in:
            reply._emit(silence(options.lead_in), index, 0, 0.0)
        elif index > 0 and options.sentence_pause:
            reply._emit(silence(options.sentence_pause), index, 0, 0.0)
        if options.seed is not None:
            mx.random.seed(options.seed + index)
        mx.reset_peak_memory()
        utterance = self._utterance(options.voice, text)
        reason = "cancelled"
        for chunk in generate_utterance(
            model, self.info, decoder, utterance, settings, lambda: reply.cancelled or self._closing
        ):
            if chunk.audio.size:
                reply._emit(float_to_pcm16(chunk.audio), index, chunk.frames, chunk.compute_seconds)
            reply._account(chunk.frames, chunk.compute_seconds, mx.get_peak_memory())
            reason = chunk.finish_reason or reason
        reply._sentence_done(reason)

    def _utterance(self, voice: VoiceSettings, text: str) -> Utterance:
        return Utterance(
            text=text,
            speaker=voice.speaker,
            language=voice.language or "auto",
            instruct=voice.instruct,
            ref_audio=self._load_ref_audio(voice.ref_audio) if voice.ref_audio else None,
            ref_text=voice.ref_text,
        )

    def _load_ref_audio(self, path: str) -> mx.array:
        if path in self._ref_audio:
            self._ref_audio.move_to_end(path)
            return self._ref_audio[path]
        from mlx_audio.utils import load_audio

        try:
            audio = load_audio(str(Path(path).expanduser()), sample_rate=self.info.sample_rate)
        except Exception as err:
            raise InvalidRequestError(f"Cannot read reference audio '{path}': {err}") from err
        self._ref_audio[path] = audio
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

    def _warm_up(self, model: Any, decoder: StreamingDecoder, settings: GenerationSettings) -> None:
        """Compile kernels for the first-chunk and steady chunk shapes before serving."""
        started = time.perf_counter()
        try:
            voice = self.resolve_voice(VoiceSettings())
        except InvalidRequestError:  # a Base model without reference audio: warm up unconditioned
            voice = VoiceSettings(language="auto")
        frames = settings.schedule.size(0) + settings.schedule.size(1)
        for _ in generate_utterance(
            model,
            self.info,
            decoder,
            self._utterance(voice, "Hello."),
            settings,
            lambda: False,
            max_frames=frames,
        ):
            pass
        mx.clear_cache()
        _LOGGER.info("Warmed up in %.2fs", time.perf_counter() - started)


def normalize_language(language: str, supported: tuple[str, ...]) -> str:
    """Map 'en', 'en-US', 'English' etc. to the model's language names."""
    key = language.strip().lower().replace("-", "_")
    key = ISO_LANGUAGES.get(key.split("_")[0], key) if key not in supported else key
    if key not in supported:
        raise InvalidRequestError(f"Unsupported language '{language}'. Supported: {', '.join(supported)}")
    return key
