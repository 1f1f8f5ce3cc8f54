"""The voice library: one folder per named voice, each with a manifest and its files.

Layout of a library folder::

    NAME/manifest.json      kind, settings, source, model, created
    NAME/ref.wav, ref.txt   clone voices: the normalized reference (24 kHz mono float) and transcript
    NAME/sample.wav         designed voices, once rendered: the sample text spoken in the voice
    NAME/prompts/FP.safetensors  clone voices: the precomputed prompt for the model with fingerprint FP

Writes are atomic: a voice is built in a hidden folder inside the library and renamed into place,
so a reader sees either the whole voice or none of it. Reading is cheap and tolerant: a broken
voice folder is skipped with a warning.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidRequestError, UnknownVoiceError
from .reference import read_audio, validate_reference, write_audio

if TYPE_CHECKING:
    from ..engine.types import Variant

_LOGGER = logging.getLogger(__name__)

MANIFEST = "manifest.json"
REF_AUDIO = "ref.wav"
REF_TEXT = "ref.txt"
SAMPLE_AUDIO = "sample.wav"
PROMPTS = "prompts"
MANIFEST_FORMAT = 1
MAX_NAME_LENGTH = 64
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_NAME_LENGTH - 1}}}")


VOICES_DIR_ENV = "MLX_SPEECHD_VOICES_DIR"
"""The environment variable naming the voice library folder (as `--voices-dir` does)."""


def default_voices_dir() -> Path:
    """The per-user default: `~/Library/Application Support/mlx-speechd/voices` on macOS,
    `$XDG_DATA_HOME/mlx-speechd/voices` (`~/.local/share/...`) on Linux."""
    import platformdirs

    return platformdirs.user_data_path("mlx-speechd") / "voices"


def check_name(name: str) -> str:
    """The voice name as stored (lower case), or InvalidRequestError for anything but a short slug."""
    if not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"invalid voice name {name!r}: use 1-{MAX_NAME_LENGTH} ASCII letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name.lower()


class VoiceKind(StrEnum):
    CLONE = "clone"
    """A Base model speaking like a reference recording."""
    STYLE = "style"
    """A CustomVoice preset speaker with a speaking style."""
    DESIGNED = "designed"
    """A VoiceDesign model's voice from a description."""

    @property
    def variant(self) -> Variant:
        """The kind of model that speaks this voice."""
        from ..engine.types import Variant  # the engine reads the library: import it only when asked

        return {
            VoiceKind.CLONE: Variant.BASE,
            VoiceKind.STYLE: Variant.CUSTOM_VOICE,
            VoiceKind.DESIGNED: Variant.VOICE_DESIGN,
        }[self]


@dataclass(frozen=True)
class VoiceParams:
    """What a voice is made of; which fields matter depends on its kind."""

    language: str | None = None
    ref_text: str | None = None
    """Clone: the transcript of the reference (kept in ref.txt, not in the manifest)."""
    x_vector_only: bool = False
    """Clone: use only the speaker embedding (no transcript, no reference codes in the prompt)."""
    speaker: str | None = None
    """Style: the CustomVoice preset speaker."""
    instruct: str | None = None
    """Style: the speaking style."""
    description: str | None = None
    """Designed: the voice description given to VoiceDesign (kept by a clone adopted from it)."""
    sample_text: str | None = None
    """Designed: the text of the rendered sample (the transcript once adopted)."""
    seed: int | None = None
    """Designed: the random seed that makes the description give the same voice."""


@dataclass(frozen=True)
class Voice:
    """A voice in the library, as read from its folder."""

    name: str
    kind: VoiceKind
    settings: VoiceParams
    folder: Path
    created: str
    """ISO 8601 time (UTC) the voice was added."""
    source: str | None = None
    """Where it came from, for people: the reference file, or the designed voice it was adopted from."""
    model: str | None = None
    """The model it was made for or with, if one was named; any model of its kind's variant can speak it."""

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages the voice was made for; empty when any (auto)."""
        language = self.settings.language
        return (language,) if language and language != "auto" else ()

    @property
    def ref_audio_path(self) -> Path:
        return self.folder / REF_AUDIO

    @property
    def sample_path(self) -> Path:
        return self.folder / SAMPLE_AUDIO

    def prompt_path(self, fingerprint: str) -> Path:
        """Where the precomputed clone prompt for the model with `fingerprint` lives."""
        return self.folder / PROMPTS / f"{fingerprint}.safetensors"

    def prompt_files(self) -> list[Path]:
        return sorted(p for p in (self.folder / PROMPTS).glob("*.safetensors") if not p.name.startswith("."))


class VoiceLibrary:
    """The voices in one folder. Every call reads the folder afresh, so changes are seen at once."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()

    def list(self) -> list[Voice]:
        """All readable voices by name; broken folders are skipped with a warning."""
        voices = []
        try:
            entries = sorted(self.folder.iterdir())
        except FileNotFoundError:
            return []
        except OSError as err:
            _LOGGER.warning("Cannot read the voice library %s: %s", self.folder, err)
            return []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue  # work in progress of add/remove, or stray files
            try:
                voices.append(_read_voice(entry))
            except (OSError, ValueError, InvalidRequestError) as err:
                _LOGGER.warning("Skipping voice folder %s: %s", entry, err)
        return voices

    def names(self) -> builtins.list[str]:
        return [voice.name for voice in self.list()]

    def get(self, name: str) -> Voice:
        """The voice `name`; InvalidRequestError for a bad name, UnknownVoiceError if absent or broken."""
        folder = self.folder / check_name(name)
        if not (folder / MANIFEST).is_file():
            raise UnknownVoiceError(f"no voice named '{name}' in the voice library")
        try:
            return _read_voice(folder)
        except (OSError, ValueError) as err:
            raise UnknownVoiceError(f"voice '{name}' is unreadable: {err}") from err

    def check_free(self, name: str, force: bool = False) -> str:
        """The checked name; InvalidRequestError if a voice has it already (unless `force`)."""
        name = check_name(name)
        if not force and (self.folder / name).exists():
            raise InvalidRequestError(f"voice '{name}' already exists (use --force to replace it)")
        return name

    def add(
        self,
        name: str,
        kind: VoiceKind,
        settings: VoiceParams,
        *,
        audio: np.ndarray | None = None,
        source: str | None = None,
        model: str | None = None,
        force: bool = False,
        created: str | None = None,
    ) -> Voice:
        """Add a voice, or with `force` replace one, atomically.

        `audio` is 24 kHz mono float: the reference of a clone voice (required), or the rendered
        sample of a designed voice (optional). `created` keeps a replaced voice's creation time
        (default: now). Raises InvalidRequestError for missing pieces or an existing name without `force`.
        """
        name = self.check_free(name, force)
        settings = _check_settings(kind, settings, audio)
        manifest = {
            "format": MANIFEST_FORMAT,
            "kind": kind.value,
            "created": created or datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source,
            "model": model,
            "settings": {
                k: v for k, v in asdict(settings).items() if k != "ref_text" and v not in (None, False)
            },
        }

        def build(folder: Path) -> None:
            if audio is not None:
                write_audio(folder / (REF_AUDIO if kind is VoiceKind.CLONE else SAMPLE_AUDIO), audio)
            if kind is VoiceKind.CLONE and settings.ref_text:
                (folder / REF_TEXT).write_text(settings.ref_text + "\n", encoding="utf-8")
            (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")

        self._commit(name, build, force)
        return self.get(name)

    def adopt(self, name: str, new_name: str | None = None, *, force: bool = False) -> Voice:
        """Turn a designed voice's rendered sample and its text into a clone voice for Base models.

        The clone takes the designed voice's place (its description and seed stay in the settings),
        or with `new_name` sits beside it. Needs no model: the prompt is computed when a Base model
        first speaks the voice.
        """
        target = check_name(name if new_name is None else new_name)
        designed = self.get(name)
        if designed.kind is not VoiceKind.DESIGNED:
            raise InvalidRequestError(
                f"voice '{name}' is a {designed.kind} voice; only designed voices adopt"
            )
        if not designed.sample_path.is_file():
            raise InvalidRequestError(
                f"designed voice '{name}' has no rendered sample yet (`mlx-speechd voice design` renders it)"
            )
        if not designed.settings.sample_text:
            raise InvalidRequestError(f"designed voice '{name}' has no sample text to use as the transcript")
        try:
            sample = read_audio(designed.sample_path)
        except (OSError, RuntimeError, ValueError) as err:
            raise InvalidRequestError(f"cannot read the sample of '{name}': {err}") from err
        validate_reference(sample, f"the sample of '{name}'")
        settings = replace(designed.settings, ref_text=designed.settings.sample_text, x_vector_only=False)
        return self.add(
            target,
            VoiceKind.CLONE,
            settings,
            audio=sample,
            source=f"adopted from designed voice '{designed.name}'",
            force=force or target == designed.name,
        )

    def remove(self, name: str) -> None:
        """Delete a voice; UnknownVoiceError if there is none. The folder disappears in one rename."""
        folder = self.folder / check_name(name)
        if not folder.is_dir():
            raise UnknownVoiceError(f"no voice named '{name}' in the voice library")
        trash = Path(tempfile.mkdtemp(prefix=f".remove-{folder.name}-", dir=self.folder))
        os.rename(folder, trash / folder.name)
        shutil.rmtree(trash, ignore_errors=True)

    def _commit(self, name: str, build: Callable[[Path], None], force: bool) -> None:
        """Build the voice in a hidden folder, then rename it into place (replacing an old one if `force`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".add-{name}-", dir=self.folder))
        final = self.folder / name
        try:
            build(work)
            work.chmod(0o755)  # mkdtemp makes it private; a voice folder has the usual permissions
            if final.exists() and force:
                _swap(work, final)
            else:
                try:
                    os.rename(work, final)
                except OSError as err:  # someone else added the same name meanwhile
                    raise InvalidRequestError(
                        f"voice '{name}' already exists (use --force to replace it)"
                    ) from err
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _swap(new: Path, old: Path) -> None:
    """Replace folder `old` by `new`: two renames, the old one put back if the second fails."""
    trash = Path(tempfile.mkdtemp(prefix=f".remove-{old.name}-", dir=old.parent))
    os.rename(old, trash / old.name)
    try:
        os.rename(new, old)
    except OSError:
        os.rename(trash / old.name, old)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _check_settings(kind: VoiceKind, settings: VoiceParams, audio: np.ndarray | None) -> VoiceParams:
    """Check that `settings` has what `kind` needs; returns it with text fields stripped."""
    settings = VoiceParams(
        language=_stripped(settings.language),
        ref_text=_stripped(settings.ref_text),
        x_vector_only=settings.x_vector_only,
        speaker=_stripped(settings.speaker),
        instruct=_stripped(settings.instruct),
        description=_stripped(settings.description),
        sample_text=_stripped(settings.sample_text),
        seed=settings.seed,
    )
    if kind is VoiceKind.CLONE:
        if audio is None:
            raise InvalidRequestError("a clone voice needs reference audio (--ref-audio)")
        if not settings.ref_text and not settings.x_vector_only:
            raise InvalidRequestError(
                "a clone voice needs the transcript of its reference (--ref-text or --ref-text-file), "
                "or --x-vector-only"
            )
    elif kind is VoiceKind.STYLE:
        if not settings.speaker:
            raise InvalidRequestError("a style voice needs a preset speaker (--speaker)")
        if audio is not None:
            raise InvalidRequestError("a style voice has no audio")
    elif not settings.description:
        raise InvalidRequestError("a designed voice needs a description (--description)")
    return settings


def _stripped(text: str | None) -> str | None:
    return (text or "").strip() or None


def _read_voice(folder: Path) -> Voice:
    """Read one voice folder; ValueError or OSError when it is not a usable voice."""
    name = check_name(folder.name)
    if name != folder.name:
        raise ValueError("voice folder names are lower case")
    data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{MANIFEST} is not a JSON object")
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"{MANIFEST} has format {data.get('format')!r}; this version reads {MANIFEST_FORMAT}"
        )
    kind = VoiceKind(str(data.get("kind")))
    settings = _params(data.get("settings", {}))
    ref_text = folder / REF_TEXT
    if ref_text.is_file():
        settings = replace(settings, ref_text=ref_text.read_text(encoding="utf-8").strip() or None)
    if kind is VoiceKind.CLONE and not (folder / REF_AUDIO).is_file():
        raise ValueError(f"clone voice without {REF_AUDIO}")
    return Voice(
        name=name,
        kind=kind,
        settings=settings,
        folder=folder,
        created=_optional_str(data, "created") or "",
        source=_optional_str(data, "source"),
        model=_optional_str(data, "model"),
    )


def _params(raw: Any) -> VoiceParams:
    if not isinstance(raw, dict):
        raise ValueError("'settings' is not a JSON object")
    values: dict[str, Any] = {}
    for f in fields(VoiceParams):
        if f.name not in raw:
            continue
        value = raw[f.name]
        expected: type = {"x_vector_only": bool, "seed": int}.get(f.name, str)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"setting '{f.name}' should be {expected.__name__}, not {value!r}")
        values[f.name] = value
    return VoiceParams(**values)


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{key}' should be a string")
    return value
