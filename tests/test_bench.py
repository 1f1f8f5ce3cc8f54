"""The benchmark harness (`python -m bench`, top-level, not installed) runs end to end in quick mode
and reports complete, sane numbers.

No speed targets here (the machine is shared and noisy): only that every section ran, every
column measured real audio, and the numbers are positive and finite.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from setuptools import find_packages

from bench.compare import ttfa_over_engine
from bench.concurrency import engine_throughput, generation_throughput
from bench.http_bench import server_available
from bench.long_utterance import mlx_audio_decoder, random_codes
from bench.measure import FRAME_BYTES, Column, RequestResult, percentile
from mlx_speechd.engine.loader import load_model

ROOT = Path(__file__).resolve().parent.parent

FRAMES = 75  # the comparison's sentence runs to the fixed-length model's minimum frame cap


@pytest.fixture(scope="module")
def quick_run(
    tiny_custom_voice: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    """One `--quick` run, shared by the tests below: (the printed tables, the JSON results)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--model", str(tiny_custom_voice)]
    done = subprocess.run([*argv, "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads(out.read_text())


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def test_quick_run_prints_every_table(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, results = quick_run
    for heading in (
        "## Side by side",
        "## Generation loops",
        "## Long utterance",
        "## Cache policy",
        "## Soak",
        "## Audio cache over Wyoming",
    ):
        assert heading in stdout
    assert "## Targets" in stdout
    assert set(results["seconds"]) == {
        "compare",
        "pipeline",
        "long",
        "cache",
        "audio_cache",
        "soak",
        "targets",
    }
    assert "cold" not in results and "big" not in results  # skipped in quick mode


def test_comparison_measures_every_column(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, results = quick_run
    compare = results["compare"]
    summaries = {s["key"]: s for s in compare["summaries"]}
    expected = {"mlx-audio-10", "mlx-audio-2", "engine", "wyoming", "wyoming-stream", "stdio"}
    if server_available() is None:
        expected.add("mlx-audio-http")
    assert set(summaries) == expected
    for key, summary in summaries.items():
        assert summary["requests"] == compare["settings"]["rounds"]
        assert _positive(summary["ttfa_median_s"]) and summary["ttfa_median_s"] <= summary["ttfa_p95_s"]
        assert _positive(summary["rtf_median"]) and _positive(summary["steady_chunk_s"])
        assert summary["steady_chunk_frames"] == (2 if key == "mlx-audio-2" else 10)
        assert summary["rss_bytes"] > 10e6
        # the engine's own figures: in process (Reply.stats) and over stdio (the `done` message)
        has_engine_stats = key in ("engine", "stdio")
        assert (summary["front_end_overhead_s"] is not None) == has_engine_stats
        assert (summary["end_to_end_over_engine"] is not None) == has_engine_stats
        if has_engine_stats:
            assert summary["end_to_end_over_engine"] > 0.9  # the client cannot finish before the engine
        assert (summary["peak_mlx_bytes"] is not None) == (
            key in ("engine", "stdio", "mlx-audio-10", "mlx-audio-2")
        )
        if summary["peak_mlx_bytes"] is not None:
            assert _positive(summary["peak_mlx_bytes"])
        assert math.isfinite(summary["ttfa_over_engine_s"]) and summary["reference"] == "stdio"
    assert summaries["stdio"]["ttfa_over_engine_s"] == summaries["stdio"]["front_end_overhead_s"]
    for key, requests in compare["requests"].items():
        for request in requests:
            assert sum(size for _, size in request["arrivals"]) == FRAMES * FRAME_BYTES, key
    assert compare["engine_first_chunk_frames"] == 2


def test_pipeline_long_utterance_cache_and_soak_sections(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, results = quick_run
    variants = results["pipeline"]["variants"]
    assert set(variants) == {"mlx-audio-10", "mlx-audio-2", "ours-2-10", "ours-10"}
    assert all(_positive(v["rtf_median"]) and _positive(v["cpu_rtf_median"]) for v in variants.values())
    assert set(results["long"]) == {"generation", "decoder", "decoder_full_transformer"}
    for run, impls in results["long"].items():
        assert set(impls) == {"ours", "mlx_audio"}
        for data in impls.values():
            assert len(data["points"]) == 3
            assert all(_positive(p["chunk_seconds"]) and p["cache_bytes"] > 0 for p in data["points"])
            # decoder runs are timed against an interleaved control decoder
            assert all((p["relative"] is None) == (run == "generation") for p in data["points"])
    policies = results["cache"]["policies"]
    assert set(policies) == {"chunk", "limit"}
    assert all(_positive(p["chunk_median_s"]) and _positive(p["rtf_median"]) for p in policies.values())
    # clearing at every chunk leaves (almost) nothing cached; the limit policy keeps its buffers
    assert policies["chunk"]["cache_max_bytes"] < policies["limit"]["cache_max_bytes"]
    soak = results["soak"]
    assert [c["requests"] for c in soak["checkpoints"]] == [0, 10, 10, 12]
    assert all(c["rss_bytes"] > 10e6 for c in soak["checkpoints"])
    assert soak["concurrent"]["requests"] == 2 and _positive(soak["concurrent"]["ttfa_median_s"])
    assert {t["name"] for t in results["targets"]} >= {"engine: frames in the first chunk"}


def test_audio_cache_section(quick_run: tuple[str, dict[str, Any]]) -> None:
    """Each new sentence and its repeat: the same audio, first audio measured for both."""
    _, results = quick_run
    section = results["audio_cache"]
    for kind in ("fresh", "cached"):
        requests = section["requests"][kind]
        assert len(requests) == section["rounds"] == 3
        assert _positive(section[kind]["ttfa_median_s"]) and _positive(section[kind]["audio_median_s"])
    for fresh, cached in zip(section["requests"]["fresh"], section["requests"]["cached"], strict=True):
        assert sum(size for _, size in fresh["arrivals"]) == sum(size for _, size in cached["arrivals"])
    names = {t["name"] for t in results["targets"]}
    assert "Wyoming: first audio of a cached sentence (median)" in names


def test_ttfa_over_engine_pairs_requests_by_round() -> None:
    def column(key: str, ttfas: list[float], engine: list[float] | None = None) -> Column:
        return Column(
            key,
            key,
            [
                RequestResult([(t, FRAME_BYTES)], t + 1, engine_ttfa=e)
                for t, e in zip(ttfas, engine or [None] * len(ttfas), strict=True)
            ],
        )

    stdio = column("stdio", [0.12, 0.32, 0.22], engine=[0.10, 0.30, 0.20])
    wyoming = column("wyoming", [0.11, 0.32, 0.24])
    assert ttfa_over_engine(wyoming, stdio) == pytest.approx(0.02)
    assert ttfa_over_engine(stdio, stdio) == pytest.approx(0.02)
    with pytest.raises(ValueError):  # every column has one request per round
        ttfa_over_engine(column("short", [0.1]), stdio)


def test_random_codes_fit_the_codec(tiny_custom_voice: Path) -> None:
    model, _ = load_model(str(tiny_custom_voice))
    decoder = mlx_audio_decoder(model)
    codes = random_codes(decoder, 30)
    config = decoder.config
    assert codes.shape == (1, config.num_quantizers, 30)
    assert mx.min(codes).item() >= 0 and mx.max(codes).item() < config.codebook_size
    assert mx.array_equal(codes, random_codes(decoder, 30))  # seeded
    assert decoder.streaming_step(codes[:, :, :4]).size > 0  # the decoder takes them


def test_bench_is_not_installed_with_the_package() -> None:
    """The wheel's packages (pyproject's find rule) hold the runtime package and not `bench`."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    rule = config["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=rule["include"])
    assert "mlx_speechd" in packages and "mlx_speechd.engine" in packages
    assert not [p for p in packages if p.split(".")[0] == "bench"]
    assert (ROOT / "bench" / "__main__.py").exists()


def test_request_result_and_percentile() -> None:
    result = RequestResult([(0.05, 2 * FRAME_BYTES), (0.2, 4 * FRAME_BYTES), (0.5, 4 * FRAME_BYTES)], 0.6)
    assert result.ttfa == 0.05
    assert result.chunk_frames == [2, 4, 4]
    assert result.audio_seconds == pytest.approx(0.8)
    assert result.rtf == pytest.approx(0.75)
    assert result.chunk_gaps == pytest.approx([0.05, 0.15, 0.3])
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0], 100) == 3.0


def test_voices_section_on_the_tiny_models(tiny_base: Path, tiny_custom_voice: Path, tmp_path: Path) -> None:
    """`--only voices`: library clone voice, per-request reference and preset, interleaved, on tiny models."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-base").symlink_to(tiny_base)
    (models / "tiny-custom_voice").symlink_to(tiny_custom_voice)
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--only", "voices", "--model", str(tiny_custom_voice)]
    argv += ["--voice-models", str(models), "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "## Clone voice, 18 s reference" in done.stdout
    results = json.loads(out.read_text())
    assert set(results["seconds"]) == {"voices", "targets"}
    tiny = results["voices"]["tiny"]
    assert tiny["base"] == str(models / "tiny-base") and tiny["reference_seconds"] == 18.0
    assert tiny["prompt"]["identical_prompts"]  # the library prompt is the per-request one, bit for bit
    assert _positive(tiny["prompt"]["once_s"]) and _positive(tiny["first_audio"]["library_first_request_s"])
    clones = {"library", "per_request"}
    for part, variants in (("prompt", clones), ("first_audio", {*clones, "preset", "x_vector"})):
        seconds = tiny[part]["seconds"]
        assert set(seconds) == variants
        assert all(len(values) == tiny["rounds"] == 1 for values in seconds.values())
        assert all(_positive(value) for values in seconds.values() for value in values)
    assert _positive(tiny["prompt_ratio"]) and _positive(tiny["clone_over_preset"])
    assert _positive(tiny["x_vector_over_preset"])
    names = {t["name"] for t in results["targets"]}
    assert "tiny: prompt + priming, library voice / per-request reference" in names
    assert "tiny: first audio, library clone voice / preset speaker" in names
    assert "tiny: first audio, x-vector-only library voice / preset speaker" in names


def test_concurrency_throughput_parts(tiny_custom_voice: Path) -> None:
    """The concurrency section's in-process parts (its Wyoming part runs in the full benchmark only)."""
    model, info = load_model(str(tiny_custom_voice))
    generation = generation_throughput(model, info, rounds=1, frames=4)
    assert set(generation["frames_per_second"]) == {"single", "batch 1", "batch 2", "batch 4", "batch 8"}
    assert all(_positive(rate) for rate in generation["frames_per_second"].values())
    engine = engine_throughput(str(tiny_custom_voice), rounds=1, frames=4)
    assert engine["ratio_to_single"]["max_batch 1, 1 at once"] == 1.0
    assert all(_positive(rate) for rate in engine["audio_seconds_per_second"].values())
    assert all(_positive(ttfa) for ttfa in engine["ttfa_median_s"].values())
