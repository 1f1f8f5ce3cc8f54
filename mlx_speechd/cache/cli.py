"""`mlx-speechd cache info|clear`: look at or empty the audio cache folder."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import diskcache

from .store import AudioCache, default_folder


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-speechd cache",
        description="Show or empty the audio cache (finished sentences' audio, reused across runs).",
    )
    parser.add_argument("action", choices=("info", "clear"), help="info: entries and size; clear: remove all")
    parser.add_argument(
        "--audio-cache-dir",
        type=Path,
        default=default_folder(),
        help="cache folder (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; return the exit status."""
    args = _parser().parse_args(argv)
    folder: Path = args.audio_cache_dir
    if not folder.is_dir():
        print(f"folder: {folder}\nentries: 0 (no cache there yet)")
        return 0
    try:
        with AudioCache(folder, size_limit_bytes=None) as cache:
            if args.action == "clear":
                removed = cache.clear()
                print(f"removed {removed} entries from {folder}")
                return 0
            info = cache.info()
    except (OSError, sqlite3.Error, diskcache.Timeout) as err:
        print(f"mlx-speechd cache: cannot open {folder}: {err}", file=sys.stderr)
        return 1
    print(
        f"folder: {info.folder}\nentries: {info.entries}\n"
        f"size: {info.size_bytes} bytes ({info.size_bytes / 1e6:.1f} MB)\n"
        f"limit: {info.size_limit} bytes ({info.size_limit / 1e6:.1f} MB, as last set by a writer)"
    )
    return 0
