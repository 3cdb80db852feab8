"""Pure helpers of ``ksaga bench``: Prometheus histograms, quantiles, /proc, tables, comparisons.

Nothing here starts a process or talks to Kafka, so it is unit-tested on its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

__all__ = [
    "Histogram",
    "bucket_quantile",
    "compare_table",
    "cpu_seconds",
    "parse_histograms",
    "peak_rss_mb",
    "result_table",
    "rss_rows",
    "sample_quantile",
]


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative bucket counts by upper bound (``inf`` included)."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def __add__(self, other: Histogram) -> Histogram:
        keys = set(self.buckets) | set(other.buckets)
        return Histogram(
            {k: self.buckets.get(k, 0.0) + other.buckets.get(k, 0.0) for k in keys},
            self.count + other.count,
            self.total + other.total,
        )

    def __sub__(self, other: Histogram) -> Histogram:
        """The observations made between two scrapes (counters only grow)."""
        return Histogram(
            {k: v - other.buckets.get(k, 0.0) for k, v in self.buckets.items()},
            self.count - other.count,
            self.total - other.total,
        )

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        return bucket_quantile(q, self.buckets)


def parse_histograms(text: str, names: Sequence[str]) -> dict[str, Histogram]:
    """The histograms ``names`` (without ``_bucket``) from a /metrics page, labels summed."""
    found = {name: Histogram() for name in names}
    for family in text_string_to_metric_families(text):
        if family.name not in found or family.type != "histogram":
            continue
        hist = found[family.name]
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                hist.buckets[le] = hist.buckets.get(le, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                hist.count += sample.value
            elif sample.name.endswith("_sum"):
                hist.total += sample.value
    return found


def bucket_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Estimate the ``q`` quantile from cumulative buckets, as Prometheus' histogram_quantile.

    Find the first bucket whose cumulative count reaches ``q`` x total and interpolate linearly
    between its lower bound (the previous upper bound, 0 for the first) and its upper bound,
    assuming observations spread evenly inside a bucket. A quantile falling in the ``+Inf``
    bucket is reported as the largest finite bound (the histogram cannot say more). ``None``
    when nothing was observed. The error is at most one bucket's width.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]] if math.isinf(bounds[-1]) else max(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        cumulative = buckets[upper]
        if cumulative >= rank and cumulative > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = upper, cumulative
    return lower


def sample_quantile(q: float, values: Sequence[float]) -> float | None:
    """The nearest-rank ``q`` quantile of exact samples (``None`` for no samples)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process, from ``/proc/<pid>/stat`` (fields 14, 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (``VmHWM`` of ``/proc/<pid>/status``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise ValueError(f"no VmHWM for pid {pid}")


# --------------------------------------------------------------------------- output

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("mode", "mode", "{}"),
    ("n", "sagas measured", "{:,}"),
    ("replicas", "orchestrator replicas", "{}"),
    ("partitions", "partitions", "{}"),
    ("outcomes", "outcomes", "{}"),
    ("duration_s", "first trigger -> last terminal (s)", "{:.2f}"),
    ("sagas_per_s", "sagas/s", "{:,.1f}"),
    ("rate", "offered rate (sagas/s)", "{:,.1f}"),
    ("latency_p50_ms", "saga latency p50 (ms)", "{:,.1f}"),
    ("latency_p90_ms", "saga latency p90 (ms)", "{:,.1f}"),
    ("latency_p99_ms", "saga latency p99 (ms)", "{:,.1f}"),
    ("latency_max_ms", "saga latency max (ms)", "{:,.1f}"),
    ("latency_participants_p50_ms", "  of which in participants, p50 (ms)", "{:,.1f}"),
    ("latency_orchestrator_kafka_p50_ms", "  the rest (orchestrator+Kafka), p50 (ms)", "{:,.1f}"),
    ("records_in", "records in (triggers + inbox)", "{:,}"),
    ("records_out", "records out (state+history+commands+inbox+dlq)", "{:,}"),
    ("records_per_s", "records/s through the orchestrator (in+out)", "{:,.0f}"),
    ("mean_batch_records", "mean batch (input records/transaction)", "{:,.1f}"),
    ("transactions", "transactions committed", "{:,.0f}"),
    ("commit_p50_ms", "commit latency p50 (ms, from buckets)", "{:,.1f}"),
    ("commit_p99_ms", "commit latency p99 (ms, from buckets)", "{:,.1f}"),
    ("orchestrator_cpu_s", "orchestrator CPU (s)", "{:,.2f}"),
    ("orchestrator_cpu_s_per_1000_sagas", "orchestrator CPU s / 1,000 sagas", "{:,.3f}"),
    ("participants_cpu_s", "participants CPU (s)", "{:,.2f}"),
    ("broker_cpu_s", "broker CPU (s)", "{:,.2f}"),
    ("replica_peak_rss_mb", "replica peak RSS (MiB)", "{}"),
    ("ceiling_records", "copier input records", "{:,}"),
    ("ceiling_fanout", "copier records out per record in", "{}"),
    ("ceiling_records_per_s", "copier records/s (in+out)", "{:,.0f}"),
    ("ceiling_ratio", "orchestrator / copier records/s", "{:.3f}"),
    ("restore_records", "state records restored (incl. older versions, tombstones)", "{:,}"),
    ("restore_value_mb", "state record values (MiB)", "{:,.1f}"),
    ("restore_seconds", "restore time, all partitions (s)", "{:,.2f}"),
    ("restore_states_per_s", "restore: saga states/s", "{:,.0f}"),
    ("restore_cpu_s", "restoring process CPU (s)", "{:,.2f}"),
    ("rss_before_restore_mb", "restoring process RSS before the restore (MiB)", "{:,.1f}"),
    ("restore_peak_rss_mb", "restoring process peak RSS (MiB)", "{:,.1f}"),
    ("peak_rss_after_reads_mb", "  after reading every state back (MiB)", "{:,.1f}"),
    ("restore_store_mb", "store size on disk (MiB)", "{:,.1f}"),
    ("load_average_1m", "load average (1 min) before, after the restore", "{}"),
    ("restore_block_cache_mb", "RocksDB block cache (MiB, KSAGA_BLOCK_CACHE_MB)", "{}"),
    ("restore_write_buffer_mb", "RocksDB write buffers (MiB, KSAGA_WRITE_BUFFER_MB)", "{}"),
)


def _fmt(fmt: str, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_fmt(fmt, v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float) and fmt == "{}":
        return f"{value:,.1f}"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def result_table(result: Mapping[str, Any]) -> Table:
    """One run's figures as a two-column table (keys missing from the result are skipped)."""
    table = Table(title="ksaga bench", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, label, fmt in _ROWS:
        value = result.get(key)
        if value is not None:
            table.add_row(label, _fmt(fmt, value))
        if key == "replica_peak_rss_mb" and result.get("rss"):
            for row in rss_rows(result["rss"]):
                table.add_row(*row)
    return table


def rss_rows(rss: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The RSS timeline's summary (``rss.summarise``) as table rows: the window, then per
    process first / last / max and the slopes."""
    rows = [
        (
            f"RSS sampled every {rss['interval_s']:g} s after {rss['warmup_s']:g} s warm-up",
            f"{rss['samples']} samples, {rss['minutes']:,.1f} min, {rss['sagas']:,} sagas",
        )
    ]
    for name, p in rss["processes"].items():
        levels = f"{p['first_mb']:,.1f} / {p['last_mb']:,.1f} / {p['max_mb']:,.1f}"
        slopes = " / ".join(
            _signed(p[k])
            for k in ("slope_mb_per_min", "late_slope_mb_per_min", "mb_per_100k_sagas")
        )
        rows.append((f"  {name} RSS first/last/max (MiB)", levels))
        rows.append((f"  {name} RSS slope MiB/min, 2nd half; /100k sagas", slopes))
    return rows


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.3f}"


def compare_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(key, A, B, B/A) for every numeric figure present in both runs."""
    rows = []
    keys = [k for k, _label, _fmt in _ROWS] + sorted(set(a) - {k for k, _l, _f in _ROWS})
    for key in keys:
        va, vb = a.get(key), b.get(key)
        numeric = (int, float)
        if isinstance(va, bool) or isinstance(vb, bool):
            if va is not None and vb is not None:
                rows.append((key, str(va), str(vb), ""))
            continue
        if isinstance(va, numeric) and isinstance(vb, numeric):
            ratio = f"{vb / va:.3f}x" if va else "-"
            rows.append((key, _number(va), _number(vb), ratio))
    return rows


def _number(value: float) -> str:
    if isinstance(value, int) or abs(value) >= 1_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def compare_table(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str]) -> Table:
    table = Table(title=f"ksaga bench: B / A  (A={names[0]}, B={names[1]})", title_justify="left")
    for column, justify in (("figure", "left"), ("A", "right"), ("B", "right"), ("B/A", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in compare_rows(a, b):
        table.add_row(*row)
    return table
