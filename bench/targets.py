"""The issue's targets, checked against one run's results (reported, never asserted in tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cache_policy import chunk_cost_ratio
from .long_utterance import growth
from .pipeline import rtf_ratio
from .soak import rss_growth

DAEMON_COLUMNS = ("wyoming", "wyoming-stream", "stdio")


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    limit: str
    met: bool | None
    """None: measured for the record, no pass/fail limit."""


def compare_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    targets: list[Target] = []
    summaries = {s["key"]: s for s in result["summaries"]}
    base = summaries[baseline]
    for key in (k for k in DAEMON_COLUMNS if k in summaries):
        overhead = summaries[key]["front_end_overhead_s"]
        name = f"{key}: first audio minus the engine's own"
        if overhead is None:  # Wyoming reports no engine figures: the reference daemon's, same round
            overhead = summaries[key]["ttfa_over_engine_s"]
            name = f"{key}: first audio minus the {summaries[key]['reference']} engine's own (same round)"
        targets.append(Target(name, f"{overhead * 1000:.1f} ms", "<= 10 ms", overhead <= 0.010))
    for key in (k for k in ("engine", *DAEMON_COLUMNS) if k in summaries):
        rtf = summaries[key]["rtf_median"] / base["rtf_median"]
        targets.append(Target(f"{key}: RTF vs {baseline}", f"{rtf:.3f}x", "<= 1.03x", rtf <= 1.03))
        paired = summaries[key]["end_to_end_over_engine"]
        if paired is not None:
            targets.append(
                Target(
                    f"{key}: wall time / the engine's own compute (paired)",
                    f"{paired:.3f}x",
                    "<= 1.03x",
                    paired <= 1.03,
                )
            )
    first = result["engine_first_chunk_frames"]
    targets.append(Target("engine: frames in the first chunk", str(first), "<= 2", first <= 2))
    return targets


def pipeline_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    targets = []
    for variant in ("ours-10", "ours-2-10"):
        for key, what in (("rtf_median", "wall"), ("cpu_rtf_median", "CPU")):
            value = rtf_ratio(result, variant, key)
            targets.append(
                Target(
                    f"pipeline {variant}: {what} RTF vs {baseline}",
                    f"{value:.3f}x",
                    "<= 1.03x",
                    value <= 1.03,
                )
            )
    return targets


def long_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    targets = []
    for run in ("decoder", "decoder_full_transformer", "generation"):
        for impl in ("ours", "mlx_audio"):
            raw = growth(result, run, impl)
            if run == "generation":
                targets.append(
                    Target(f"{run} ({impl}): chunk time last point / first", f"{raw:.3f}x", "-", None)
                )
                continue
            value = growth(result, run, impl, "relative")
            limited = impl == "ours"
            targets.append(
                Target(
                    f"{run} ({impl}): chunk time last point / first, vs control (raw {raw:.3f}x)",
                    f"{value:.3f}x",
                    "<= 1.10x" if limited else "-",
                    value <= 1.10 if limited else None,
                )
            )
    return targets


def soak_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    value = rss_growth(result)
    return [
        Target(
            f"RSS after {result['requests']} requests / after 10", f"{value:.3f}x", "<= 1.05x", value <= 1.05
        )
    ]


def cache_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    policies = result["policies"]
    cpu = policies["chunk"]["cpu_rtf_median"] / policies["limit"]["cpu_rtf_median"]
    return [
        Target(
            "chunk time, clear every chunk / clear over limit", f"{chunk_cost_ratio(result):.3f}x", "-", None
        ),
        Target("CPU time, clear every chunk / clear over limit", f"{cpu:.3f}x", "-", None),
    ]


def voices_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    targets = []
    for size, r in result.items():
        prompt, clone = r["prompt_ratio"], r["clone_over_preset"]
        targets += [
            Target(
                f"{size}: prompt + priming, library voice / per-request reference",
                f"{prompt:.3f}x",
                "<= 0.10x",
                prompt <= 0.10,
            ),
            Target(
                f"{size}: first audio, library clone voice / preset speaker",
                f"{clone:.2f}x",
                "<= 1.2x",
                clone <= 1.2,
            ),
            Target(
                f"{size}: first audio, x-vector-only library voice / preset speaker",
                f"{r['x_vector_over_preset']:.2f}x",
                "<= 1.2x",
                r["x_vector_over_preset"] <= 1.2,
            ),
        ]
    return targets


def concurrency_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    generation = result["generation"]["ratio_to_single"]["batch 4"]
    engine = result["engine"]["ratio_to_single"]["max_batch 4, 4 at once"]
    wyoming = result["wyoming"]["max_batch 4"]
    return [
        Target(
            "4 rows: frame generation throughput / single stream",
            f"{generation:.2f}x",
            ">= 3x",
            generation >= 3,
        ),
        Target(
            "4 requests: end-to-end aggregate throughput / one alone",
            f"{engine:.2f}x",
            ">= 1.6x",
            engine >= 1.6,
        ),
        Target(
            "4 Wyoming clients: median first audio / alone",
            f"{wyoming['ratio']:.2f}x",
            "<= 4x",
            wyoming["ratio"] <= 4,
        ),
        Target(
            "describe during 4 requests (max)",
            f"{wyoming['describe_max_s'] * 1000:.0f} ms",
            "< 100 ms",
            wyoming["describe_max_s"] < 0.1,
        ),
    ]


def audio_cache_targets(result: dict[str, Any], baseline: str) -> list[Target]:
    cached, fresh = result["cached"]["ttfa_median_s"], result["fresh"]["ttfa_median_s"]
    return [
        Target(
            "Wyoming: first audio of a cached sentence (median)",
            f"{cached * 1000:.1f} ms",
            "<= 10 ms",
            cached <= 0.010,
        ),
        Target("Wyoming: first audio of a fresh sentence (median)", f"{fresh * 1000:.1f} ms", "-", None),
    ]


CHECKS: dict[str, Callable[[dict[str, Any], str], list[Target]]] = {
    "compare": compare_targets,
    "pipeline": pipeline_targets,
    "long": long_targets,
    "soak": soak_targets,
    "cache": cache_targets,
    "concurrency": concurrency_targets,
    "audio_cache": audio_cache_targets,
    "voices": voices_targets,
}
"""Each section's targets, by section name (sections without targets are absent)."""


def check(results: dict[str, Any], baseline: str) -> list[Target]:
    """The targets of every section in `results` that has some."""
    return [
        t for name, targets in CHECKS.items() if name in results for t in targets(results[name], baseline)
    ]
