"""RSS over time for ``ksaga bench --rate``: does a replica's memory grow with sagas processed?

Peak RSS (``VmHWM``) cannot tell a leak from a high-water mark reached at start-up. A sampler
thread reads each process's current ``VmRSS`` every few seconds during the measured window,
together with the sagas finished so far; :func:`summarise` then fits a least-squares line to
the samples after a warm-up (allocator arenas, RocksDB memtables and librdkafka buffers fill
during the first minute at a new load) and reports its slope against time and against sagas.
A flat process has a slope near zero whatever its level.

The sampler only reads ``/proc`` and calls the ``sagas`` callable; it never stops a process.
"""

from __future__ import annotations

import csv
import statistics
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import clock

__all__ = ["RssSample", "RssSampler", "rss_mb", "summarise", "warmup_for", "write_csv"]

WARMUP_S = 60.0


def rss_mb(pid: int) -> float:
    """Current resident set size (``VmRSS`` of ``/proc/<pid>/status``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise ValueError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True, slots=True)
class RssSample:
    """Seconds since the sampler started, sagas finished so far, MiB per process name."""

    t_s: float
    sagas: float
    mb: Mapping[str, float]


class RssSampler:
    """Samples ``pids`` every ``interval_s`` on a daemon thread, from :meth:`start` to :meth:`stop`.

    A sample whose ``sagas`` call fails (a replica busy past the scrape timeout) or whose process
    is gone is skipped, not fatal: the bench's own liveness checks judge the run.
    """

    def __init__(
        self, pids: Mapping[str, int], sagas: Callable[[], float], interval_s: float = 5.0
    ) -> None:
        self.pids = dict(pids)
        self.sagas = sagas
        self.interval_s = interval_s
        self.samples: list[RssSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._start = 0.0

    def start(self) -> RssSampler:
        self._start = clock.monotonic()
        self._thread.start()
        return self

    def stop(self) -> list[RssSample]:
        """One last sample, then the timeline."""
        self._stop.set()
        self._thread.join(30)
        self._sample()
        return self.samples

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval_s):
                return

    def _sample(self) -> None:
        try:
            sagas = self.sagas()
            mb = {name: rss_mb(pid) for name, pid in self.pids.items()}
        except (OSError, ValueError):
            return
        self.samples.append(RssSample(clock.monotonic() - self._start, sagas, mb))


def warmup_for(duration_s: float) -> float:
    """The first minute, or the first half of a window shorter than two minutes."""
    return min(WARMUP_S, duration_s / 2)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    return statistics.linear_regression(xs, ys).slope


def summarise(samples: Sequence[RssSample], warmup_s: float | None = None) -> dict[str, Any]:
    """First, last and max MiB and the slopes, per process, over the samples after warm-up.

    ``slope_mb_per_min``: least squares of MiB on minutes; ``late_slope_mb_per_min``: the same
    over the second half of those samples (a cache filling up slows down, a leak does not);
    ``mb_per_100k_sagas``: of MiB on sagas finished (None when fewer than two distinct points).
    ``warmup_s`` defaults to :func:`warmup_for` the sampled duration.
    """
    duration = samples[-1].t_s - samples[0].t_s if samples else 0.0
    warmup = warmup_for(duration) if warmup_s is None else warmup_s
    kept = [s for s in samples if s.t_s - samples[0].t_s >= warmup]
    summary: dict[str, Any] = {
        "warmup_s": round(warmup, 1),
        "samples": len(kept),
        "minutes": round((kept[-1].t_s - kept[0].t_s) / 60, 2) if kept else 0.0,
        "sagas": round(kept[-1].sagas - kept[0].sagas) if kept else 0,
        "processes": {},
    }
    minutes = [s.t_s / 60 for s in kept]
    sagas = [s.sagas / 100_000 for s in kept]
    for name in kept[0].mb if kept else ():
        mb = [s.mb[name] for s in kept]
        per_min, per_sagas = _slope(minutes, mb), _slope(sagas, mb)
        half = len(kept) // 2
        late = _slope(minutes[half:], mb[half:])
        summary["processes"][name] = {
            "first_mb": round(mb[0], 1),
            "last_mb": round(mb[-1], 1),
            "max_mb": round(max(mb), 1),
            "slope_mb_per_min": None if per_min is None else round(per_min, 3),
            "late_slope_mb_per_min": None if late is None else round(late, 3),
            "mb_per_100k_sagas": None if per_sagas is None else round(per_sagas, 2),
        }
    return summary


def write_csv(samples: Sequence[RssSample], path: Path) -> None:
    """The timeline: one row per sample, one MiB column per process."""
    names = list(samples[0].mb) if samples else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "sagas", *(f"{n}_mb" for n in names)])
        for s in samples:
            writer.writerow([f"{s.t_s:.1f}", f"{s.sagas:.0f}", *(f"{s.mb[n]:.1f}" for n in names)])
