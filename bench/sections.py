"""The benchmark's sections, one module each, in one registry (`SECTIONS`), run in its order.

A section is a function of the run's `Context` returning an `Outcome`: its JSON result, the title
of its table and the table. To add one: write its module, add an entry to `SECTIONS` (and, if it
has pass/fail limits, a function to `targets.CHECKS`), and give `Plan` its counts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import report

if TYPE_CHECKING:
    from mlx_speechd.engine.adapter import Qwen3Model
    from mlx_speechd.engine.types import ModelInfo


@dataclass(frozen=True)
class Plan:
    """How much of each section to run."""

    rounds: int
    pipeline_rounds: int
    pipeline_frames: int
    long_frames: int
    long_points: tuple[float, ...]
    long_half_width: float
    long_repeats: int
    cache_rounds: int
    cache_per_block: int
    cache_frames: int
    soak_requests: int
    soak_clients: int
    soak_per_client: int
    audio_cache_rounds: int
    voice_sizes: tuple[tuple[str, int, int], ...] = (("tiny", 1, 1),)
    """`voices`: the model sizes, each with its counted and its warm-up rounds."""
    voice_frames: int = 2
    concurrency_rounds: int = 1
    concurrency_frames: int = 24
    big_frames: int = 4


FULL = Plan(
    rounds=30,
    pipeline_rounds=12,
    pipeline_frames=75,
    long_frames=800,
    long_points=(5.0, 30.0, 60.0),
    long_half_width=2.0,
    long_repeats=3,
    cache_rounds=6,
    cache_per_block=2,
    cache_frames=150,
    soak_requests=200,
    soak_clients=4,
    soak_per_client=10,
    audio_cache_rounds=20,
    voice_sizes=(("tiny", 8, 1), ("0.6b", 1, 0)),
    concurrency_rounds=5,
    concurrency_frames=40,
)
QUICK = Plan(
    rounds=1,
    pipeline_rounds=1,
    pipeline_frames=24,
    long_frames=64,
    long_points=(1.5, 3.0, 4.5),
    long_half_width=0.8,
    long_repeats=1,
    cache_rounds=1,
    cache_per_block=1,
    cache_frames=40,
    soak_requests=10,
    soak_clients=2,
    soak_per_client=1,
    audio_cache_rounds=3,
)


@dataclass
class Context:
    """What every section gets: the model, the plan, the command line and a work folder."""

    model: str
    plan: Plan
    args: argparse.Namespace
    work: Path
    make_model: Callable[[Path, str, str], str]
    """Writes a random fixed-length model: (folder, size, variant) -> folder."""
    _loaded: tuple[Qwen3Model, ModelInfo] | None = field(default=None, repr=False)

    def loaded(self) -> tuple[Qwen3Model, ModelInfo]:
        """The model loaded in this process, (model, ModelInfo), shared by the in-process sections."""
        if self._loaded is None:
            from mlx_speechd.engine.loader import load_model

            self._loaded = load_model(self.model)
        return self._loaded

    def release(self) -> None:
        """Drop the in-process model (before sections that measure memory in other processes)."""
        self._loaded = None


@dataclass(frozen=True)
class Outcome:
    result: Any
    title: str
    table: str


def compare(ctx: Context) -> Outcome:
    from .compare import BASELINE, CompareSettings, run_comparison, summaries

    args = ctx.args
    settings = CompareSettings(
        rounds=args.rounds or ctx.plan.rounds,
        http=not args.no_http,
        stdio=not args.no_stdio,
        warmup=not args.quick,
    )
    columns = run_comparison(ctx.model, settings)
    summary = summaries(columns)
    engine = next(c for c in columns if c.key == "engine")
    result = {
        "settings": asdict(settings),
        "summaries": summary,
        "engine_first_chunk_frames": max(r.chunk_frames[0] for r in engine.requests),
        "requests": {c.key: [asdict(r) for r in c.requests] for c in columns},
    }
    title = (
        f"Side by side: {settings.rounds} rounds, {settings.frames} frames per request; ratios "
        "against mlx-audio at 10-frame chunks; * = this benchmark's own process"
    )
    return Outcome(result, title, report.comparison_table(summary, BASELINE))


def pipeline(ctx: Context) -> Outcome:
    from .pipeline import run_pipeline

    model, info = ctx.loaded()
    result = run_pipeline(model, info, rounds=ctx.plan.pipeline_rounds, frames=ctx.plan.pipeline_frames)
    return Outcome(result, "Generation loops alone (one thread, no server)", report.pipeline_table(result))


def long(ctx: Context) -> Outcome:
    from .long_utterance import run_long_utterance

    model, info = ctx.loaded()
    plan = ctx.plan
    result = run_long_utterance(
        model,
        info,
        frames=plan.long_frames,
        points=plan.long_points,
        half_width=plan.long_half_width,
        repeats=plan.long_repeats,
    )
    return Outcome(result, "Long utterance", report.long_table(result))


def cache(ctx: Context) -> Outcome:
    from .cache_policy import run_cache_policy

    model, info = ctx.loaded()
    plan = ctx.plan
    result = run_cache_policy(
        model, info, rounds=plan.cache_rounds, per_block=plan.cache_per_block, frames=plan.cache_frames
    )
    return Outcome(result, "Cache policy", report.cache_table(result))


def audio_cache(ctx: Context) -> Outcome:
    from .audio_cache import run_audio_cache

    result = run_audio_cache(ctx.work, ctx.plan.audio_cache_rounds)
    title = (
        f"Audio cache over Wyoming: {result['rounds']} new sentences, each then asked for again "
        "(tiny model whose sentences end by EOS)"
    )
    return Outcome(result, title, report.audio_cache_table(result))


def soak(ctx: Context) -> Outcome:
    from .soak import run_soak

    plan = ctx.plan
    result = run_soak(ctx.model, plan.soak_requests, plan.soak_clients, plan.soak_per_client)
    return Outcome(result, "Soak", report.soak_table(result))


def concurrency(ctx: Context) -> Outcome:
    from .workers import run_worker

    plan = ctx.plan
    args = ["--model", ctx.model, "--rounds", str(plan.concurrency_rounds)]
    result = run_worker("concurrency", [*args, "--frames", str(plan.concurrency_frames)], timeout=3600)
    return Outcome(result, "Four requests at once", report.concurrency_table(result))


def cold(ctx: Context) -> Outcome:
    from .cold_start import run_cold_start

    result = run_cold_start(ctx.model)
    return Outcome(result, "Cold start", report.cold_table(result))


def voices(ctx: Context) -> Outcome:
    from .voice_prompts import REFERENCE_SECONDS, run_voice_prompts

    folder = ctx.args.voice_models or ctx.work / "voice-models"
    results = {}
    for size, rounds, warmup in ctx.plan.voice_sizes:
        models = {}
        for variant in ("base", "custom_voice"):
            models[variant] = folder / f"{size}-{variant}"
            if not (models[variant] / "config.json").exists():
                ctx.make_model(models[variant], size, variant)
        base, custom = str(models["base"]), str(models["custom_voice"])
        results[size] = run_voice_prompts(base, custom, rounds, warmup, ctx.plan.voice_frames)
    title = (
        f"Clone voice, {REFERENCE_SECONDS:g} s reference: library voice against per-request reference audio "
        f"and a preset speaker (medians; {ctx.plan.voice_frames} frames per request)"
    )
    return Outcome(results, title, report.voices_table(results))


def big(ctx: Context) -> Outcome:
    from .big_model import run_big_model

    folder = ctx.args.big_model or ctx.work / "model-0.6b"
    if not (folder / "config.json").exists():
        ctx.make_model(folder, "0.6b", "custom_voice")
    result = run_big_model(str(folder), frames=ctx.plan.big_frames)
    return Outcome(result, f"0.6B-shaped model, {ctx.plan.big_frames} frames", report.big_table(result))


@dataclass(frozen=True)
class Section:
    run: Callable[[Context], Outcome]
    in_process: bool = False
    """Uses the model loaded in the benchmark's own process (`Context.loaded`)."""
    quick: bool = True
    """Runs in `--quick` mode (the CI mode)."""


SECTIONS: dict[str, Section] = {
    "compare": Section(compare),
    "pipeline": Section(pipeline, in_process=True),
    "long": Section(long, in_process=True),
    "cache": Section(cache, in_process=True),
    "audio_cache": Section(audio_cache),
    "soak": Section(soak),
    "concurrency": Section(concurrency, quick=False),
    "cold": Section(cold, quick=False),
    "voices": Section(voices, quick=False),
    "big": Section(big, quick=False),
}
