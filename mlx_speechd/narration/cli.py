"""`mlx-speechd narrate INPUT --out-dir DIR`: a script to one audio file per segment and a manifest."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..cli import Number, build_parser, config_file_arg, help_asked
from ..config import ConfigError, apply_defaults
from ..engine.types import DEFAULT_AUDIO_CACHE_SIZE
from ..errors import SpeechdError
from ..settings import parse_size

if TYPE_CHECKING:
    from ..api import EngineOptions, NarrateOptions


EXIT_FAILED_SEGMENTS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
SHARED_SETTINGS = (
    "voice",
    "language",
    "instruct",
    "seed",
    "max_batch",
    "voices_dir",
    "ref_audio",
    "ref_text",
    "audio_cache_dir",
    "audio_cache_size",
    "no_audio_cache",
)
"""The daemon's settings `narrate` also takes from its config file and MLX_SPEECHD_* variables
(besides `model`, of which it takes the first)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-speechd narrate",
        description=(
            "Speak a script (text, Markdown or JSON lines; '-' reads stdin) into one audio file per "
            "segment plus manifest.json. Reruns keep files that still match the manifest and take "
            "the rest from the audio cache where they can; the model is loaded only when needed."
        ),
    )
    parser.add_argument("input", help="the script: .txt, .md or .jsonl file, or - for stdin")
    parser.add_argument("--out-dir", required=True, help="folder for the audio files and manifest.json")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's TOML config file (default: $MLX_SPEECHD_CONFIG): narrate takes its model (the "
        "first), voice, language, instruct, seed, max_batch, voices_dir, ref_audio, ref_text and audio "
        "cache settings, as from MLX_SPEECHD_* variables; the command line wins",
    )
    parser.add_argument("--model", help="model (default: $MLX_SPEECHD_MODEL, else mlx-speechd's default)")
    parser.add_argument("--voice", help="voice for segments that name none")
    parser.add_argument("--language", help="language for segments that name none (default: auto)")
    parser.add_argument("--instruct", help="speaking style or voice description for segments without one")
    parser.add_argument("--seed", type=int, help="seed for segments without one (default: unseeded)")
    parser.add_argument(
        "--max-batch",
        type=Number(int, 1),
        help="segments spoken at once, as one batch (default: the engine's, 4; 1: one after another)",
    )
    parser.add_argument(
        "--voices-dir", help="voice library (default: $MLX_SPEECHD_VOICES_DIR, else the per-user one)"
    )
    parser.add_argument("--ref-audio", help="reference recording to clone (Base models)")
    parser.add_argument("--ref-text", help="transcript of --ref-audio")
    parser.add_argument(
        "--format", choices=("wav", "flac"), default="wav", help="segment files' format (default: wav)"
    )
    parser.add_argument("--join", metavar="FILE", help="also write all segments into FILE (.wav or .flac)")
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds of silence between joined segments (default: 0.5)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    parser.add_argument("--verbose", action="store_true", help="log each reply (INFO messages)")
    parser.add_argument("--audio-cache-dir", help="audio cache folder (default: the per-user cache folder)")
    parser.add_argument(
        "--audio-cache-size",
        type=parse_size,
        default=DEFAULT_AUDIO_CACHE_SIZE,
        help="audio cache bound, e.g. 500M or 2G (default: 1 GiB)",
    )
    parser.add_argument(
        "--no-audio-cache", action="store_true", help="neither read nor write the audio cache"
    )
    parser.add_argument("--debug", action="store_true", help="log DEBUG messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; 0 when every segment has its file, 1 when some failed."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    try:
        parser.set_defaults(**shared_defaults(argv))
    except ConfigError as err:
        print(f"mlx-speechd narrate: {err}", file=sys.stderr)
        if not help_asked(argv):
            return EXIT_USAGE
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ..api import narrate

    try:
        result = narrate(args.input, args.out_dir, args.model, load=_load_options(args), **_options(args))
    except KeyboardInterrupt:
        print("mlx-speechd narrate: interrupted; manifest.json lists the segments done", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SpeechdError as err:
        print(f"mlx-speechd narrate: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
    if result.failed:
        print(f"mlx-speechd narrate: failed segments: {', '.join(result.failed)}", file=sys.stderr)
        return EXIT_FAILED_SEGMENTS
    return 0


def shared_defaults(argv: Sequence[str]) -> dict[str, object]:
    """The shared settings the config file and the environment give, read as the daemon reads them
    (so a misspelt key is an error here too, and daemon-only keys are accepted and left alone)."""
    daemon = build_parser()
    sources = apply_defaults(daemon, config_file_arg(argv), os.environ)
    values = vars(daemon.parse_args([]))
    defaults = {key: values[key] for key in SHARED_SETTINGS if key in sources}
    if "model" in sources:
        defaults["model"] = values["model"][0]
    return defaults


def _load_options(args: argparse.Namespace) -> EngineOptions:
    load: EngineOptions = {"audio_cache": not args.no_audio_cache, "audio_cache_size": args.audio_cache_size}
    for name in ("voices_dir", "audio_cache_dir", "ref_audio", "ref_text", "max_batch"):
        if getattr(args, name) is not None:
            load[name] = getattr(args, name)
    return load


def _options(args: argparse.Namespace) -> NarrateOptions:
    options: NarrateOptions = {"format": args.format, "pause": args.pause, "progress": not args.quiet}
    for name in ("voice", "language", "instruct", "seed", "join"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options
