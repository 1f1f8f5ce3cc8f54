"""Command line: one-shot speech (play, WAV, raw PCM) or the daemon (Wyoming, stdio)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from . import __version__
from .config import CONFIG_ENV, ENV_PREFIX, ConfigError, apply_defaults, format_config
from .engine import (
    DEFAULT_MODEL,
    CachePolicy,
    ChunkSchedule,
    EngineConfig,
    VoiceSettings,
)
from .frontends.wyoming_handler import IDLE_TIMEOUT, STREAM_IDLE_FACTOR
from .frontends.wyoming_reader import EVENT_TIMEOUT

_LOGGER = logging.getLogger(__name__)

SUBCOMMANDS = ("check", "download", "make-test-model")


class _AppendOverride(argparse._AppendAction):
    """Append, but the first use on the command line replaces a list from the config or environment."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        marker = f"_{self.dest}_from_command_line"
        if not getattr(namespace, marker, False):
            setattr(namespace, self.dest, [])
            setattr(namespace, marker, True)
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-speechd",
        description=(
            "Streaming Qwen3-TTS text to speech on MLX. Speaks TEXT (or stdin, line by line) "
            "and exits, or serves Wyoming (--uri) and/or JSON lines (--stdio) as a daemon. "
            "Subcommands: check, download, make-test-model (see `mlx-speechd SUBCOMMAND --help`)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("text", nargs="*", help="text to speak (default: read stdin line by line)")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="Hugging Face repo id or local folder of a Qwen3-TTS 12Hz model",
    )
    model.add_argument("--no-warmup", action="store_true", help="skip the warm-up generation at start")

    voice = parser.add_argument_group("voice")
    voice.add_argument("--voice", help="preset speaker of a CustomVoice model (e.g. ryan)")
    voice.add_argument("--language", default="auto", help="language name or code (auto, english, en, ...)")
    voice.add_argument(
        "--instruct",
        help="speaking style (CustomVoice 1.7B) or voice description (VoiceDesign)",
    )
    voice.add_argument("--ref-audio", help="reference recording to clone (Base models)")
    voice.add_argument("--ref-text", help="transcript of --ref-audio (Base models)")
    voice.add_argument("--seed", type=int, help="random seed for reproducible audio")

    stream = parser.add_argument_group("streaming")
    stream.add_argument(
        "--first-chunk-frames",
        type=int,
        default=ChunkSchedule.first_frames,
        help="codec frames (80 ms each) in the first audio chunk",
    )
    stream.add_argument(
        "--chunk-frames",
        type=int,
        default=ChunkSchedule.frames,
        help="codec frames in later chunks (sizes double from the first up to this)",
    )
    stream.add_argument(
        "--cache-policy",
        choices=[p.value for p in CachePolicy],
        default=CachePolicy.CHUNK.value,
        help="clear MLX's buffer cache at every chunk, or only when over --cache-limit-mb",
    )
    stream.add_argument("--cache-limit-mb", type=int, default=1024, help="see --cache-policy")
    stream.add_argument(
        "--sentence-silence", type=float, default=0.0, help="seconds of silence between sentences"
    )
    stream.add_argument(
        "--lead-in", type=float, default=0.0, help="seconds of silence before the first audio"
    )
    stream.add_argument("--max-text-chars", type=int, default=10000, help="longest text accepted per request")

    output = parser.add_argument_group("one-shot output (default: --play)")
    output.add_argument("--play", action="store_true", help="play through the default output device")
    output.add_argument("--device", help="output device name or index for --play")
    output.add_argument("-o", "--output", metavar="FILE", help="write a WAV file")
    output.add_argument(
        "--raw", action="store_true", help="write 24 kHz 16-bit little-endian mono PCM to stdout"
    )

    daemon = parser.add_argument_group("daemon (runs until stopped; either or both)")
    daemon.add_argument(
        "--uri",
        action=_AppendOverride,
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
        type=int,
        default=16,
        help="most Wyoming clients served at once; when full, the longest-idle one is closed for a newcomer",
    )
    daemon.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"close a Wyoming connection silent this long with nothing in flight "
        f"({STREAM_IDLE_FACTOR}x as long with a text stream open)",
    )
    daemon.add_argument(
        "--event-timeout",
        type=float,
        default=EVENT_TIMEOUT,
        metavar="SECONDS",
        help="close a Wyoming connection whose event does not arrive in full this long after it starts",
    )
    daemon.add_argument(
        "--stdio", action="store_true", help="serve JSON lines on stdin/stdout (docs/protocol.md)"
    )
    daemon.add_argument(
        "--stdio-eof",
        choices=["finish", "cancel"],
        default="finish",
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


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        model=args.model,
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
        warmup=not args.no_warmup,
    )


def setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format=args.log_format,
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "make-test-model":
        from .testing.__main__ import main as make_test_model

        return make_test_model(argv[1:])
    if argv and argv[0] == "check":
        from .healthcheck import main as check

        return check(argv[1:])
    if argv and argv[0] == "download":
        from .download import main as download

        return download(argv[1:])
    parser = build_parser()
    try:
        sources = apply_defaults(parser, _config_path(argv), os.environ)
    except ConfigError as err:
        parser.error(str(err))
    args = parser.parse_args(argv)
    if args.print_config:
        sys.stdout.write(format_config(parser, args, sources))
        return 0
    try:
        config = engine_config(args)
    except ValueError as err:
        parser.error(str(err))
    setup_logging(args)
    if args.uri or args.stdio:
        if args.text or args.play or args.output or args.raw:
            parser.error("text and one-shot outputs (--play, -o, --raw) do not go with --uri/--stdio")
        if not (args.idle_timeout > 0 and args.event_timeout > 0):
            parser.error("--idle-timeout and --event-timeout must be positive numbers of seconds")
        from .daemon import run_daemon

        return run_daemon(args, config)
    from .oneshot import run_oneshot

    return run_oneshot(args, config)


def _config_path(argv: list[str]) -> str | None:
    """The --config value, found before the full parse so the file can supply defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    return pre.parse_known_args(argv)[0].config


if __name__ == "__main__":
    sys.exit(main())
