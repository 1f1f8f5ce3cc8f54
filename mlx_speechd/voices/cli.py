"""`mlx-speechd voice add|design|list|show|remove|adopt`: manage the voice library from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from .. import api
from ..config import CONFIG_ENV
from ..engine.loader import ISO_LANGUAGES, model_variant
from ..engine.types import Variant
from ..engine.voice_book import normalize_language
from ..errors import SpeechdError
from ..playback import PlaybackError, Player, check_output_device
from ..settings import parse_device
from .reference import check_transcript as checked_transcript
from .reference import load_reference
from .store import VOICES_DIR_ENV, Voice, VoiceKind, VoiceLibrary, VoiceParams, default_voices_dir

_LOGGER = logging.getLogger(__name__)

PROG = "mlx-speechd"
DESIGN_MODEL = "mlx-community/Qwen3-TTS-12Hz-1.7B-VoiceDesign-8bit"
"""The VoiceDesign model `voice design` uses when neither --model nor the voice names one."""
LANGUAGES = ("auto", *ISO_LANGUAGES.values())
_KIND_OPTIONS = {
    VoiceKind.CLONE: ("ref_audio", "ref_text", "ref_text_file", "x_vector_only"),
    VoiceKind.STYLE: ("speaker", "instruct"),
    VoiceKind.DESIGNED: ("description", "sample_text", "seed"),
}
_VARIANT_NAMES = {VoiceKind.CLONE: "Base", VoiceKind.STYLE: "CustomVoice", VoiceKind.DESIGNED: "VoiceDesign"}


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line (`mlx-speechd: error: ...`) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--voices-dir",
        metavar="DIR",
        help=f"voice library folder (default: ${VOICES_DIR_ENV}, `voices_dir` in the config file, "
        f"else {default_voices_dir()})",
    )
    common.add_argument("--config", metavar="FILE", help=f"TOML settings file (default: ${CONFIG_ENV})")

    parser = _Parser(
        prog=f"{PROG} voice",
        description="Manage the voice library: named voices made once and then asked for by name.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    add = commands.add_parser(
        "add",
        parents=[common],
        help="add a voice",
        description="Add a voice. Its kind follows from the options: --ref-audio makes a clone voice "
        "(Base models), --speaker a style voice (CustomVoice), --description a designed voice (VoiceDesign).",
    )
    add.add_argument("name", help="short name: letters, digits, '-' and '_' (stored in lower case)")
    add.add_argument("--language", help="language the voice speaks (auto, english, en, ...)")
    add.add_argument("--model", help="the model the voice is meant for (informational)")
    add.add_argument("--force", action="store_true", help="replace a voice of the same name")
    clone = add.add_argument_group("clone (Base models)")
    clone.add_argument("--ref-audio", metavar="FILE", help="reference recording, 3-20 s of clear speech")
    clone.add_argument("--ref-text", metavar="TEXT", help="what is said in the reference")
    clone.add_argument("--ref-text-file", metavar="FILE", help="read the transcript from a UTF-8 file")
    clone.add_argument(
        "--x-vector-only", action="store_true", help="clone from the speaker embedding alone (no transcript)"
    )
    style = add.add_argument_group("style (CustomVoice models)")
    style.add_argument("--speaker", help="preset speaker (e.g. ryan)")
    style.add_argument("--instruct", metavar="TEXT", help="speaking style (CustomVoice 1.7B)")
    designed = add.add_argument_group("designed (VoiceDesign models)")
    designed.add_argument("--description", metavar="TEXT", help="what the voice sounds like")
    designed.add_argument(
        "--sample-text", metavar="TEXT", help="what the voice's sample says (for `voice adopt`)"
    )
    designed.add_argument("--seed", type=int, help="random seed that fixes the voice (default: a random one)")

    design = commands.add_parser(
        "design",
        parents=[common],
        help="render a designed voice's sample with a VoiceDesign model",
        description="Speak the sample text in a designed voice with a VoiceDesign model and keep the audio "
        "as the voice's sample, to listen to (--play, -o) and to adopt as a clone voice (`voice adopt`). "
        "With --description it makes (with --force replaces) the voice; without, it renders again a "
        "designed voice stored before, with any of --text, --seed, --language changed.",
    )
    design.add_argument("name", help="the designed voice")
    design.add_argument(
        "--model",
        help="a Qwen3-TTS VoiceDesign model, hub id or folder "
        f"(default: the voice's model, else {DESIGN_MODEL})",
    )
    design.add_argument("--description", metavar="TEXT", help="what the voice sounds like")
    design.add_argument(
        "--text", "--sample-text", dest="sample_text", metavar="TEXT", help="what the sample says"
    )
    design.add_argument("--seed", type=int, help="random seed that fixes the voice (default: a random one)")
    design.add_argument("--language", help="language of the sample (auto, english, en, ...)")
    design.add_argument("--force", action="store_true", help="replace a voice of the same name")
    design.add_argument("--play", action="store_true", help="play the sample on the audio output")
    design.add_argument("--device", help="output device name or index for --play")
    design.add_argument(
        "-o", "--output", metavar="FILE", help="also write the sample to FILE (.wav, .flac, .ogg)"
    )

    listing = commands.add_parser("list", parents=[common], help="list the voices")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = commands.add_parser("show", parents=[common], help="show one voice")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")

    remove = commands.add_parser("remove", parents=[common], help="delete a voice")
    remove.add_argument("name")

    adopt = commands.add_parser(
        "adopt",
        parents=[common],
        help="turn a designed voice's sample into a clone voice",
        description="Turn a designed voice's rendered sample and its text into a clone voice for Base "
        "models (design, then clone). It replaces the designed voice unless --as names a new one.",
    )
    adopt.add_argument("name", help="a designed voice with a rendered sample")
    adopt.add_argument(
        "--as", dest="new_name", metavar="NAME", help="keep the designed voice; add the clone as NAME"
    )
    adopt.add_argument("--force", action="store_true", help="replace an existing voice called --as NAME")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _setup_logging()
    try:
        library = VoiceLibrary(voices_dir(args.voices_dir, args.config, os.environ))
        if args.command == "add":
            voice = _add(args, library)
            print(f"added {voice.kind} voice '{voice.name}' in {library.folder}")
        elif args.command == "design":
            voice = _design(args, library)
            print(
                f"rendered designed voice '{voice.name}' (seed {voice.settings.seed}) in {voice.sample_path}"
            )
        elif args.command == "list":
            _list(library, args.json)
        elif args.command == "show":
            _show(library.get(args.name), args.json)
        elif args.command == "remove":
            library.remove(args.name)
            print(f"removed voice '{args.name.lower()}' from {library.folder}")
        elif args.command == "adopt":
            voice = library.adopt(args.name, args.new_name, force=args.force)
            print(f"adopted '{args.name.lower()}' as clone voice '{voice.name}' in {library.folder}")
    except (SpeechdError, _UsageError) as err:
        return _fail(2, str(err))
    except PlaybackError as err:
        return _fail(1, str(err))
    except OSError as err:
        return _fail(1, f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
    return 0


class _UsageError(Exception):
    """A setting that can't be used (bad config file, conflicting options)."""


def voices_dir(option: str | None, config: str | None, environ: Mapping[str, str]) -> Path:
    """The library folder: --voices-dir, then $MLX_SPEECHD_VOICES_DIR, then the config file's `voices_dir`."""
    if option:
        return Path(option).expanduser()
    if environ.get(VOICES_DIR_ENV):
        return Path(environ[VOICES_DIR_ENV]).expanduser()
    path = config or environ.get(CONFIG_ENV)
    if path:
        try:
            data = tomllib.loads(Path(path).expanduser().read_text())
        except OSError as err:
            raise _UsageError(f"cannot read config file {path}: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise _UsageError(f"config file {path} is not valid TOML: {err}") from err
        value = data.get("voices_dir", data.get("voices-dir"))
        if value is not None:
            if not isinstance(value, str) or not value:
                raise _UsageError(f"'voices_dir' in {path} must be a folder name")
            return Path(value).expanduser()
    return default_voices_dir()


def _add(args: argparse.Namespace, library: VoiceLibrary) -> Voice:
    kind = _kind(args)
    language = normalize_language(args.language, LANGUAGES) if args.language else None
    if kind is VoiceKind.STYLE:
        settings = VoiceParams(language=language, speaker=args.speaker.lower(), instruct=args.instruct)
        return library.add(args.name, kind, settings, model=args.model, force=args.force)
    if kind is VoiceKind.DESIGNED:
        seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
        settings = VoiceParams(
            language=language, description=args.description, sample_text=args.sample_text, seed=seed
        )
        return library.add(args.name, kind, settings, model=args.model, force=args.force)
    library.check_free(args.name, args.force)  # before reading a long recording
    transcript = args.ref_text
    if args.ref_text_file:
        try:
            transcript = Path(args.ref_text_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise _UsageError(f"cannot read --ref-text-file {args.ref_text_file}: {_reason(err)}") from err
    reference = load_reference(Path(args.ref_audio).expanduser())
    ref_text = checked_transcript(transcript, reference.seconds, args.x_vector_only)
    settings = VoiceParams(language=language, ref_text=ref_text, x_vector_only=args.x_vector_only)
    source = str(Path(args.ref_audio).expanduser().resolve())
    return library.add(
        args.name, kind, settings, audio=reference.audio, source=source, model=args.model, force=args.force
    )


def _design(args: argparse.Namespace, library: VoiceLibrary) -> Voice:
    """Render the sample of a designed voice (new with --description, else the stored one) and keep it."""
    model, settings, created = _design_settings(args, library)
    if args.output:
        api.check_audio_path(args.output)
    device = parse_device(args.device)
    if args.play:
        check_output_device(device)
    variant = model_variant(model)
    if variant is not Variant.VOICE_DESIGN:
        raise _UsageError(f"'{model}' is a {variant} model; designing a voice needs a VoiceDesign model")
    audio = _render(model, settings)
    voice = library.add(
        args.name,
        VoiceKind.DESIGNED,
        settings,
        audio=audio.samples,
        model=model,
        force=args.force or created is not None,
        created=created,
    )
    if args.output:
        audio.save(args.output)
    if args.play:
        player = Player(device)
        player.write(audio.pcm)
        player.close()
    return voice


def _design_settings(args: argparse.Namespace, library: VoiceLibrary) -> tuple[str, VoiceParams, str | None]:
    """The model and settings to render: the options', or the stored voice's with the options applied;
    and the stored voice's creation time when it is rendered again (still the same voice), else None."""
    language = normalize_language(args.language, LANGUAGES) if args.language else None
    if args.description:
        library.check_free(args.name, args.force)
        settings = VoiceParams(
            language=language, description=args.description, sample_text=args.sample_text, seed=args.seed
        )
        model, created = args.model or DESIGN_MODEL, None
    else:
        stored = library.get(args.name)
        if stored.kind is not VoiceKind.DESIGNED:
            raise _UsageError(
                f"voice '{stored.name}' is a {stored.kind} voice; give --description to design one"
            )
        given = {"sample_text": args.sample_text, "seed": args.seed, "language": language}
        settings = replace(stored.settings, **{k: v for k, v in given.items() if v is not None})
        model, created = args.model or stored.model or DESIGN_MODEL, stored.created
    if not settings.sample_text:
        raise _UsageError("the sample needs a text: give --text")
    folder = Path(model).expanduser()
    if folder.is_dir():  # stored for rendering again later, from any working folder
        model = str(folder.absolute())
    if settings.seed is None:
        settings = replace(settings, seed=secrets.randbelow(2**31))
    return model, settings, created


def _render(model: str, settings: VoiceParams) -> api.Audio:
    """Speak the sample text in the designed voice through the public API (its engine thread runs MLX)."""
    assert settings.sample_text is not None and settings.description is not None and settings.seed is not None
    with api.load(model, voices_dir=None, warmup=False, audio_cache=False) as tts:
        return tts.generate(
            settings.sample_text,
            instruct=settings.description,
            language=settings.language or "auto",
            seed=settings.seed,
        )


def _kind(args: argparse.Namespace) -> VoiceKind:
    """The kind the options ask for; _UsageError when they mix kinds or name none."""
    given = {kind for kind, options in _KIND_OPTIONS.items() for option in options if _given(args, option)}
    if len(given) != 1:
        raise _UsageError(
            "give --ref-audio (a clone voice), --speaker (a style voice) or --description (a designed voice)"
            + (": these options belong to different kinds" if given else "")
        )
    kind = given.pop()
    required = {VoiceKind.CLONE: "ref_audio", VoiceKind.STYLE: "speaker", VoiceKind.DESIGNED: "description"}[
        kind
    ]
    if not _given(args, required):
        option = "--" + required.replace("_", "-")
        raise _UsageError(f"a {kind} voice needs {option}")
    if args.ref_text is not None and args.ref_text_file:
        raise _UsageError("give --ref-text or --ref-text-file, not both")
    return kind


def _given(args: argparse.Namespace, option: str) -> bool:
    value = getattr(args, option)
    return value is not None and value is not False


def _list(library: VoiceLibrary, as_json: bool) -> None:
    voices = library.list()
    if as_json:
        print(json.dumps([_describe(voice) for voice in voices], indent=2, ensure_ascii=False))
        return
    if not voices:
        _LOGGER.info("no voices in %s (add one with `mlx-speechd voice add`)", library.folder)
        return
    rows = [("NAME", "KIND", "MODEL", "LANGUAGES")]
    for voice in voices:
        model = voice.model or f"any {_VARIANT_NAMES[voice.kind]}"
        rows.append((voice.name, voice.kind.value, model, ", ".join(voice.languages) or "any"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])


def _show(voice: Voice, as_json: bool) -> None:
    description = _describe(voice)
    if as_json:
        print(json.dumps(description, indent=2, ensure_ascii=False))
        return
    width = max(len(key) for key in description)
    for key, value in description.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        print(f"{key + ':':<{width + 1}} {'-' if text in (None, '') else text}")


def _describe(voice: Voice) -> dict[str, Any]:
    settings = {k: v for k, v in vars(voice.settings).items() if v not in (None, False)}
    return {
        "name": voice.name,
        "kind": voice.kind.value,
        "variant": voice.kind.variant.value,
        "model": voice.model,
        "languages": list(voice.languages),
        **settings,
        "source": voice.source,
        "created": voice.created,
        "folder": str(voice.folder),
        "files": sorted(
            p.relative_to(voice.folder).as_posix() for p in voice.folder.rglob("*") if p.is_file()
        ),
    }


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def _fail(status: int, message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return status


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)
