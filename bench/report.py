"""Plain-text (Markdown) tables of benchmark results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_MB = 1e6


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with columns padded to line up in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def ms(seconds: float | None) -> str:
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.0f}"


def mb(size: float | None) -> str:
    return "-" if size is None else f"{size / _MB:.0f}"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or not base or math.isnan(value) or math.isnan(base):
        return "-"
    return f"{value / base:.2f}x"


def comparison_table(summaries: list[dict[str, Any]], baseline: str) -> str:
    base = next(s for s in summaries if s["key"] == baseline)
    rows = []
    for s in summaries:
        rss = mb(s["rss_bytes"]) + ("*" if s["shared_process"] else "")
        rows.append(
            [
                s["label"],
                ms(s["ttfa_median_s"]),
                ms(s["ttfa_p95_s"]),
                ratio(s["ttfa_median_s"], base["ttfa_median_s"]),
                f"{s['rtf_median']:.3f}",
                f"{s['rtf_best']:.3f}",
                ratio(s["rtf_median"], base["rtf_median"]),
                f"{ms(s['steady_chunk_s'])} ({s['steady_chunk_frames']})",
                ms(s["front_end_overhead_s"]),
                ms(s["ttfa_over_engine_s"]),
                "-" if s["end_to_end_over_engine"] is None else f"{s['end_to_end_over_engine']:.3f}x",
                mb(s["peak_mlx_bytes"]),
                rss,
            ]
        )
    header = [
        "column",
        "first audio ms (median)",
        "p95",
        "x base",
        "RTF",
        "best",
        "x base",
        "chunk ms (frames)",
        "front end ms",
        "vs ref. engine ms",
        "wall / engine",
        "peak MLX MB",
        "RSS MB",
    ]
    return table(header, rows)


def long_table(result: dict[str, Any]) -> str:
    rows = []
    for run, impls in result.items():
        for impl, data in impls.items():
            points = data["points"]
            first = points[0]
            cells = [f"{ms(p['chunk_seconds'])} / {p['cache_bytes'] / _MB:.2f}" for p in points]
            growth = ratio(points[-1]["chunk_seconds"], first["chunk_seconds"])
            relative = "-" if first["relative"] is None else ratio(points[-1]["relative"], first["relative"])
            rows.append([run, impl, *cells, growth, relative])
    at = [
        f"at {p['at_seconds']:g} s: chunk ms / KV MB" for p in next(iter(result.values()))["ours"]["points"]
    ]
    return table(["run", "implementation", *at, "chunk time last / first", "same, vs control"], rows)


def soak_table(result: dict[str, Any]) -> str:
    rows = [
        [
            c["label"],
            str(c["requests"]),
            f"{c['seconds']:.0f}",
            mb(c["rss_bytes"]),
            mb(c["mlx_active_bytes"]),
            f"{c['mlx_cache_bytes'] / _MB:.1f}",
        ]
        for c in result["checkpoints"]
    ]
    memory = table(["checkpoint", "requests", "s", "RSS MB", "MLX active MB", "MLX cache MB"], rows)
    phases = [
        ("first 10 sequential", result["sequential_first"]),
        ("last 10 sequential", result["sequential_last"]),
        ("all sequential", result["sequential"]),
        (f"{result['clients']} concurrent clients", result["concurrent"]),
    ]
    latency = table(
        ["phase", "requests", "first audio ms median", "p95", "max", "RTF median"],
        [
            [
                name,
                str(p["requests"]),
                ms(p["ttfa_median_s"]),
                ms(p["ttfa_p95_s"]),
                ms(p["ttfa_max_s"]),
                f"{p['rtf_median']:.3f}",
            ]
            for name, p in phases
        ],
    )
    return memory + "\n\n" + latency


def cache_table(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            ms(p["chunk_median_s"]),
            ms(p["chunk_p95_s"]),
            f"{p['rtf_median']:.3f}",
            f"{p['cpu_rtf_median']:.3f}",
            f"{p['cache_max_bytes'] / _MB:.1f}",
            mb(p["peak_max_bytes"]),
        ]
        for name, p in result["policies"].items()
    ]
    return table(
        [
            "policy",
            "chunk ms median",
            "p95",
            "RTF median",
            "CPU-time RTF",
            "MLX cache MB (max)",
            "peak MLX MB",
        ],
        rows,
    )


def audio_cache_table(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            f"{s['ttfa_median_s'] * 1000:.1f}",
            f"{s['ttfa_p90_s'] * 1000:.1f}",
            f"{s['ttfa_max_s'] * 1000:.1f}",
            ms(s["end_median_s"]),
            f"{s['audio_median_s']:.2f}",
        ]
        for name, s in (("fresh sentence", result["fresh"]), ("same sentence again", result["cached"]))
    ]
    return table(
        ["request", "first audio ms median", "p90", "max", "whole reply ms median", "audio s median"], rows
    )


def cold_table(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["kernels"],
            "yes" if r["warmup"] else "no",
            f"{r['kernels_before']} -> {r['kernels_after']}",
            f"{r['start_s']:.2f}",
            ms(r["first_ttfa_s"]),
            ms(r["second_ttfa_s"]),
            f"{r['ready_to_first_audio_s']:.2f}",
        ]
        for r in results
    ]
    header = [
        "compiled kernels",
        "warm-up",
        "kernel files",
        "start s",
        "1st request first audio ms",
        "2nd ms",
        "launch to first audio s",
    ]
    return table(header, rows)


def big_table(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            f"{r['ttfa_s']:.1f}",
            f"{r['total_s']:.1f}",
            str(r["frames"]),
            f"{r['seconds_per_frame']:.2f}",
            mb(r["peak_mlx_bytes"]),
        ]
        for name, r in (
            ("mlx-audio (2-frame chunks)", result["mlx_audio"]),
            ("ours (2-frame chunks)", result["ours"]),
        )
    ]
    return table(["implementation", "first audio s", "total s", "frames", "s per frame", "peak MLX MB"], rows)


def pipeline_table(result: dict[str, Any]) -> str:
    variants = result["variants"]
    base = variants["mlx-audio-10"]
    rows = [
        [
            name,
            f"{v['rtf_median']:.3f}",
            f"{v['rtf_best']:.3f}",
            ratio(v["rtf_median"], base["rtf_median"]),
            f"{v['cpu_rtf_median']:.3f}",
            ratio(v["cpu_rtf_median"], base["cpu_rtf_median"]),
        ]
        for name, v in variants.items()
    ]
    header = ["variant", "RTF median", "best", "x base", "CPU-time RTF median", "x base"]
    return table(header, rows)


def voices_table(results: dict[str, dict[str, Any]]) -> str:
    """Per model size: prompt + priming and first audio, library voice / per-request reference / preset."""
    rows = []
    for size, r in results.items():
        prompt, audio = r["prompt"]["median_s"], r["first_audio"]["median_s"]
        rows.append(
            [
                f"{size} ({r['rounds']} rounds)",
                f"{prompt['per_request']:.3f}",
                f"{prompt['library']:.3f}",
                ratio(prompt["library"], prompt["per_request"]),
                f"{audio['per_request']:.3f}",
                f"{audio['library']:.3f}",
                f"{audio['preset']:.3f}",
                ratio(audio["library"], audio["preset"]),
                f"{audio['x_vector']:.3f}",
                ratio(audio["x_vector"], audio["preset"]),
                f"{r['prompt']['once_s']:.2f}",
            ]
        )
    header = [
        "model",
        "prompt+priming s, per request",
        "library",
        "library / per request",
        "first audio s, per request",
        "library",
        "preset",
        "library / preset",
        "x-vector-only library voice",
        "x-vector / preset",
        "compute once s",
    ]
    return table(header, rows)


def concurrency_table(result: dict[str, Any]) -> str:
    generation, engine = result["generation"], result["engine"]
    rows = [
        [f"generation: {name}", f"{rate:.1f} frames/s", f"{generation['ratio_to_single'][name]:.2f}x"]
        for name, rate in generation["frames_per_second"].items()
    ]
    rows += [
        [f"engine: {name}", f"{rate:.2f} audio s/s", f"{engine['ratio_to_single'][name]:.2f}x"]
        for name, rate in engine["audio_seconds_per_second"].items()
    ]
    throughput = table(["throughput", "rate", "vs single stream"], rows)
    latency = table(
        ["Wyoming daemon", "first audio ms, alone", "4 at once", "ratio", "describe ms median", "max"],
        [
            [
                name,
                ms(w["idle_ttfa_median_s"]),
                ms(w["concurrent_ttfa_median_s"]),
                f"{w['ratio']:.1f}x",
                ms(w["describe_median_s"]),
                ms(w["describe_max_s"]),
            ]
            for name, w in result["wyoming"].items()
        ],
    )
    return f"{throughput}\n\n{latency}"
