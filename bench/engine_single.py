"""One request at a time through the engine at its defaults: median first audio and wall-clock RTF.

For A/B runs of two checkouts (it uses only the engine's public API, so an older checkout's
package can be put first on the path; alternate the two, round by round):

`PYTHONPATH=CHECKOUT python bench/engine_single.py --model FOLDER --requests N --out FILE`
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from mlx_speechd.engine import AudioCacheSettings, Engine, EngineConfig, GuardSettings, ReplyOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    guards = GuardSettings(frames_per_char=0.01, min_frames=args.frames)
    engine = Engine(
        EngineConfig(model=args.model, guards=guards, audio_cache=AudioCacheSettings(enabled=False))
    )
    engine.start()
    ttfa, rtf = [], []
    for index in range(args.requests + 1):  # the first one warms up
        started = time.perf_counter()
        reply = engine.reply(ReplyOptions(seed=index))
        reply.speak("Good morning, the kitchen lights are on now.")
        reply.finish()
        first = None
        for _ in reply:
            first = first or time.perf_counter() - started
        wall = time.perf_counter() - started
        if index and reply.stats is not None and first is not None:
            ttfa.append(first)
            rtf.append(wall / reply.stats.audio_seconds)
    engine.close()
    result = {"ttfa_median_s": statistics.median(ttfa), "rtf_median": statistics.median(rtf)}
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
