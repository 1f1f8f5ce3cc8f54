"""Keep stdout for protocol lines and raw audio only; errors for the user go to stderr."""

from __future__ import annotations

import os
import sys
from typing import BinaryIO


def claim_stdout() -> BinaryIO:
    """Take the process's stdout for our own output and point fd 1 at stderr.

    Anything else that writes to stdout afterwards (library prints, warnings,
    progress bars, C code) lands on stderr instead of corrupting our stream.
    """
    sys.stdout.flush()
    ours = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    return ours


def print_error(message: object) -> None:
    """The one line a command prints on stderr when it exits with an error."""
    print(f"mlx-speechd: error: {message}", file=sys.stderr, flush=True)
