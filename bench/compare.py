"""The side-by-side table: every way of getting speech, on the same model, in rotating rounds.

Columns (each one request = one 25-character sentence = exactly `frames` frames on a fixed-length
test model): mlx-audio's streaming at our steady chunk size and at our first chunk size (in this
process), our engine (in this process), our daemon over Wyoming (plain `synthesize` and Home
Assistant's streaming trio) and over stdio (subprocesses), and mlx-audio's HTTP server
(subprocess). Every server is started and warmed up first; then each round runs every column
once, in an order rotated by one per round, so drift on a shared machine spreads evenly.

Every figure comes from the client side or from an API: the engine's own first-audio time, compute
time and peak MLX memory from `Reply.stats` (in process) and from the stdio `done` message; the
Wyoming protocol carries no such figures, so its columns' first audio is compared with the engine's
own in the stdio daemon (an identical daemon process) request by request (the same round) instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from mlx_speechd.engine import Engine, EngineConfig

from .baseline import baseline_request, load_mlx_audio_model
from .engine_bench import engine_request
from .http_bench import MlxAudioHttpServer, server_available
from .measure import Column, RequestResult, median, process_memory, reset_peak_rss
from .servers import ServerProcess
from .stdio_bench import StdioDaemon, stdio_available
from .wyoming_bench import WyomingDaemon

_LOGGER = logging.getLogger(__name__)

BASELINE = "mlx-audio-10"


@dataclass(frozen=True)
class CompareSettings:
    rounds: int
    text: str = "Hello from the benchmark."
    """25 characters: our engine's frame cap for it is its minimum, 75 frames (6 s)."""
    frames: int = 75
    voice: str = "ryan"
    language: str = "auto"
    first_frames: int = 2
    steady_frames: int = 10
    http: bool = True
    stdio: bool = True
    warmup: bool = True
    """One unmeasured request per column first (first-use costs; mlx-audio's server loads its model)."""


@dataclass
class _Target:
    column: Column
    run: Callable[[], RequestResult]
    server: ServerProcess | None = None


def run_comparison(model: str, settings: CompareSettings) -> list[Column]:
    """Start everything, warm up, run the rounds; returns the columns with their requests."""
    with contextlib.ExitStack() as stack:
        targets = _targets(model, settings, stack)
        for target in targets if settings.warmup else []:
            target.run()
        reset_peak_rss()
        for target in targets:
            if target.server is not None:
                reset_peak_rss(target.server.pid)
        for round_index in range(settings.rounds):
            shift = round_index % len(targets)
            for target in targets[shift:] + targets[:shift]:
                target.column.requests.append(target.run())
            _LOGGER.info("Round %d/%d done", round_index + 1, settings.rounds)
        for target in targets:
            server = target.server
            target.column.memory = server.memory() if server is not None else process_memory()
        return [target.column for target in targets]


def _targets(model: str, settings: CompareSettings, stack: contextlib.ExitStack) -> list[_Target]:
    """Launch the subprocess servers, set up the in-process columns meanwhile, then wait for the servers."""
    s = settings
    wyoming = WyomingDaemon(model)
    stack.callback(wyoming.server.stop)
    servers: list[WyomingDaemon | StdioDaemon | MlxAudioHttpServer] = [wyoming]
    stdio: StdioDaemon | None = None
    if s.stdio and (why := stdio_available()) is None:
        stdio = StdioDaemon(model)
        stack.callback(stdio.stop)
        servers.append(stdio)
    elif s.stdio:
        _LOGGER.warning("Skipping the stdio column: %s", why)
    http: MlxAudioHttpServer | None = None
    if s.http and (why := server_available()) is None:
        http = MlxAudioHttpServer(model)
        stack.callback(http.stop)
        servers.append(http)
    elif s.http:
        _LOGGER.warning("Skipping the mlx-audio HTTP column: %s", why)

    baseline_model = load_mlx_audio_model(model)
    engine = Engine(EngineConfig(model=model))
    engine.start()
    stack.callback(engine.close)
    for server in servers:
        _LOGGER.info("%s ready after %.1fs", type(server).__name__, server.wait_ready())

    targets = [
        _Target(
            Column(
                f"mlx-audio-{frames}",
                f"mlx-audio generate(stream=True), {frames}-frame chunks",
                shared_process=True,
            ),
            partial(baseline_request, baseline_model, s.text, s.voice, s.language, s.frames, frames),
        )
        for frames in (s.steady_frames, s.first_frames)
    ]
    targets.append(
        _Target(
            Column(
                "engine",
                f"mlx-speechd engine, direct ({s.first_frames}->{s.steady_frames} frames)",
                shared_process=True,
            ),
            partial(engine_request, engine, s.text, s.voice),
        )
    )
    for key, label, streaming in (
        ("wyoming", "mlx-speechd Wyoming, synthesize", False),
        ("wyoming-stream", "mlx-speechd Wyoming, HA streaming trio", True),
    ):
        targets.append(
            _Target(Column(key, label), partial(wyoming.request, s.text, s.voice, streaming), wyoming.server)
        )
    if stdio is not None:
        targets.append(
            _Target(
                Column("stdio", "mlx-speechd stdio JSON lines"),
                partial(stdio.request, s.text, s.voice),
                stdio.server,
            )
        )
    if http is not None:
        targets.append(
            _Target(
                Column("mlx-audio-http", f"mlx-audio HTTP server, {s.steady_frames}-frame chunks"),
                partial(http.request, s.text, s.voice, s.language, s.frames, s.steady_frames),
                http.server,
            )
        )
    return targets


def ttfa_over_engine(column: Column, reference: Column) -> float:
    """Median over rounds of this column's first audio (client) minus the engine's own in `reference`.

    Pairs the requests of the same round; `reference`'s requests must carry the engine's own
    first-audio time.
    """
    pairs = zip(column.requests, reference.requests, strict=True)
    return median([r.ttfa - e.engine_ttfa for r, e in pairs if e.engine_ttfa is not None])


def summaries(columns: list[Column]) -> list[dict[str, float | int | str | None]]:
    """Each column's summary, with its first audio over the engine's own in the reference column.

    The reference is the stdio daemon (a process like the Wyoming daemon, and one that reports the
    engine's figures), or the in-process engine where the stdio column is left out.
    """
    by_key = {c.key: c for c in columns}
    reference = by_key.get("stdio", by_key["engine"])
    return [
        {**c.summary(), "ttfa_over_engine_s": ttfa_over_engine(c, reference), "reference": reference.key}
        for c in columns
    ]
