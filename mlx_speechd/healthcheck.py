"""`mlx-speechd check`: one Wyoming describe round trip; exit 0 with one line, or 1 with one line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import socket
import time
from dataclasses import dataclass

from wyoming.client import AsyncClient
from wyoming.info import Describe, Info

from .stdout import print_error

DEFAULT_URI = "tcp://127.0.0.1:10200"


class CheckFailed(Exception):
    """The server could not be reached or did not answer like a Wyoming TTS server."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    version: str | None
    voices: int
    seconds: float

    def line(self) -> str:
        version = f" {self.version}" if self.version else ""
        voices = f"{self.voices} voice{'' if self.voices == 1 else 's'}"
        return f"ok: {self.name}{version}, {voices}, {self.seconds:.3f}s"


async def check(uri: str, timeout: float) -> CheckResult:
    """Connect to `uri`, send `describe`, and read the `info` answer within `timeout` seconds."""
    try:
        client = AsyncClient.from_uri(uri)
    except ValueError as err:
        raise CheckFailed(f"bad --uri {uri}: {err} (use tcp://HOST:PORT or unix://PATH)") from err
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            info = await _describe(client, uri)
    except TimeoutError as err:
        raise CheckFailed(f"no answer from {uri} within {timeout:g}s") from err
    seconds = time.perf_counter() - started
    programs = [program for program in info.tts if program.installed]
    if not programs:
        raise CheckFailed(f"{uri} answers Wyoming but offers no text-to-speech program")
    program = programs[0]  # the one Home Assistant uses
    return CheckResult(program.name, program.version, len(program.voices), seconds)


async def _describe(client: AsyncClient, uri: str) -> Info:
    try:
        await client.connect()
    except OSError as err:
        raise CheckFailed(f"cannot connect to {uri}: {_reason(err)}") from err
    try:
        await client.write_event(Describe().event())
        while True:
            try:
                event = await client.read_event()
            except (OSError, asyncio.IncompleteReadError):
                event = None
            except Exception as err:  # malformed header: some other protocol
                raise CheckFailed(f"{uri} is not a Wyoming server (unreadable answer)") from err
            if event is None:
                raise CheckFailed(
                    f"{uri} did not answer describe (it closed the connection, or it is not a Wyoming server)"
                )
            if Info.is_type(event.type):
                return Info.from_event(event)
    except OSError as err:
        raise CheckFailed(f"{uri}: {_reason(err)}") from err
    finally:
        with contextlib.suppress(OSError):
            await client.disconnect()


def _reason(err: OSError) -> str:
    if isinstance(err, socket.gaierror):
        return f"unknown host ({err.strerror})"
    if err.errno == errno.ECONNREFUSED:
        return "connection refused (is mlx-speechd running and listening there?)"
    if err.errno == errno.ENOENT:
        return "no such socket"
    return err.strerror or str(err)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-speechd check",
        description="Ask a Wyoming server to describe itself; exit 0 with one line if it answers as a "
        "TTS server, 1 with one line saying what is wrong otherwise.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--uri", default=DEFAULT_URI, help="tcp://HOST:PORT or unix://PATH")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(check(args.uri, args.timeout))
    except CheckFailed as err:
        print_error(err)
        return 1
    print(result.line(), flush=True)
    return 0
