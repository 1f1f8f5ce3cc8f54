"""The issue's targets, checked against one run's results (reported, never asserted in tests)."""

from __future__ import annotations

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


def check(results: dict[str, Any], baseline: str) -> list[Target]:
    targets: list[Target] = []
    if "compare" in results:
        summaries = {s["key"]: s for s in results["compare"]["summaries"]}
        base = summaries[baseline]
        for key in DAEMON_COLUMNS:
            if key not in summaries:
                continue
            overhead = summaries[key]["front_end_overhead_s"]
            if overhead is not None:
                targets.append(
                    Target(
                        f"{key}: first audio minus the engine's own",
                        f"{overhead * 1000:.1f} ms",
                        "<= 10 ms",
                        overhead <= 0.010,
                    )
                )
        for key in ("engine", *DAEMON_COLUMNS):
            if key in summaries:
                rtf = summaries[key]["rtf_median"] / base["rtf_median"]
                targets.append(Target(f"{key}: RTF vs {baseline}", f"{rtf:.3f}x", "<= 1.03x", rtf <= 1.03))
                paired = summaries[key]["end_to_end_over_engine"]
                targets.append(
                    Target(
                        f"{key}: wall time / the engine's own compute (paired)",
                        f"{paired:.3f}x",
                        "<= 1.03x",
                        paired <= 1.03,
                    )
                )
        first = results["compare"]["engine_first_chunk_frames"]
        targets.append(Target("engine: frames in the first chunk", str(first), "<= 2", first <= 2))
    if "pipeline" in results:
        for variant in ("ours-10", "ours-2-10"):
            for key, what in (("rtf_median", "wall"), ("cpu_rtf_median", "CPU")):
                value = rtf_ratio(results["pipeline"], variant, key)
                targets.append(
                    Target(
                        f"pipeline {variant}: {what} RTF vs mlx-audio-10",
                        f"{value:.3f}x",
                        "<= 1.03x",
                        value <= 1.03,
                    )
                )
    if "long" in results:
        for run in ("decoder", "decoder_full_transformer", "generation"):
            for impl in ("ours", "mlx_audio"):
                raw = growth(results["long"], run, impl)
                if run == "generation":
                    targets.append(
                        Target(f"{run} ({impl}): chunk time last point / first", f"{raw:.3f}x", "-", None)
                    )
                    continue
                value = growth(results["long"], run, impl, "relative")
                limited = impl == "ours"
                targets.append(
                    Target(
                        f"{run} ({impl}): chunk time last point / first, vs control (raw {raw:.3f}x)",
                        f"{value:.3f}x",
                        "<= 1.10x" if limited else "-",
                        value <= 1.10 if limited else None,
                    )
                )
    if "soak" in results:
        value = rss_growth(results["soak"])
        targets.append(
            Target(
                f"RSS after {results['soak']['requests']} requests / after 10",
                f"{value:.3f}x",
                "<= 1.05x",
                value <= 1.05,
            )
        )
    if "cache" in results:
        value = chunk_cost_ratio(results["cache"])
        targets.append(Target("chunk time, clear every chunk / clear over limit", f"{value:.3f}x", "-", None))
        policies = results["cache"]["policies"]
        value = policies["chunk"]["cpu_rtf_median"] / policies["limit"]["cpu_rtf_median"]
        targets.append(Target("CPU time, clear every chunk / clear over limit", f"{value:.3f}x", "-", None))
    return targets
