"""Command line: one-shot speech (play, WAV, raw PCM) or the daemon (Wyoming, stdio)."""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__, blas
from .config import (
    CONFIG_ENV,
    ENV_PREFIX,
    AppendOverride,
    ConfigError,
    apply_defaults,
    format_config,
    unknown_variables,
)
from .engine import (
    DEFAULT_AUDIO_CACHE_SIZE,
    DEFAULT_MODEL,
    AudioCacheSettings,
    CachePolicy,
    ChunkSchedule,
    EngineConfig,
    VoiceSettings,
)
from .engine.types import EngineConfig as _Defaults
from .frontends.stdio_protocol import MAX_SECONDS, MAX_SEED
from .frontends.wyoming_handler import IDLE_TIMEOUT, STREAM_IDLE_FACTOR
from .frontends.wyoming_reader import EVENT_TIMEOUT
from .settings import (
    DaemonSettings,
    EofPolicy,
    OneshotSettings,
    OutputSettings,
    SpeechDefaults,
    StdioSettings,
    WyomingSettings,
    parse_device,
    parse_size,
)
from .stdout import print_error
from .voices.store import default_voices_dir

_LOGGER = logging.getLogger(__name__)


class Number:
    """An option type: an int or float within a range, refused with the range named (as stdio does)."""

    def __init__(
        self, kind: type[int] | type[float], low: float, high: float | None = None, *, above: bool = False
    ):
        self.kind = kind
        self.low = low
        self.high = high
        self.above = above
        """True: the value must be greater than `low` (not equal)."""
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def __call__(self, text: str) -> int | float:
        value = self.kind(text)  # a ValueError: argparse says "invalid int value"
        in_range = value > self.low if self.above else value >= self.low
        if math.isnan(value) or not in_range or (self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {self._range}")
        return value

    @property
    def _range(self) -> str:
        low = f"greater than {self.low:g}" if self.above else f"at least {self.low:g}"
        return low if self.high is None else f"{low} and at most {self.high:g}"


_SECONDS = Number(float, 0, MAX_SECONDS)
_TIMEOUT = Number(float, 0, above=True)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only when it has a meaningful one (not None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default == [] or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class UsageError(Exception):
    """A command line (or its config file or environment) that cannot be used."""


class _Parser(argparse.ArgumentParser):
    """Raises UsageError instead of printing the whole usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlx-speechd",
        description=(
            "Streaming Qwen3-TTS text to speech on MLX. Speaks TEXT (or stdin, line by line) "
            "and exits, or serves Wyoming (--uri) and/or JSON lines (--stdio) as a daemon. "
            "Subcommands: check, download, make-test-model, cache, voice, narrate "
            "(see `mlx-speechd SUBCOMMAND --help`)."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("text", nargs="*", help="text to speak (default: read stdin line by line)")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        action=AppendOverride,
        default=[DEFAULT_MODEL],
        help="Hugging Face repo id or local folder of a Qwen3-TTS 12Hz model; repeat it to serve several "
        "models (the first is the default; each voice goes to the model that speaks it)",
    )
    model.add_argument("--no-warmup", action="store_true", help="skip the warm-up generation at start")

    voice = parser.add_argument_group("voice")
    voice.add_argument(
        "--voice", help="preset speaker of a CustomVoice model (e.g. ryan) or a voice library name"
    )
    voice.add_argument("--language", default="auto", help="language name or code (auto, english, en, ...)")
    voice.add_argument(
        "--instruct",
        help="speaking style (CustomVoice 1.7B) or voice description (VoiceDesign)",
    )
    voice.add_argument("--ref-audio", help="reference recording to clone (Base models)")
    voice.add_argument("--ref-text", help="transcript of --ref-audio (Base models)")
    voice.add_argument("--seed", type=Number(int, 0, MAX_SEED), help="random seed for reproducible audio")
    voice.add_argument(
        "--voices-dir",
        metavar="DIR",
        help=f"voice library folder, whose voices are served by name (default: {default_voices_dir()})",
    )

    stream = parser.add_argument_group("streaming")
    stream.add_argument(
        "--first-chunk-frames",
        type=Number(int, 1),
        default=ChunkSchedule.first_frames,
        help="codec frames (80 ms each) in the first audio chunk",
    )
    stream.add_argument(
        "--chunk-frames",
        type=Number(int, 1),
        default=ChunkSchedule.frames,
        help="codec frames in later chunks (sizes double from the first up to this)",
    )
    stream.add_argument(
        "--cache-policy",
        choices=[p.value for p in CachePolicy],
        default=CachePolicy.CHUNK.value,
        help="clear MLX's buffer cache at every chunk, or only when over --cache-limit-mb",
    )
    stream.add_argument(
        "--cache-limit-mb", type=Number(int, 0), default=_Defaults.cache_limit_mb, help="see --cache-policy"
    )
    stream.add_argument(
        "--sentence-pause", type=_SECONDS, default=0.0, help="seconds of silence between sentences"
    )
    stream.add_argument(
        "--lead-in", type=_SECONDS, default=0.0, help="seconds of silence before the first audio"
    )
    stream.add_argument(
        "--max-text-chars",
        type=Number(int, 1),
        default=_Defaults.max_text_chars,
        help="longest text accepted per request",
    )
    stream.add_argument(
        "--max-sentence-chars",
        type=Number(int, 1),
        default=_Defaults.max_sentence_chars,
        help="longest piece spoken at once; longer sentences are cut at a clause or word boundary",
    )
    stream.add_argument(
        "--max-batch",
        type=Number(int, 1, 64),
        default=_Defaults.max_batch,
        help="sentences of concurrent requests generated together in lockstep per model; "
        "1 generates one sentence at a time (a seed then gives other audio than batched)",
    )
    stream.add_argument(
        "--max-unsent-seconds",
        type=_TIMEOUT,
        default=_Defaults.max_unsent_seconds,
        metavar="SECONDS",
        help="audio a reply may hold unread before the engine pauses it (starts no new sentence) "
        "until its client reads",
    )
    stream.add_argument(
        "--stall-timeout",
        type=_TIMEOUT,
        default=_Defaults.stall_timeout,
        metavar="SECONDS",
        help="cancel a paused reply (error client-too-slow) whose client reads nothing this long; "
        "also closes a Wyoming connection whose writes block this long",
    )

    cache = parser.add_argument_group("audio cache (finished sentences' audio, replayed when asked again)")
    cache.add_argument(
        "--audio-cache-dir",
        help="cache folder (default: the per-user cache folder, e.g. ~/.cache/mlx-speechd/audio); "
        "several processes may share one",
    )
    cache.add_argument(
        "--audio-cache-size",
        type=parse_size,
        default=DEFAULT_AUDIO_CACHE_SIZE,
        help="bound on the folder's size in bytes, or with K, M, G (powers of 1024): 500M, 2G; "
        "least recently used entries go first",
    )
    cache.add_argument(
        "--no-audio-cache",
        action="store_true",
        help="neither read nor write the audio cache (unseeded requests then sound different each time)",
    )

    output = parser.add_argument_group("one-shot output (default: --play)")
    output.add_argument("--play", action="store_true", help="play through the default output device")
    output.add_argument("--device", help="output device name or index for --play")
    output.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the audio to FILE: FLAC for .flac, Ogg Vorbis for .ogg, else WAV (appears once complete)",
    )
    output.add_argument(
        "--raw", action="store_true", help="write 24 kHz 16-bit little-endian mono PCM to stdout"
    )

    daemon = parser.add_argument_group("daemon (runs until stopped; either or both)")
    daemon.add_argument(
        "--uri",
        action=AppendOverride,
        default=[],
        help="serve Wyoming on tcp://HOST:PORT or unix://PATH (repeatable); "
        "tcp://127.0.0.1:10200 for Home Assistant on this machine, tcp://0.0.0.0:10200 for others",
    )
    daemon.add_argument(
        "--zeroconf",
        nargs="?",
        const="mlx-speechd",
        metavar="NAME",
        help="advertise the Wyoming TCP server on the local network for Home Assistant",
    )
    daemon.add_argument(
        "--max-connections",
        type=Number(int, 1),
        default=16,
        help="most Wyoming clients served at once; when full, the longest-idle one is closed for a newcomer",
    )
    daemon.add_argument(
        "--idle-timeout",
        type=_TIMEOUT,
        default=IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"close a Wyoming connection silent this long with nothing in flight "
        f"({STREAM_IDLE_FACTOR}x as long with a text stream open)",
    )
    daemon.add_argument(
        "--event-timeout",
        type=_TIMEOUT,
        default=EVENT_TIMEOUT,
        metavar="SECONDS",
        help="close a Wyoming connection whose event does not arrive in full this long after it starts",
    )
    daemon.add_argument(
        "--stdio", action="store_true", help="serve JSON lines on stdin/stdout (docs/protocol.md)"
    )
    daemon.add_argument(
        "--stdio-eof",
        choices=[policy.value for policy in EofPolicy],
        default=EofPolicy.FINISH.value,
        help="at stdin EOF, finish or cancel the requests in flight before exiting",
    )

    settings = parser.add_argument_group("configuration")
    settings.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file of settings (default: ${CONFIG_ENV}); any option can also come from "
        f"{ENV_PREFIX}<OPTION> (e.g. {ENV_PREFIX}MODEL). Command line > environment > file > defaults",
    )
    settings.add_argument(
        "--print-config", action="store_true", help="print the effective settings as TOML and exit"
    )

    logs = parser.add_argument_group("logging")
    logs.add_argument("--debug", action="store_true", help="log DEBUG messages")
    logs.add_argument(
        "--log-format", default="%(asctime)s %(levelname)s %(name)s: %(message)s", help="logging format"
    )
    logs.add_argument("--version", action="version", version=__version__)
    return parser


# ---- settings: the one place that turns options into typed settings ----


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """Raises ValueError for settings the engine rejects."""
    models = list(dict.fromkeys(args.model)) or [DEFAULT_MODEL]
    return EngineConfig(
        model=models[0],
        extra_models=tuple(models[1:]),
        voices_dir=Path(args.voices_dir).expanduser() if args.voices_dir else default_voices_dir(),
        voice=VoiceSettings(
            speaker=args.voice,
            language=args.language,
            instruct=args.instruct,
            ref_audio=args.ref_audio,
            ref_text=args.ref_text,
        ),
        schedule=ChunkSchedule(args.first_chunk_frames, args.chunk_frames),
        cache_policy=CachePolicy(args.cache_policy),
        cache_limit_mb=args.cache_limit_mb,
        max_text_chars=args.max_text_chars,
        max_sentence_chars=args.max_sentence_chars,
        max_unsent_seconds=args.max_unsent_seconds,
        stall_timeout=args.stall_timeout,
        max_batch=args.max_batch,
        warmup=not args.no_warmup,
        audio_cache=AudioCacheSettings(
            enabled=not args.no_audio_cache,
            folder=Path(args.audio_cache_dir).expanduser() if args.audio_cache_dir else None,
            size_limit_bytes=args.audio_cache_size,
        ),
    )


def speech_defaults(args: argparse.Namespace) -> SpeechDefaults:
    return SpeechDefaults(seed=args.seed, sentence_pause=args.sentence_pause, lead_in=args.lead_in)


def daemon_settings(args: argparse.Namespace) -> DaemonSettings:
    return DaemonSettings(
        speech=speech_defaults(args),
        wyoming=WyomingSettings(
            tuple(args.uri),
            args.zeroconf,
            args.max_connections,
            args.idle_timeout,
            args.event_timeout,
            args.stall_timeout,
        )
        if args.uri
        else None,
        stdio=StdioSettings(EofPolicy(args.stdio_eof), parse_device(args.device)) if args.stdio else None,
    )


def oneshot_settings(args: argparse.Namespace) -> OneshotSettings:
    return OneshotSettings(
        text=tuple(args.text),
        speech=speech_defaults(args),
        output=OutputSettings(
            wav=args.output, raw=args.raw, play=args.play, device=parse_device(args.device)
        ),
    )


def setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format=args.log_format,
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _SUBCOMMANDS:
        command: Callable[[list[str]], int] = importlib.import_module(_SUBCOMMANDS[argv[0]], __package__).main
        return command(argv[1:])
    parser = build_parser()
    try:
        sources = _config_defaults(parser, argv)
        args = parser.parse_args(argv)
        config = _checked(args)
        if blas.failure:
            raise ConfigError(blas.failure)
    except (ConfigError, UsageError) as err:
        return _usage_error(err, argv, parser)
    if args.print_config:
        sys.stdout.write(format_config(parser, args, sources))
        return 0
    setup_logging(args)
    for warning in unknown_variables(parser, os.environ):
        _LOGGER.warning("%s", warning)
    if args.uri or args.stdio:
        from .daemon import run_daemon

        return run_daemon(daemon_settings(args), config)
    from .oneshot import run_oneshot

    return run_oneshot(oneshot_settings(args), config)


def _checked(args: argparse.Namespace) -> EngineConfig:
    """The engine configuration, once the options go together (UsageError if not)."""
    if (args.uri or args.stdio) and (args.text or args.play or args.output or args.raw):
        raise UsageError("text and one-shot outputs (--play, -o, --raw) do not go with --uri/--stdio")
    try:
        return engine_config(args)
    except ValueError as err:
        raise UsageError(str(err)) from err


def _usage_error(err: Exception, argv: list[str], parser: argparse.ArgumentParser) -> int:
    """One line on stderr (and, for a stdio parent, an `error` line on stdout); exit status 2."""
    print_error(f"{err} (see mlx-speechd --help)")
    if _stdio_wanted(argv, parser):
        from .errors import InvalidRequestError
        from .frontends.stdio_server import write_startup_error

        sys.stdout.flush()
        write_startup_error(sys.stdout.buffer, InvalidRequestError(str(err)))
    return 2


def _stdio_wanted(argv: list[str], parser: argparse.ArgumentParser) -> bool:
    """Whether --stdio was asked for (on the command line, or by the environment or config file)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--stdio", action="store_true")
    return bool(pre.parse_known_args(argv)[0].stdio or parser.get_default("stdio"))


_SUBCOMMANDS: dict[str, str] = {
    "check": ".healthcheck",
    "download": ".download",
    "make-test-model": ".testing.__main__",
    "cache": ".cache.cli",
    "voice": ".voices.cli",
    "narrate": ".narration.cli",
}
"""Subcommands with their own parsers: the module whose `main(argv)` runs each, imported only when used."""


def config_file_arg(argv: Sequence[str]) -> str | None:
    """The --config value, found before the full parse so the file can supply defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    return pre.parse_known_args(argv)[0].config


def help_asked(argv: Sequence[str]) -> bool:
    """Whether -h/--help is on the command line: help is printed even when the config file is broken."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-h", "--help", action="store_true")
    return bool(pre.parse_known_args(argv)[0].help)


def _config_defaults(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, str]:
    """`apply_defaults` from --config and the environment; with --help, a broken config is only reported."""
    try:
        return apply_defaults(parser, config_file_arg(argv), os.environ)
    except ConfigError as err:
        if not help_asked(argv):
            raise
        print_error(err)
        return {}


if __name__ == "__main__":
    sys.exit(main())
