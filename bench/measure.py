"""What every benchmark records: one request's audio arrivals, summaries, process memory."""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH

FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class RequestResult:
    """One request as its client saw it. Times are seconds from the request being sent."""

    arrivals: list[tuple[float, int]]
    """(time, PCM bytes) for every audio chunk that carried audio."""
    end: float
    """When the client saw the end of the reply."""
    peak_mlx_bytes: int | None = None
    engine_ttfa: float | None = None
    """The engine's own first-audio time for this request, where the server reports it."""
    engine_compute: float | None = None
    """The engine's own compute time for this request (prompt to last chunk), where reported."""

    @property
    def ttfa(self) -> float:
        return self.arrivals[0][0]

    @property
    def audio_seconds(self) -> float:
        return sum(size for _, size in self.arrivals) / (SAMPLE_RATE * SAMPLE_WIDTH)

    @property
    def rtf(self) -> float:
        """Wall-clock seconds per second of audio, end to end (below 1 is faster than real time)."""
        return self.end / self.audio_seconds

    @property
    def chunk_frames(self) -> list[int]:
        return [round(size / FRAME_BYTES) for _, size in self.arrivals]

    @property
    def chunk_gaps(self) -> list[float]:
        """Seconds between one chunk and the next (the first is the time to first audio)."""
        times = [t for t, _ in self.arrivals]
        return [b - a for a, b in zip([0.0, *times[:-1]], times, strict=True)]


class Recorder:
    """Stamps audio as it arrives; `result()` freezes it into a RequestResult."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.arrivals: list[tuple[float, int]] = []

    def audio(self, size: int) -> None:
        if size:
            self.arrivals.append((time.perf_counter() - self.started, size))

    def result(
        self,
        peak_mlx_bytes: int | None = None,
        engine_ttfa: float | None = None,
        engine_compute: float | None = None,
    ) -> RequestResult:
        if not self.arrivals:
            raise RuntimeError("the request produced no audio")
        end = time.perf_counter() - self.started
        return RequestResult(list(self.arrivals), end, peak_mlx_bytes, engine_ttfa, engine_compute)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return percentile(values, 50)


@dataclass(frozen=True)
class ProcessMemory:
    rss_bytes: int
    peak_rss_bytes: int


def process_memory(pid: int | None = None) -> ProcessMemory:
    """Resident set size now and at its peak, for this process or `pid`."""
    status = Path(f"/proc/{pid or 'self'}/status")
    if status.exists():
        fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status.read_text(), re.MULTILINE))
        return ProcessMemory(int(fields["VmRSS"]) * 1024, int(fields["VmHWM"]) * 1024)
    # macOS: no /proc; ps reports the current RSS only
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid or os.getpid())], capture_output=True, text=True)
    rss = int(out.stdout.strip() or 0) * 1024
    return ProcessMemory(rss, rss)


def reset_peak_rss(pid: int | None = None) -> None:
    """Restart the peak-RSS count (Linux: write 5 to clear_refs); a no-op elsewhere."""
    refs = Path(f"/proc/{pid or 'self'}/clear_refs")
    if refs.exists():
        with contextlib.suppress(OSError):
            refs.write_text("5")


@dataclass
class Column:
    """One way of getting speech (a table column): its requests and its process's memory."""

    key: str
    label: str
    requests: list[RequestResult] = field(default_factory=list)
    memory: ProcessMemory | None = None
    shared_process: bool = False
    """Memory is the benchmark process's own (shared with other in-process columns)."""
    note: str = ""

    def summary(self) -> dict[str, float | int | str | None]:
        reqs = self.requests
        ttfas = [r.ttfa for r in reqs]
        overheads = [r.ttfa - r.engine_ttfa for r in reqs if r.engine_ttfa is not None]
        paired = [r.end / r.engine_compute for r in reqs if r.engine_compute]
        peaks = [r.peak_mlx_bytes for r in reqs if r.peak_mlx_bytes is not None]
        steady = [gap for r in reqs for gap in _steady_gaps(r)]
        frames = [f for r in reqs for f in r.chunk_frames]
        return {
            "key": self.key,
            "label": self.label,
            "requests": len(reqs),
            "ttfa_median_s": median(ttfas),
            "ttfa_p95_s": percentile(ttfas, 95),
            "rtf_median": median([r.rtf for r in reqs]),
            "rtf_best": min(r.rtf for r in reqs),
            "steady_chunk_frames": max(frames) if frames else 0,
            "steady_chunk_s": median(steady),
            "front_end_overhead_s": median(overheads) if overheads else None,
            "end_to_end_over_engine": median(paired) if paired else None,
            "peak_mlx_bytes": max(peaks) if peaks else None,
            "rss_bytes": self.memory.rss_bytes if self.memory else None,
            "peak_rss_bytes": self.memory.peak_rss_bytes if self.memory else None,
            "shared_process": self.shared_process,
            "note": self.note,
        }


def _steady_gaps(result: RequestResult) -> list[float]:
    """Gaps before chunks of the request's largest (steady) size, excluding the first chunk."""
    frames = result.chunk_frames
    largest = max(frames)
    return [
        gap for i, (gap, f) in enumerate(zip(result.chunk_gaps, frames, strict=True)) if i and f == largest
    ]
