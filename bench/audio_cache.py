"""First audio of a sentence from the audio cache over Wyoming, next to a fresh sentence's.

One `mlx-speechd --uri` daemon with its own cache folder, on a tiny random model whose sentences end
by EOS (only those are stored). Each round sends a new sentence (a miss: generated, then stored) and
then the same sentence again (a hit: replayed), each on a fresh connection as Home Assistant makes
them, and times the first audio chunk from the request being sent.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlx_speechd.testing.model_factory import make_test_model

from .measure import RequestResult, median, percentile
from .wyoming_bench import WyomingDaemon

VOICE = "ryan"


def run_audio_cache(work: Path, rounds: int) -> dict[str, Any]:
    """``rounds`` fresh and cached requests (after one pair to warm up), summarized."""
    folder = work / "model-tiny-ends"
    model = str(folder) if (folder / "config.json").exists() else None
    model = model or str(
        make_test_model(folder, "custom_voice", "tiny", fixed_length=False, ends_by_eos=True)
    )
    daemon = WyomingDaemon(model, "--audio-cache-dir", str(work / "audio-cache"))
    fresh: list[RequestResult] = []
    cached: list[RequestResult] = []
    try:
        daemon.wait_ready()
        for index in range(rounds + 1):
            text = f"This is sentence number {index} of the audio cache benchmark."
            first = daemon.request(text, VOICE, streaming=False)
            again = daemon.request(text, VOICE, streaming=False)
            if again.audio_seconds != first.audio_seconds:
                raise RuntimeError(f"round {index}: the repeated sentence's audio differs in length")
            if index:  # round 0 warms up
                fresh.append(first)
                cached.append(again)
    finally:
        daemon.server.stop()
    return {
        "model": model,
        "rounds": rounds,
        "fresh": _summary(fresh),
        "cached": _summary(cached),
        "requests": {"fresh": [asdict(r) for r in fresh], "cached": [asdict(r) for r in cached]},
    }


def _summary(results: list[RequestResult]) -> dict[str, float]:
    ttfa = [r.ttfa for r in results]
    return {
        "ttfa_median_s": median(ttfa),
        "ttfa_p90_s": percentile(ttfa, 90),
        "ttfa_max_s": max(ttfa),
        "end_median_s": median([r.end for r in results]),
        "audio_median_s": median([r.audio_seconds for r in results]),
    }
