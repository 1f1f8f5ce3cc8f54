"""Daemon mode: one engine shared by the Wyoming and stdio front ends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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


SHUTDOWN_GRACE = 5.0
"""Seconds the front ends get to end their replies after a stop signal."""


async def _main(args: argparse.Namespace, config: EngineConfig) -> int:
    """Start the engine and the front ends; stop on a signal or when a front end ends.

    Shutdown rule: the first SIGTERM/SIGINT stops accepting requests and cancels the ones
    in flight; every client gets a proper end of its reply; the process exits 0. A second
    signal exits at once.
    """
    # stdio: take stdout for protocol lines before the model loads (libraries print while loading).
    protocol_out = claim_stdout() if args.stdio else None
    stop = _stop_on_signals()
    stopper = asyncio.create_task(stop.wait())
    engine = Engine(config)
    starting = asyncio.create_task(engine.astart())
    await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        _LOGGER.info("Stopped while starting")
        logging.shutdown()
        os._exit(0)  # the engine thread is inside MLX loading the model: nothing to wind down
    try:
        starting.result()
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
    code = 0
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and (error := task.exception()) is not None:
                if isinstance(error, (OSError, ValueError)):  # e.g. port in use, bad --uri
                    print(f"mlx-speechd: error: {error}", file=sys.stderr, flush=True)
                else:
                    _LOGGER.error("A front end failed: %s", error, exc_info=error)
                code = 1
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        await asyncio.to_thread(engine.close)
    _LOGGER.info("Stopped")
    return code


def _stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM/SIGINT; the second one exits the process at once."""
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            _LOGGER.warning("%s again: exiting at once", sig.name)
            os._exit(1)
        _LOGGER.info("%s: shutting down", sig.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop
