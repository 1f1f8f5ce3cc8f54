"""A/B of checkouts: stdio daemons of two or more source trees, one request at a time, interleaved.

`python -m bench.checkouts --model FOLDER --variant NAME=CHECKOUT[:OPTION,...] ... [--rounds N]`
starts one `--stdio` daemon per variant in CHECKOUT, with it first on its PYTHONPATH (so that
checkout's package runs) and the daemon options given (comma-separated), warms each up, then sends the same
sentence to each in turn, the order rotated every round, and prints the medians of the engines' own
first-audio time and compute RTF (from each `done` message) and their ratios to the first variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from .stdio_bench import StdioDaemon

TEXT = "Hello from the benchmark."
"""25 characters: 75 frames, the minimum frame cap, on a fixed-length test model."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=CHECKOUT[:OPTIONS]")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    daemons: dict[str, StdioDaemon] = {}
    original, here = os.environ.get("PYTHONPATH"), Path.cwd()
    model = str(Path(args.model).resolve())
    try:
        for spec in args.variant:
            name, _, rest = spec.partition("=")
            checkout, _, options = rest.partition(":")
            # `python -m` puts its working folder first on the path: start each daemon in its checkout
            os.chdir((here / checkout).resolve())
            os.environ["PYTHONPATH"] = str(Path.cwd())  # the daemon's environment copies it
            daemons[name] = StdioDaemon(model, "--no-audio-cache", *filter(None, options.split(",")))
        os.chdir(here)
        for daemon in daemons.values():
            daemon.wait_ready()
            daemon.request(TEXT)  # warm up
        ttfa: dict[str, list[float]] = {name: [] for name in daemons}
        rtf: dict[str, list[float]] = {name: [] for name in daemons}
        names = list(daemons)
        for round_index in range(args.rounds):
            for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                result = daemons[name].request(TEXT)
                assert result.engine_ttfa is not None and result.engine_compute is not None
                ttfa[name].append(result.engine_ttfa)
                rtf[name].append(result.engine_compute / result.audio_seconds)
    finally:
        os.chdir(here)
        if original is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = original
        for daemon in daemons.values():
            daemon.stop()
    medians = {
        name: {"ttfa_median_s": statistics.median(ttfa[name]), "rtf_median": statistics.median(rtf[name])}
        for name in names
    }
    base = medians[names[0]]
    for name, figures in medians.items():
        print(
            f"{name:20s} first audio {figures['ttfa_median_s'] * 1000:6.1f} ms "
            f"({figures['ttfa_median_s'] / base['ttfa_median_s']:.2f}x), "
            f"RTF {figures['rtf_median']:.3f} ({figures['rtf_median'] / base['rtf_median']:.2f}x)"
        )
    if args.out:
        args.out.write_text(json.dumps({"rounds": args.rounds, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
