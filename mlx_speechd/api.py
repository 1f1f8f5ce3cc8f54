"""The Python API: load a model once, then `generate`, `stream` or `astream` speech.

    import mlx_speechd
    with mlx_speechd.load() as tts:
        tts.generate("Hello there.", voice="ryan").save("hello.wav")

A `TTS` owns one engine thread (all MLX work runs there); any number of threads and
asyncio tasks may share it, their requests taking turns sentence by sentence.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack

import numpy as np

from .audio.pcm import SAMPLE_RATE, pcm16_to_float
from .audio.wavfile import AUDIO_FORMATS
from .engine.engine import Engine
from .engine.loader import resolve_model_path
from .engine.reply import Reply
from .engine.sentence_cache import open_audio_cache
from .engine.types import (
    DEFAULT_AUDIO_CACHE_SIZE,
    DEFAULT_MODEL,
    AudioCacheSettings,
    AudioChunk,
    CachePolicy,
    ChunkSchedule,
    EngineConfig,
    GuardSettings,
    ModelInfo,
    ReferenceAudio,
    ReplyOptions,
    SynthesisStats,
    VoiceSettings,
)
from .errors import InvalidRequestError
from .narration.runner import AudioFormat, LazyTTS, Narration, NarrationResult, NarrationSettings
from .narration.script import Segment, make_segments, read_script
from .settings import parse_size
from .voices.store import VOICES_DIR_ENV, default_voices_dir

Text = str | Iterable[str]
"""A whole text, or pieces of one as they arrive (an LLM's tokens, say)."""
AsyncText = str | Iterable[str] | AsyncIterable[str]
ReferenceInput = str | os.PathLike[str] | np.ndarray
"""Reference audio: a file, or mono float samples at 24 kHz."""


class SpeechOptions(TypedDict, total=False):
    """Keyword arguments of `generate`, `stream` and `astream`."""

    voice: str
    """A voice by name (`TTS.voices`): a preset speaker of a CustomVoice model or a voice library name."""
    language: str
    """'auto' (default), a name ('English') or a code ('en')."""
    instruct: str
    """Speaking style (1.7B CustomVoice) or the voice description (VoiceDesign)."""
    ref_audio: ReferenceInput
    """Base (cloning) models: the voice to clone."""
    ref_text: str
    """The transcript of `ref_audio`."""
    seed: int
    """Same seed, same text, same audio."""
    sentence_pause: float
    """Seconds of silence between sentences."""
    lead_in: float
    """Seconds of silence before the first audio."""


class EngineOptions(TypedDict, total=False):
    """Keyword arguments of `load`."""

    extra_models: Iterable[str | os.PathLike[str]]
    """More models to serve beside the first (each voice goes to the model that speaks it)."""
    voices_dir: str | os.PathLike[str] | None
    """The voice library (default: `$MLX_SPEECHD_VOICES_DIR`, else the per-user folder); None: none."""
    warmup: bool
    first_chunk_frames: int
    chunk_frames: int
    schedule: ChunkSchedule
    cache_policy: CachePolicy | str
    cache_limit_mb: int
    max_text_chars: int
    max_sentence_chars: int
    max_unsent_seconds: float
    """Unread audio a stream may hold before the engine starts no new sentence for it."""
    stall_timeout: float
    """Seconds a held stream may go unread before it is cancelled (ClientTooSlowError)."""
    decoder_window: int | None
    guards: GuardSettings
    voice: str
    language: str
    instruct: str
    ref_audio: ReferenceInput
    ref_text: str
    audio_cache: bool
    audio_cache_dir: str | os.PathLike[str] | None
    audio_cache_size: int | str
    max_batch: int
    """Sentences of concurrent replies generated together per model (1: one at a time)."""


class NarrateOptions(TypedDict, total=False):
    """Keyword arguments of `narrate` and `TTS.narrate`."""

    format: str
    """Segment files' format: "wav" (default) or "flac"."""
    join: str | os.PathLike[str]
    """Also write all segments into this one file (.wav or .flac)."""
    pause: float
    """Seconds of silence between segments in the joined file (default 0.5)."""
    voice: str
    language: str
    instruct: str
    seed: int
    """Defaults for segments that do not set their own."""
    progress: bool
    """Draw a progress bar on stderr when it is a terminal (default False)."""


Script = Iterable[str | Segment] | str | os.PathLike[str]
"""Texts and segments (`mlx_speechd.narration.Segment`; texts are numbered 001, 002, ...), or a
script file to read them from (`mlx_speechd.narration.read_script`; "-": stdin)."""

MODEL_ENV = "MLX_SPEECHD_MODEL"


@dataclass(frozen=True, eq=False)
class Audio:
    """A whole utterance: float32 `samples` in [-1, 1] and the same audio as 16-bit PCM."""

    samples: np.ndarray
    pcm: bytes
    """16-bit signed little-endian mono PCM."""
    sample_rate: int
    stats: SynthesisStats

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / self.sample_rate

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the audio; the format comes from the extension (.wav, .flac or .ogg)."""
        import soundfile

        target = check_audio_path(path)
        file_format, subtype = AUDIO_FORMATS[target.suffix.lower()]
        # 16-bit formats get the PCM itself (lossless); soundfile would scale floats by 32768, not 32767
        data = np.frombuffer(self.pcm, dtype="<i2") if subtype == "PCM_16" else self.samples
        soundfile.write(target, data, self.sample_rate, format=file_format, subtype=subtype)
        return target


def check_audio_path(path: str | os.PathLike[str]) -> Path:
    """The path `Audio.save` would write; InvalidRequestError for an unknown format or a missing folder."""
    target = Path(path).expanduser()
    if target.suffix.lower() not in AUDIO_FORMATS:
        raise InvalidRequestError(f"Cannot tell the audio format of '{target.name}': use .wav, .flac or .ogg")
    if not target.parent.is_dir():
        raise InvalidRequestError(f"Cannot save '{target}': folder '{target.parent}' does not exist")
    return target


ModelInput = str | os.PathLike[str]


def load(
    model: ModelInput | list[ModelInput] | tuple[ModelInput, ...] | None = None,
    **options: Unpack[EngineOptions],
) -> TTS:
    """Load a Qwen3-TTS model (hub id or local folder) and warm it up; close the result when done.

    Without `model`: `$MLX_SPEECHD_MODEL` if set (as for the command line), else `DEFAULT_MODEL`.
    Several models: `load([first, second])` or `load(first, extra_models=[second])`; the first is the
    default, and each voice (preset, library voice, reference audio) goes to the model that speaks it.
    """
    if model is None:
        model = os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if isinstance(model, list | tuple):
        if not model:
            raise InvalidRequestError("load() needs at least one model")
        options = {**options, "extra_models": [*model[1:], *options.get("extra_models", ())]}
        model = model[0]
    return TTS(engine_config(model, options))


def narrate(
    script: Script,
    out_dir: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    load: EngineOptions | None = None,
    **options: Unpack[NarrateOptions],
) -> NarrationResult:
    """Narrate `script` into `out_dir` (docs/narration.md), loading the model only when some
    segment is neither there already nor in the audio cache; `load` holds `load()`'s options
    (voice library, reference audio, audio cache, ...)."""
    segments = _segments(script)  # a bad script is reported before anything is loaded
    config = engine_config(model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL, load or {})
    speaker = LazyTTS(lambda: TTS(config))
    try:
        return _narrate(segments, out_dir, options, config, resolve_model_path(config.model), speaker)
    finally:
        if speaker.tts is not None:
            speaker.tts.close()


def _narrate(
    segments: Sequence[Segment],
    out_dir: str | os.PathLike[str],
    options: NarrateOptions,
    config: EngineConfig,
    model_path: Path,
    speaker: LazyTTS,
) -> NarrationResult:
    _check_keys("narrate", options, NarrateOptions)
    join = options.get("join")
    try:
        audio_format = AudioFormat(options.get("format", "wav"))
    except ValueError as err:
        raise InvalidRequestError(f"unknown audio format {options.get('format')!r}: use wav or flac") from err
    settings = NarrationSettings(
        format=audio_format,
        join=Path(join).expanduser() if join is not None else None,
        pause=options.get("pause", 0.5),
        voice=options.get("voice"),
        language=options.get("language"),
        instruct=options.get("instruct"),
        seed=options.get("seed"),
    )
    store = open_audio_cache(config.audio_cache)
    try:
        narration = Narration(Path(out_dir).expanduser(), settings, config, model_path, speaker, store)
        return narration.run(segments, options.get("progress", False))
    finally:
        if store is not None:
            store.close()


def _segments(script: Script) -> Sequence[Segment]:
    if isinstance(script, str | os.PathLike):
        return read_script(os.fspath(script))
    return make_segments(script)


def engine_config(model: ModelInput, options: EngineOptions) -> EngineConfig:
    """The engine configuration for `load`'s arguments (TypeError for an unknown one)."""
    _check_keys("load", options, EngineOptions)
    if "voices_dir" in options:
        voices_dir = options["voices_dir"]
    else:
        voices_dir = os.environ.get(VOICES_DIR_ENV) or default_voices_dir()
    voice = VoiceSettings(
        speaker=options.get("voice"),
        language=options.get("language"),
        instruct=options.get("instruct"),
        ref_audio=_reference(options.get("ref_audio")),
        ref_text=options.get("ref_text"),
    )
    try:
        return EngineConfig(
            model=os.fspath(model),
            extra_models=tuple(os.fspath(extra) for extra in options.get("extra_models", ())),
            voices_dir=None if voices_dir is None else Path(voices_dir).expanduser(),
            voice=voice,
            schedule=_schedule(options),
            guards=options.get("guards", GuardSettings()),
            cache_policy=CachePolicy(options.get("cache_policy", CachePolicy.CHUNK)),
            cache_limit_mb=options.get("cache_limit_mb", 1024),
            decoder_window=options.get("decoder_window"),
            max_text_chars=options.get("max_text_chars", 10000),
            max_sentence_chars=options.get("max_sentence_chars", EngineConfig.max_sentence_chars),
            max_unsent_seconds=options.get("max_unsent_seconds", EngineConfig.max_unsent_seconds),
            stall_timeout=options.get("stall_timeout", EngineConfig.stall_timeout),
            warmup=options.get("warmup", True),
            audio_cache=_audio_cache(options),
            max_batch=options.get("max_batch", EngineConfig.max_batch),
        )
    except ValueError as err:
        raise InvalidRequestError(str(err)) from err


def _audio_cache(options: EngineOptions) -> AudioCacheSettings:
    """The audio cache settings of `load`'s arguments; ValueError for a bad size."""
    folder = options.get("audio_cache_dir")
    size = options.get("audio_cache_size", DEFAULT_AUDIO_CACHE_SIZE)
    return AudioCacheSettings(
        enabled=options.get("audio_cache", True),
        folder=Path(folder).expanduser() if folder is not None else None,
        size_limit_bytes=parse_size(size) if isinstance(size, str) else size,
    )


def _schedule(options: EngineOptions) -> ChunkSchedule:
    first, steady = options.get("first_chunk_frames"), options.get("chunk_frames")
    if "schedule" in options:
        if first is not None or steady is not None:
            raise InvalidRequestError("give either schedule or first_chunk_frames/chunk_frames, not both")
        return options["schedule"]
    default = ChunkSchedule()
    return ChunkSchedule(
        default.first_frames if first is None else first, default.frames if steady is None else steady
    )


def _check_keys(function: str, given: Any, allowed: type) -> None:
    unknown = sorted(set(given) - set(allowed.__annotations__))
    if unknown:
        raise TypeError(
            f"{function}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(allowed.__annotations__)}"
        )


def _reference(ref: ReferenceInput | None) -> str | ReferenceAudio | None:
    if ref is None or isinstance(ref, str):
        return ref
    if isinstance(ref, os.PathLike):
        return os.fspath(ref)
    return ReferenceAudio(np.asarray(ref))


class TTS:
    """A loaded model and the engine thread that runs it. Use as a context manager, or `close()`."""

    def __init__(self, config: EngineConfig) -> None:
        self._engine = Engine(config)
        try:
            self.info: ModelInfo = self._engine.start()
        except BaseException:  # Ctrl-C while loading, too: the engine thread must not outlive us
            self._engine.close()
            raise
        self.sample_rate = SAMPLE_RATE

    @property
    def engine(self) -> Engine:
        """The engine itself, for `Engine.reply` (hand-fed replies) and its settings."""
        return self._engine

    @property
    def voices(self) -> tuple[str, ...]:
        """Voice names to pass as `voice`: preset speakers and library voices (as the library is now)."""
        return self._engine.voices

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """Every loaded model, the default (`info`) first."""
        return self._engine.models

    def close(self) -> None:
        """Cancel work in progress and release the model."""
        self._engine.close()

    def __enter__(self) -> TTS:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def narrate(
        self, script: Script, out_dir: str | os.PathLike[str], **options: Unpack[NarrateOptions]
    ) -> NarrationResult:
        """Narrate `script` into `out_dir` with this model (docs/narration.md)."""
        segments = _segments(script)
        return _narrate(
            segments, out_dir, options, self._engine.config, self.info.path, LazyTTS(lambda: self)
        )

    def generate(self, text: Text, **speech: Unpack[SpeechOptions]) -> Audio:
        """Speak a whole text (or all of an iterable's pieces) and return the audio."""
        reply = self._engine.reply(self._options(speech))
        pcm = b"".join(chunk.pcm for chunk in _chunks(reply, text))
        assert reply.stats is not None  # set before the reply's output ends
        return Audio(pcm16_to_float(pcm), pcm, SAMPLE_RATE, reply.stats)

    def stream(self, text: Text, **speech: Unpack[SpeechOptions]) -> Iterator[AudioChunk]:
        """Audio chunks as the model decodes them; leaving the loop early cancels the rest.

        `text` may be pieces that arrive over time: they are read on a helper thread.
        """
        options = self._options(speech)
        return self._stream(options, text)

    def astream(self, text: AsyncText, **speech: Unpack[SpeechOptions]) -> AsyncIterator[AudioChunk]:
        """`stream` for asyncio: `text` may also be an async iterable; never blocks the event loop."""
        options = self._options(speech)
        return self._astream(options, text)

    def _stream(self, options: ReplyOptions, text: Text) -> Iterator[AudioChunk]:
        yield from _chunks(self._engine.reply(options), text)

    async def _astream(self, options: ReplyOptions, text: AsyncText) -> AsyncIterator[AudioChunk]:
        reply = self._engine.reply(options)
        feeder: asyncio.Task[None] | None = None
        if isinstance(text, str):
            reply.speak(text)
            reply.finish()
        else:
            feeder = asyncio.create_task(_afeed(reply, text))
        try:
            async for chunk in reply:
                yield chunk
        finally:
            reply.cancel()  # a no-op once the reply has ended
            if feeder is not None and not feeder.done():
                feeder.cancel()
        if feeder is not None:
            await feeder  # raises what the text's iterable raised

    def _options(self, speech: SpeechOptions) -> ReplyOptions:
        """Reply options for `speech`, with the voice checked now (UnknownVoiceError and the like)."""
        _check_keys("speech", speech, SpeechOptions)
        voice = VoiceSettings(
            speaker=speech.get("voice"),
            language=speech.get("language"),
            instruct=speech.get("instruct"),
            ref_audio=_reference(speech.get("ref_audio")),
            ref_text=speech.get("ref_text"),
        )
        self._engine.resolve_voice(voice)
        return ReplyOptions(
            voice=voice,
            seed=speech.get("seed"),
            sentence_pause=speech.get("sentence_pause", 0.0),
            lead_in=speech.get("lead_in", 0.0),
        )


def _chunks(reply: Reply, text: Text) -> Iterator[AudioChunk]:
    """Feed `text` to `reply` (pieces on a helper thread) and yield its audio."""
    feeder: _Feeder | None = None
    if isinstance(text, str):
        reply.speak(text)
        reply.finish()
    else:
        feeder = _Feeder(reply, text)
    yield from reply  # leaving early cancels the reply
    if feeder is not None and feeder.error is not None:
        raise feeder.error


class _Feeder:
    """Reads text pieces on a helper thread (an iterable may block) and feeds them to a reply."""

    def __init__(self, reply: Reply, pieces: Iterable[str]) -> None:
        self.error: BaseException | None = None
        self._reply = reply
        threading.Thread(target=self._run, args=(pieces,), name="mlx-speechd-text", daemon=True).start()

    def _run(self, pieces: Iterable[str]) -> None:
        try:
            _feed(self._reply, pieces)
        except BaseException as err:  # handed to the reader of the reply
            self.error = err
            self._reply.cancel()


def _feed(reply: Reply, pieces: Iterable[str]) -> None:
    for piece in pieces:
        if reply.cancelled:
            return
        reply.add_text(_piece(piece))
    reply.finish()


async def _afeed(reply: Reply, pieces: Iterable[str] | AsyncIterable[str]) -> None:
    try:
        if isinstance(pieces, AsyncIterable):
            async for piece in pieces:
                reply.add_text(_piece(piece))
            reply.finish()
        else:
            await asyncio.to_thread(_feed, reply, pieces)
    except BaseException:
        reply.cancel()
        raise


def _piece(piece: object) -> str:
    if not isinstance(piece, str):
        raise TypeError(f"text pieces must be str, not {type(piece).__name__}")
    return piece


__all__ = [
    "TTS",
    "Audio",
    "AudioChunk",
    "EngineOptions",
    "NarrateOptions",
    "NarrationResult",
    "SpeechOptions",
    "SynthesisStats",
    "load",
    "narrate",
]
