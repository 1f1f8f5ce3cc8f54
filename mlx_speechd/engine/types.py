"""Plain data passed into and out of the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from ..audio.pcm import pcm16_to_float
from ..errors import InvalidRequestError
from ..text.sentences import MAX_SENTENCE_CHARS

DEFAULT_MODEL = "mlx-community/Qwen3-TTS-12Hz-0.6B-CustomVoice-8bit"


class Variant(StrEnum):
    """The three Qwen3-TTS model variants."""

    CUSTOM_VOICE = "custom_voice"
    VOICE_DESIGN = "voice_design"
    BASE = "base"


class CachePolicy(StrEnum):
    """When the engine gives MLX's buffer cache back to the system."""

    CHUNK = "chunk"
    """Clear at every chunk boundary (flat memory, a small cost per chunk)."""
    LIMIT = "limit"
    """Clear at a chunk boundary only when the cache is over the configured limit."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model can do; immutable, so any thread may read it."""

    name: str
    path: Path
    variant: Variant
    size: str
    speakers: tuple[str, ...]
    languages: tuple[str, ...]
    sample_rate: int
    max_frames: int
    decoder_window: int | None
    has_codec_encoder: bool


@dataclass(frozen=True, eq=False)
class ReferenceAudio:
    """Reference samples given in memory rather than as a file: mono float32 at 24 kHz."""

    samples: np.ndarray
    name: str = "reference"

    def __post_init__(self) -> None:
        samples = np.array(self.samples, dtype=np.float32)  # a private copy
        if samples.ndim == 2:  # [samples, channels]
            samples = samples.mean(axis=1)
        if samples.ndim != 1 or samples.size == 0:
            raise InvalidRequestError("Reference audio must be mono (or [samples, channels]) and not empty")
        samples.flags.writeable = False
        object.__setattr__(self, "samples", samples)


@dataclass(frozen=True)
class VoiceSettings:
    """Who speaks and how. Unset fields fall back to the engine's defaults."""

    speaker: str | None = None
    language: str | None = None
    instruct: str | None = None
    ref_audio: str | ReferenceAudio | None = None
    """A file path, or samples in memory."""
    ref_text: str | None = None
    library: str | None = None
    """Set by the engine: the name of the library voice this is (its saved prompt is used)."""
    model: str | None = None
    """Set by the engine: the loaded model (`ModelInfo.name`) that speaks this voice."""
    seed: int | None = None
    """Set by the engine: a designed library voice's seed, used when the reply gives none."""

    def over(self, defaults: VoiceSettings) -> VoiceSettings:
        """These settings, with unset fields taken from `defaults`."""
        return VoiceSettings(
            speaker=self.speaker or defaults.speaker,
            language=self.language or defaults.language,
            instruct=self.instruct if self.instruct is not None else defaults.instruct,
            ref_audio=self.ref_audio or defaults.ref_audio,
            ref_text=self.ref_text if self.ref_text is not None else defaults.ref_text,
        )


@dataclass(frozen=True)
class ChunkSchedule:
    """How many codec frames (80 ms each) go into each decoded chunk.

    The first chunk is small for a quick first sound; chunk sizes then double
    until they reach `frames`, so the per-chunk overhead is not paid forever.
    """

    first_frames: int = 2
    frames: int = 10

    def __post_init__(self) -> None:
        if self.first_frames < 1 or self.frames < 1:
            raise ValueError("chunk sizes must be at least one frame")

    def size(self, index: int) -> int:
        """Frames in chunk number `index` (0-based)."""
        return min(max(self.frames, self.first_frames), self.first_frames << min(index, 16))


@dataclass(frozen=True)
class GuardSettings:
    """Limits that end runaway generation cleanly."""

    frames_per_char: float = 3.0
    """Frame cap per character of text (CJK characters count triple); generous on purpose."""
    min_frames: int = 75
    """The frame cap never goes below this (6 s of audio)."""
    max_silence_seconds: float = 6.0
    """End an utterance after this much continuous near-silence."""
    repetition_frames: int = 60
    """End an utterance whose last this-many frames loop with a short period."""


DEFAULT_AUDIO_CACHE_SIZE = 2**30
"""Default bound on the audio cache folder, in bytes (1 GiB)."""


@dataclass(frozen=True)
class AudioCacheSettings:
    """The audio cache: finished sentences' audio kept on disk and replayed for the same request."""

    enabled: bool = True
    folder: Path | None = None
    """None: the per-user cache folder (`mlx_speechd.cache.default_folder()`)."""
    size_limit_bytes: int = DEFAULT_AUDIO_CACHE_SIZE

    def __post_init__(self) -> None:
        if self.size_limit_bytes <= 0:
            raise ValueError(f"the audio cache size must be positive, not {self.size_limit_bytes}")


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to know at start-up."""

    model: str = DEFAULT_MODEL
    """The default model: requests that name no voice are spoken by it."""
    extra_models: tuple[str, ...] = ()
    """More models served beside `model`; each voice goes to the model that speaks it."""
    voices_dir: Path | None = None
    """The voice library folder (read afresh on every request); None serves no library voices."""
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    schedule: ChunkSchedule = field(default_factory=ChunkSchedule)
    guards: GuardSettings = field(default_factory=GuardSettings)
    cache_policy: CachePolicy = CachePolicy.CHUNK
    cache_limit_mb: int = 1024
    decoder_window: int | None = None
    """Codec decoder attention window in frames; None takes the model's `sliding_window`."""
    max_text_chars: int = 10000
    max_sentence_chars: int = MAX_SENTENCE_CHARS
    """Longest piece of text spoken at once; longer sentences are cut (text/sentences.py)."""
    max_unsent_seconds: float = 5.0
    """Audio a reply may hold unread before the engine stops starting sentences for it."""
    stall_timeout: float = 30.0
    """Seconds a held reply's reader may take nothing before the reply is cancelled (client-too-slow)."""
    warmup: bool = True
    audio_cache: AudioCacheSettings = field(default_factory=AudioCacheSettings)
    max_batch: int = 4
    """Sentences (of different replies) generated together in lockstep per model; 1 generates one
    sentence at a time (engine/scheduler.py says how seeding differs)."""

    def __post_init__(self) -> None:
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"a model is given twice: {', '.join(self.models)}")
        checks = {
            "cache_limit_mb": self.cache_limit_mb >= 0,
            "max_text_chars": self.max_text_chars >= 1,
            "max_sentence_chars": self.max_sentence_chars >= 1,
            "max_unsent_seconds": self.max_unsent_seconds > 0,
            "stall_timeout": self.stall_timeout > 0,
            "max_batch": self.max_batch >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} is out of range: {getattr(self, name)}")

    @property
    def models(self) -> tuple[str, ...]:
        """Every model to load, the default first."""
        return (self.model, *self.extra_models)


@dataclass(frozen=True)
class VoiceEntry:
    """A voice clients may ask for by name, as `describe` lists it."""

    name: str
    model: str
    """The loaded model that speaks it."""
    description: str
    languages: tuple[str, ...]
    """Language names it speaks: its model's (with 'auto') unless made for one."""
    kind: str
    """'preset' (a CustomVoice speaker), 'model' (the default model's own voice), or a library kind."""


@dataclass(frozen=True)
class ReplyOptions:
    """Per-reply settings given by a front end."""

    voice: VoiceSettings = field(default_factory=VoiceSettings)
    seed: int | None = None
    sentence_pause: float = 0.0
    """Seconds of silence between sentences."""
    lead_in: float = 0.0
    """Seconds of silence before the first audio, against clipped first words."""


@dataclass(frozen=True)
class AudioChunk:
    """One piece of a reply's audio: 24 kHz 16-bit mono PCM."""

    pcm: bytes
    sequence: int
    sentence: int
    frames: int
    """Codec frames decoded into this chunk (0 for inserted silence)."""
    compute_seconds: float

    @property
    def samples(self) -> np.ndarray:
        """The chunk as float32 samples in [-1, 1]."""
        return pcm16_to_float(self.pcm)


@dataclass(frozen=True)
class SynthesisStats:
    """How a finished reply went."""

    sentences: int
    frames: int
    audio_seconds: float
    compute_seconds: float
    time_to_first_audio: float | None
    """Seconds from the reply's first sentence being ready to its first audio."""
    peak_memory_bytes: int
    finish_reason: str
    cached_sentences: int = 0
    """Sentences replayed from the audio cache rather than generated."""

    @property
    def real_time_factor(self) -> float:
        """Compute seconds per second of audio (below 1 is faster than real time)."""
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def summary(self) -> str:
        ttfa = "n/a" if self.time_to_first_audio is None else f"{self.time_to_first_audio:.3f}s"
        return (
            f"first audio {ttfa}, RTF {self.real_time_factor:.3f}, {self.frames} frames, "
            f"{self.audio_seconds:.2f}s audio in {self.sentences} sentence(s), "
            f"{self.cached_sentences} from the audio cache, "
            f"peak memory {self.peak_memory_bytes / 1e6:.0f} MB, finished: {self.finish_reason}"
        )
