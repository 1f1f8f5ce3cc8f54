"""The Wyoming server for Home Assistant: a tcp:// or unix:// listener, optionally on zeroconf."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import stat
from functools import partial
from urllib.parse import ParseResult, urlparse

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncServer
from wyoming.zeroconf import HomeAssistantZeroconf

from .. import __version__
from ..engine import Engine
from ..engine.loader import ISO_LANGUAGES
from ..settings import SpeechDefaults, WyomingSettings
from .wyoming_handler import Connections, HandlerSettings, WyomingHandler
from .wyoming_reader import ReadLimits

_LOGGER = logging.getLogger(__name__)

_QWEN = Attribution(name="Qwen3-TTS (Alibaba Qwen)", url="https://github.com/QwenLM/Qwen3-TTS")
_PROGRAM = Attribution(name="Qwen3-TTS on MLX via mlx-audio", url="https://github.com/Blaizzy/mlx-audio")
_MAX_PAYLOAD_BYTES = 1 << 20
_DATA_SLACK_BYTES = 1 << 16
_SOCKET_PROBE_SECONDS = 2.0


async def serve_wyoming(engine: Engine, uri: str, settings: WyomingSettings, speech: SpeechDefaults) -> None:
    """Serve Wyoming on `uri` (one of `settings.uris`) until cancelled."""
    parsed = _parse_uri(uri)
    handler_settings = HandlerSettings(
        info=lambda: build_info(engine).event(),
        speech=speech,
        # the longest allowed text, even with every character JSON-escaped as a surrogate pair
        limits=ReadLimits(
            _DATA_SLACK_BYTES + 12 * engine.config.max_text_chars, _MAX_PAYLOAD_BYTES, settings.event_timeout
        ),
        idle_timeout=settings.idle_timeout,
        write_timeout=settings.write_timeout,
    )
    if parsed.scheme == "unix":
        await asyncio.to_thread(check_socket_path, parsed.path)
    server = AsyncServer.from_uri(uri)
    connections = Connections(settings.max_connections)
    await server.start(partial(WyomingHandler, engine, handler_settings, connections))
    _LOGGER.info("Serving Wyoming on %s (at most %d connections)", uri, settings.max_connections)
    zeroconf: ZeroconfAdvertisement | None = None
    try:
        if settings.zeroconf is not None and uri == settings.zeroconf_uri:
            zeroconf = await advertise(settings.zeroconf, parsed.hostname or "", parsed.port or 0)
        await asyncio.Event().wait()
    finally:
        await connections.shut_down()
        await server.stop()
        if zeroconf is not None:
            await zeroconf.close()


def _parse_uri(uri: str) -> ParseResult:
    parsed = urlparse(uri)
    if parsed.scheme not in ("tcp", "unix"):
        raise ValueError(f"--uri {uri}: serve tcp://HOST:PORT or unix://PATH (--stdio speaks JSON lines)")
    return parsed


def check_listener(uri: str) -> None:
    """Raise now what serving `uri` would raise (a bad URI, a port in use, a unix path that is not a
    stale socket), so the daemon can say so before its model loads. Blocks (a socket probe)."""
    parsed = _parse_uri(uri)
    if parsed.scheme == "unix":
        check_socket_path(parsed.path)
        return
    family, _, _, _, address = socket.getaddrinfo(
        parsed.hostname or None, parsed.port or 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    try:
        with socket.create_server(address, family=family):  # SO_REUSEADDR, as asyncio's server
            pass
    except OSError as err:
        if err.errno is None:
            raise
        raise OSError(err.errno, os.strerror(err.errno)) from None  # without the address tuple


def check_socket_path(path: str) -> None:
    """Refuse a unix:// path that holds anything but a stale socket, as TCP refuses a port in use.

    The wyoming server deletes whatever is at the path before binding: a regular file would be
    lost, and a running server's socket silently taken over. A socket nobody answers on is left
    over from a daemon that did not exit cleanly, and may be replaced.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket; not replacing it", path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_SOCKET_PROBE_SECONDS)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return  # stale: nobody listens
        except OSError as err:  # a server that does not accept in time is still a server
            raise OSError(errno.EADDRINUSE, f"address already in use ({err})", path) from None
    raise OSError(errno.EADDRINUSE, "address already in use: another server answers on this socket", path)


def build_info(engine: Engine) -> Info:
    """The `info` answer: one TTS program whose voices are the loaded models' presets and the library's
    voices (read now, so a voice added while the daemon runs is listed)."""
    voices = [
        TtsVoice(
            name=entry.name,
            attribution=_QWEN,
            installed=True,
            description=entry.description,
            version=None,
            languages=[_language_code(name) for name in entry.languages if name != "auto"],
        )
        for entry in engine.voice_entries()
    ]
    models = ", ".join(f"{info.variant} {info.size or 'unknown size'}" for info in engine.models)
    program = TtsProgram(
        name="mlx-speechd",
        attribution=_PROGRAM,
        installed=True,
        description=f"Streaming Qwen3-TTS ({models}) on MLX",
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


async def advertise(name: str, hostname: str, port: int) -> ZeroconfAdvertisement | None:
    """Register `_wyoming._tcp` for Home Assistant; failures are warnings, not fatal."""
    host = _advertised_host(hostname)
    zeroconf: ZeroconfAdvertisement | None = None
    try:
        zeroconf = ZeroconfAdvertisement(port=port, name=name, host=host)
        await zeroconf.register_server()
    except Exception as err:
        if zeroconf is not None:
            await zeroconf.close()
        _LOGGER.warning(
            "Zeroconf: could not advertise '%s' on the network (%s: %s); "
            "add the server in Home Assistant by host and port instead",
            name,
            type(err).__name__,
            err,
        )
        return None
    _LOGGER.info("Zeroconf: advertising '%s' at %s:%d (_wyoming._tcp)", name, zeroconf.host, port)
    return zeroconf


class ZeroconfAdvertisement(HomeAssistantZeroconf):
    """wyoming's zeroconf advertiser, with the way to stop that it lacks."""

    async def close(self) -> None:
        """Unregister the service and close the mDNS sockets; errors are ignored."""
        with contextlib.suppress(Exception):
            await self._aiozc.async_close()


def _advertised_host(hostname: str) -> str | None:
    """The bound IPv4 address, or None (detect the machine's address) for a wildcard or a name."""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return None
    if address.version != 4 or address.is_unspecified:
        return None
    if address.is_loopback:
        _LOGGER.warning(
            "Zeroconf: the server listens on %s, which only this machine can reach; "
            "bind tcp://0.0.0.0:PORT for Home Assistant on another machine",
            hostname,
        )
    return hostname


def _language_code(name: str) -> str:
    codes = {language: code for code, language in ISO_LANGUAGES.items()}
    return codes.get(name, name)
