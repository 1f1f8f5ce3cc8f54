"""Narrate a script: one audio file per segment, a manifest, and optionally all of it joined.

Resumable: a segment whose file still matches the manifest (same request, same bytes) is kept
as it is. A segment made before (in any folder) is taken whole from the audio cache, where each
finished segment is stored beside its sentences; the model is loaded only when some segment is
in neither, and those segments' sentences still come from the cache where it has them. A
segment that a runaway guard or the frame cap ended is tried once more with another seed; if
that fails too it is recorded as failed (no file) rather than kept. Files and the manifest are
written atomically, the manifest after every segment, so an interrupted run leaves a consistent
folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..audio.pcm import SAMPLE_RATE, SAMPLE_WIDTH
from ..cache import AUDIO_CODE_VERSION, AudioCache, SegmentKey, fingerprint
from ..engine.loader import resolve_model_path
from ..engine.sentence_cache import reference_digest, voice_identity
from ..engine.types import EngineConfig, VoiceSettings
from ..errors import InvalidRequestError, ModelLoadError, SpeechdError
from ..fingerprint import model_fingerprint
from ..text.sentences import split_sentences
from ..voices.store import VoiceLibrary
from .manifest import (
    JoinRecord,
    Manifest,
    SegmentRecord,
    file_sha256,
    read_records,
    write_atomic,
    write_manifest,
)
from .script import Segment

if TYPE_CHECKING:
    from ..api import TTS, SpeechOptions

_LOGGER = logging.getLogger(__name__)

RETRY_SEED_OFFSET = 1_000_003
"""A retried segment's seed: its seed (0 when unseeded) plus this."""
_SUBTYPE = "PCM_16"


class AudioFormat(StrEnum):
    WAV = "wav"
    FLAC = "flac"


@dataclass(frozen=True)
class NarrationSettings:
    """How to narrate; a segment's own voice, language, instruct and seed go over these."""

    format: AudioFormat = AudioFormat.WAV
    join: Path | None = None
    """Also write every segment into this one file (.wav or .flac), ``pause`` seconds apart."""
    pause: float = 0.5
    voice: str | None = None
    language: str | None = None
    instruct: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidRequestError(f"the seed must be 0 to 2**63-1, not {self.seed}")
        if not 0 <= self.pause <= 60:
            raise InvalidRequestError(f"the pause must be 0 to 60 seconds, not {self.pause}")
        if self.join is not None and self.join.suffix.lower().lstrip(".") not in set(AudioFormat):
            raise InvalidRequestError(f"cannot tell the format of '{self.join}': use .wav or .flac")


@dataclass(frozen=True)
class NarrationResult:
    out_dir: Path
    records: tuple[SegmentRecord, ...]
    kept: tuple[str, ...]
    """Segments whose file already matched the manifest (not spoken again)."""
    made: tuple[str, ...]
    """Segments spoken this run (from the model, the audio cache, or both)."""
    model_loaded: bool
    """Whether a segment needed the model (every other one was kept or came whole from the cache)."""
    joined: Path | None

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(record.id for record in self.records if not record.ok)

    @property
    def from_cache(self) -> tuple[str, ...]:
        """Segments made this run entirely from the audio cache."""
        made = set(self.made)
        return tuple(record.id for record in self.records if record.id in made and record.from_cache)

    def summary(self) -> str:
        return (
            f"{len(self.records)} segments: {len(self.kept)} kept, {len(self.made)} made "
            f"({len(self.from_cache)} from the audio cache), {len(self.failed)} failed; "
            f"model {'loaded' if self.model_loaded else 'not loaded'}"
        )


class LazyTTS:
    """A `TTS` loaded on first use."""

    def __init__(self, load: Callable[[], TTS]) -> None:
        self._load = load
        self.tts: TTS | None = None

    def get(self) -> TTS:
        if self.tts is None:
            self.tts = self._load()
        return self.tts


def request_context(config: EngineConfig, model_path: Path) -> dict[str, Any]:
    """What every segment's audio depends on besides the segment itself, read from files only
    (``model_path``: the first model's folder)."""
    voice = config.voice
    try:
        models = [model_fingerprint(model_path)]
        models += [model_fingerprint(resolve_model_path(extra)) for extra in config.extra_models]
    except OSError as err:
        raise ModelLoadError(f"cannot read the model folder: {err}") from err
    return {
        "models": models,
        "speaker": voice.speaker,
        "language": voice.language,
        "instruct": voice.instruct,
        "ref_audio": reference_digest(voice.ref_audio) if voice.ref_audio is not None else None,
        "ref_text": voice.ref_text,
        "decoder_window": config.decoder_window,
        "max_sentence_chars": config.max_sentence_chars,
        "code_version": AUDIO_CODE_VERSION,
    }


def library_voice_identity(name: str, library: VoiceLibrary | None) -> str | None:
    """Fingerprint of a library voice's definition and reference (as the audio cache keys it);
    None when there is no library or it has no voice of that name (a model's own speaker, say)."""
    if library is None:
        return None
    try:
        voice = library.get(name)
    except SpeechdError:
        return None
    return voice_identity(VoiceSettings(), voice)


@dataclass(frozen=True)
class _Request:
    audio: str
    """Digest of everything a segment's audio depends on: its address in the audio cache."""
    file: str
    """The same plus the file format: the manifest's ``request``."""


@dataclass(frozen=True)
class _Made:
    """A segment's record and its audio (None if it has none), not written yet (`Narration._keep` does)."""

    record: SegmentRecord
    pcm: bytes | None = None


class Narration:
    """One run over a script into an output folder."""

    def __init__(
        self,
        out_dir: Path,
        settings: NarrationSettings,
        config: EngineConfig,
        model_path: Path,
        speaker: LazyTTS,
        store: AudioCache | None,
    ) -> None:
        """``config``: the engine's, ``model_path``: its first model's folder (both read for the
        requests' digests, without loading anything); ``speaker``: the model, loaded when a
        segment has to be spoken; ``store``: the audio cache (None: off), whole segments are
        looked up there first and stored there once made."""
        self.out_dir = out_dir
        self.settings = settings
        self.config = config
        self.context = request_context(config, model_path)
        self.speaker = speaker
        self.store = store
        self.library = VoiceLibrary(config.voices_dir) if config.voices_dir is not None else None
        self._records: dict[str, SegmentRecord] = {}
        self._order: list[str] = []

    def run(self, segments: Sequence[Segment], progress: bool = False) -> NarrationResult:
        """Narrate ``segments``; the output folder is checked (and the manifest written) before
        any model is loaded, and the model is loaded only for segments the audio cache lacks."""
        self._order = [segment.id for segment in segments]
        previous = self._open_out_dir()
        todo: list[tuple[Segment, _Request]] = []
        for segment in segments:
            request = self.request(segment)
            old = previous.get(segment.id)
            if old is not None and self._still_valid(old, request):
                self._records[segment.id] = old
            else:
                todo.append((segment, request))
        kept = tuple(self._records)
        try:
            self._write()
        except OSError as err:
            raise InvalidRequestError(f"cannot write to the output folder {self.out_dir}: {err}") from err
        with _progress(len(segments), len(kept), progress) as bar:
            missing = [(s, r) for s, r in todo if not self._done(bar, self._replay, s, r)]
            if missing:
                self.speaker.get()  # loaded before the first segment's clock starts
            self._make_all(bar, missing)
        joined = self._join() if self.settings.join is not None else None
        return NarrationResult(
            self.out_dir,
            tuple(self._records[i] for i in self._order),
            kept,
            tuple(segment.id for segment, _ in todo),
            self.speaker.tts is not None,
            joined,
        )

    def _done(
        self,
        bar: _Progress,
        make: Callable[[Segment, _Request], _Made | None],
        segment: Segment,
        request: _Request,
    ) -> bool:
        """Make a segment with ``make``; keep it and advance the bar unless that gave None."""
        started = time.perf_counter()
        made = make(segment, request)
        if made is None:
            return False
        record = self._keep(made)
        bar.advance(record.duration, time.perf_counter() - started)
        return True

    def _keep(self, made: _Made) -> SegmentRecord:
        """Write the segment's file (if it has audio) and record it in the manifest, one right after
        the other, on the run's own thread: an interrupted run leaves no file its manifest lacks."""
        record = made.record if made.pcm is None else self._save(made.record, made.pcm)
        self._records[record.id] = record
        self._write()
        return record

    def _make_all(self, bar: _Progress, missing: list[tuple[Segment, _Request]]) -> None:
        """Speak the segments the cache lacks, up to the engine's `max_batch` at once (the engine
        runs them as one batch); each is recorded (manifest, bar) as it finishes, on this thread."""
        workers = min(self.config.max_batch, len(missing))
        if workers <= 1:
            for segment, request in missing:
                self._done(bar, self._make, segment, request)
            return
        pool = ThreadPoolExecutor(workers, thread_name_prefix="narrate")
        try:
            started = time.perf_counter()
            futures = [pool.submit(self._make, segment, request) for segment, request in missing]
            for future in as_completed(futures):
                record = self._keep(future.result())
                now = time.perf_counter()
                bar.advance(record.duration, now - started)  # wall time: the RTF of the whole batch
                started = now
        finally:  # on Ctrl-C: nothing new starts; closing the model ends the running ones
            pool.shutdown(wait=False, cancel_futures=True)

    def _open_out_dir(self) -> dict[str, SegmentRecord]:
        """Create the output folder (and the joined file's) and read the previous manifest."""
        folders = [self.out_dir]
        if self.settings.join is not None:
            folders.append(self.settings.join.parent)
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise InvalidRequestError(f"cannot create the folder {folder}: {err}") from err
        return read_records(self.out_dir)

    def request(self, segment: Segment) -> _Request:
        """Digests of everything a segment's audio, and its file, depend on."""
        voice = segment.voice or self.settings.voice
        audio = fingerprint(
            {
                "context": self.context,
                "text": segment.text,
                "voice": voice,
                "library_voice": library_voice_identity(voice, self.library) if voice else None,
                "language": segment.language or self.settings.language,
                "instruct": segment.instruct or self.settings.instruct,
                "seed": self._seed(segment),
            }
        )
        return _Request(audio, fingerprint({"audio": audio, "format": self.settings.format.value}))

    def _seed(self, segment: Segment) -> int | None:
        return segment.seed if segment.seed is not None else self.settings.seed

    def _still_valid(self, record: SegmentRecord, request: _Request) -> bool:
        if not record.ok or record.request != request.file or record.file is None:
            return False
        return file_sha256(self.out_dir / record.file) == record.sha256

    def _replay(self, segment: Segment, request: _Request) -> _Made | None:
        """The segment's file from its whole audio in the audio cache; None on a miss."""
        cached = self.store.get(SegmentKey(request.audio)) if self.store is not None else None
        if cached is None:
            return None
        sentences = len(split_sentences(segment.text, self.config.max_sentence_chars))
        record = dataclasses.replace(
            self._record(segment, request, self._seed(segment), retried=False),
            duration=round(len(cached.pcm) / SAMPLE_WIDTH / SAMPLE_RATE, 3),
            finish_reason=cached.finish_reason,
            from_cache=True,
            sentences=sentences,
            cached_sentences=sentences,
            ok=True,
        )
        return _Made(record, cached.pcm)

    def _make(self, segment: Segment, request: _Request) -> _Made:
        """Speak the segment (once more with another seed if a guard or the frame cap ended it)."""
        made = self._attempt(segment, request, self._seed(segment), retried=False)
        if made.record.ok or made.record.finish_reason.startswith("error"):
            return made
        retry_seed = (self._seed(segment) or 0) + RETRY_SEED_OFFSET
        _LOGGER.warning(
            "Segment %s ended by %s; trying once more with seed %d",
            segment.id,
            made.record.finish_reason,
            retry_seed,
        )
        made = self._attempt(segment, request, retry_seed, retried=True)
        if not made.record.ok:
            reason = made.record.finish_reason
            _LOGGER.error("Segment %s failed again (%s); it has no file", segment.id, reason)
        return made

    def _record(
        self, segment: Segment, request: _Request, seed: int | None, *, retried: bool
    ) -> SegmentRecord:
        """A record of the segment with nothing made yet."""
        speech = self._speech(segment, seed)
        return SegmentRecord(
            id=segment.id,
            text=segment.text,
            voice=speech.get("voice"),
            language=speech.get("language"),
            instruct=speech.get("instruct"),
            seed=seed,
            file=None,
            duration=0.0,
            finish_reason="",
            from_cache=False,
            sentences=0,
            cached_sentences=0,
            sha256=None,
            request=request.file,
            retried=retried,
            ok=False,
        )

    def _attempt(self, segment: Segment, request: _Request, seed: int | None, *, retried: bool) -> _Made:
        base = self._record(segment, request, seed, retried=retried)
        try:
            audio = self.speaker.get().generate(segment.text, **self._speech(segment, seed))
        except SpeechdError as err:
            _LOGGER.error("Segment %s: %s", segment.id, err)
            return _Made(dataclasses.replace(base, finish_reason=f"error: {err.code}"))
        stats = audio.stats
        record = dataclasses.replace(
            base,
            duration=round(audio.duration, 3),
            finish_reason=stats.finish_reason,
            from_cache=stats.sentences > 0 and stats.cached_sentences == stats.sentences,
            sentences=stats.sentences,
            cached_sentences=stats.cached_sentences,
            ok=stats.finish_reason == "eos",
        )
        if not record.ok:
            return _Made(record)
        if self.store is not None and not retried:  # a retry's audio is not this request's
            self.store.put(SegmentKey(request.audio), audio.pcm, stats.frames, stats.finish_reason)
        return _Made(record, audio.pcm)

    def _save(self, record: SegmentRecord, pcm: bytes) -> SegmentRecord:
        """Write the segment's file; its record with the file's name and checksum."""
        name = f"{record.id}.{self.settings.format.value}"
        data = encode(pcm, self.settings.format)
        write_atomic(self.out_dir / name, data)
        return dataclasses.replace(record, file=name, sha256=_sha256(data))

    def _speech(self, segment: Segment, seed: int | None) -> SpeechOptions:
        speech: SpeechOptions = {}
        if voice := segment.voice or self.settings.voice:
            speech["voice"] = voice
        if language := segment.language or self.settings.language:
            speech["language"] = language
        if instruct := segment.instruct or self.settings.instruct:
            speech["instruct"] = instruct
        if seed is not None:
            speech["seed"] = seed
        return speech

    def _write(self, joined: JoinRecord | None = None) -> None:
        records = tuple(self._records[i] for i in self._order if i in self._records)
        write_manifest(self.out_dir, Manifest(self.config.model, self.settings.format.value, records, joined))

    def _join(self) -> Path | None:
        """Every segment's audio in one file, ``pause`` seconds apart; None if a segment failed."""
        target = self.settings.join
        assert target is not None
        records = [self._records[i] for i in self._order]
        if any(not record.ok or record.file is None for record in records):
            _LOGGER.error("Not writing %s: some segments failed", target)
            return None
        gap = np.zeros(round(self.settings.pause * SAMPLE_RATE), dtype=np.int16)
        parts: list[np.ndarray] = []
        for index, record in enumerate(records):
            assert record.file is not None
            samples, _ = sf.read(self.out_dir / record.file, dtype="int16")
            parts.extend([gap, samples] if index else [samples])
        pcm = np.concatenate(parts).astype("<i2").tobytes()
        data = encode(pcm, AudioFormat(target.suffix.lower().lstrip(".")))
        write_atomic(target, data)
        duration = round(len(pcm) / 2 / SAMPLE_RATE, 3)
        self._write(JoinRecord(str(target), duration, self.settings.pause, _sha256(data)))
        return target


def encode(pcm: bytes, audio_format: AudioFormat) -> bytes:
    """16-bit PCM as a WAV or FLAC file's bytes."""
    buffer = io.BytesIO()
    samples = np.frombuffer(pcm, dtype="<i2")
    sf.write(buffer, samples, SAMPLE_RATE, format=audio_format.value.upper(), subtype=_SUBTYPE)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Progress:
    """Segments done of total, audio seconds, real-time factor and time left, on stderr."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self._bar = bar
        self._audio = 0.0
        self._compute = 0.0

    def advance(self, audio_seconds: float, seconds: float) -> None:
        self._audio += audio_seconds
        self._compute += seconds
        rtf = self._compute / self._audio if self._audio else 0.0
        self._bar.set_postfix_str(f"{self._audio:.1f}s audio, RTF {rtf:.2f}", refresh=False)
        self._bar.update(1)


@contextlib.contextmanager
def _progress(total: int, done: int, show: bool) -> Iterator[_Progress]:
    """A tqdm bar when ``show`` and stderr is a terminal (log lines are printed above it);
    otherwise nothing is drawn."""
    with (
        tqdm(
            total=total, initial=done, unit="segment", file=sys.stderr, disable=None if show else True
        ) as bar,
        logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext(),
    ):
        yield _Progress(bar)
