"""Daemon mode: one engine shared by the Wyoming and stdio front ends.

Shutdown rule: the first SIGTERM/SIGINT stops accepting requests and cancels the ones in
flight; every client gets a proper end of its reply; the process exits 0. A second signal
exits at once with status 1. A signal while the model loads exits at once with status 0
(there is nothing to wind down yet). A front end that cannot start (port in use, bad --uri)
is one error line and status 1, found before the model loads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any, BinaryIO

from .engine import Engine, EngineConfig, InvalidRequestError, SpeechdError
from .settings import DaemonSettings
from .stdout import claim_stdout, print_error

_LOGGER = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0
"""Seconds the front ends get to end their replies after a stop signal."""

SECOND_SIGNAL_EXIT = 1
"""Exit status when a second stop signal cuts the shutdown short."""


def run_daemon(settings: DaemonSettings, config: EngineConfig) -> int:
    """Run until a signal (or, with stdio, the end of stdin); returns the exit code."""
    try:
        return asyncio.run(_main(settings, config))
    except KeyboardInterrupt:
        return 0


async def _main(settings: DaemonSettings, config: EngineConfig) -> int:
    # stdio: take stdout for protocol lines before the model loads (libraries print while loading).
    protocol_out = claim_stdout() if settings.stdio is not None else None
    signals = _StopSignals()
    engine = Engine(config)
    try:
        await _check_listeners(settings)
        await asyncio.to_thread(engine.check)
        _LOGGER.info("Loading %s (a stop signal now exits at once)", ", ".join(config.models))
        await engine.astart()
    except SpeechdError as err:
        _startup_failed(err, protocol_out)
        engine.close()
        return 1
    signals.started()
    try:
        return await _serve(engine, settings, protocol_out, signals.stop)
    finally:
        await asyncio.to_thread(engine.close)
        _LOGGER.info("Stopped")


async def _check_listeners(settings: DaemonSettings) -> None:
    """Before the model loads: InvalidRequestError for a listener that cannot start (port in use, ...)."""
    if settings.wyoming is None:
        return
    from .frontends.wyoming_server import check_listener

    for uri in settings.wyoming.uris:
        try:
            await asyncio.to_thread(check_listener, uri)
        except OSError as err:
            raise InvalidRequestError(f"--uri {uri}: {err.strerror or err}") from err
        except ValueError as err:
            raise InvalidRequestError(str(err)) from err


def _startup_failed(err: SpeechdError, protocol_out: BinaryIO | None) -> None:
    """One error line on stderr, and one for a stdio client."""
    print_error(err)
    if protocol_out is not None:
        from .frontends.stdio_server import write_startup_error

        write_startup_error(protocol_out, err)


async def _serve(
    engine: Engine, settings: DaemonSettings, protocol_out: BinaryIO | None, stop: asyncio.Event
) -> int:
    """Run the front ends until `stop` is set or one of them ends; returns the exit code."""
    code = 0
    try:
        await _run_until_stopped(_front_ends(engine, settings, protocol_out), stop)
    except* (OSError, ValueError) as start_errors:  # e.g. port in use, bad --uri
        for error in start_errors.exceptions:
            print_error(error)
        code = 1
    except* Exception as failures:
        for failure in failures.exceptions:
            _LOGGER.error("A front end failed: %s", failure, exc_info=failure)
        code = 1
    return code


async def _run_until_stopped(front_ends: list[Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
    """Run the front ends in one task group; once `stop` is set, cancel them and give them the grace period.

    Raises an ExceptionGroup of the front ends' errors when one fails.
    """
    try:
        async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as group:
            tasks = [group.create_task(_then_set(front_end, stop)) for front_end in front_ends]
            await stop.wait()
            deadline.reschedule(asyncio.get_running_loop().time() + SHUTDOWN_GRACE)
            for task in tasks:
                task.cancel()  # a front end still ending its replies at the deadline is cancelled again
    except TimeoutError:
        _LOGGER.warning("The front ends did not stop within %gs; cut short", SHUTDOWN_GRACE)


def _front_ends(
    engine: Engine, settings: DaemonSettings, protocol_out: BinaryIO | None
) -> list[Coroutine[Any, Any, None]]:
    front_ends: list[Coroutine[Any, Any, None]] = []
    if settings.wyoming is not None:
        from .frontends.wyoming_server import serve_wyoming

        wyoming = settings.wyoming
        front_ends.extend(serve_wyoming(engine, uri, wyoming, settings.speech) for uri in wyoming.uris)
    if settings.stdio is not None and protocol_out is not None:
        from .frontends.stdio_server import serve_stdio

        front_ends.append(serve_stdio(engine, settings.stdio, settings.speech, protocol_out))
    return front_ends


async def _then_set(front_end: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run a front end; when it ends by itself (stdio at the end of stdin), stop the daemon."""
    await front_end
    stop.set()


class _StopSignals:
    """SIGTERM/SIGINT handling, following the shutdown rule in the module docstring."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._loading = True
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def started(self) -> None:
        """The model is loaded: a signal now shuts down in order."""
        self._loading = False

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._loading:
            _LOGGER.info("%s while starting: exiting", sig.name)
            logging.shutdown()
            os._exit(0)  # the engine thread is inside MLX loading the model: nothing to wind down
        if self.stop.is_set():
            _LOGGER.warning("%s again: exiting at once", sig.name)
            logging.shutdown()
            os._exit(SECOND_SIGNAL_EXIT)
        _LOGGER.info("%s: shutting down", sig.name)
        self.stop.set()
