"""Daemon mode: one engine shared by the Wyoming and stdio front ends."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from .engine import Engine, EngineConfig, SpeechdError
from .stdout import claim_stdout

_LOGGER = logging.getLogger(__name__)


def run_daemon(args: argparse.Namespace, config: EngineConfig) -> int:
    """Run until a signal (or, with --stdio, the end of stdin); returns the exit code."""
    try:
        return asyncio.run(_main(args, config))
    except KeyboardInterrupt:
        return 0


async def _main(args: argparse.Namespace, config: EngineConfig) -> int:
    # stdio: take stdout for protocol lines before the model loads (libraries print while loading).
    protocol_out = claim_stdout() if args.stdio else None
    engine = Engine(config)
    try:
        await engine.astart()
    except SpeechdError as err:
        print(f"mlx-speechd: error: {err}", file=sys.stderr, flush=True)
        if protocol_out is not None:
            from .frontends.stdio_server import write_startup_error

            write_startup_error(protocol_out, err)
        engine.close()
        return 1
    front_ends: list[Coroutine[Any, Any, Any]] = []
    if args.uri:
        from .frontends.wyoming_server import serve_wyoming

        front_ends.extend(serve_wyoming(engine, uri, args) for uri in args.uri)
    if protocol_out is not None:
        from .frontends.stdio_server import serve_stdio

        front_ends.append(serve_stdio(engine, args, protocol_out))
    tasks = [asyncio.create_task(front_end) for front_end in front_ends]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(engine.close)
    _LOGGER.info("Stopped")
    return 0
