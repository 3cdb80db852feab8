"""``ksaga bench`` cannot rot: a short checked run end to end, plus its pure helpers.

No timing assertions: the figures depend on the machine; what must hold is that the command
runs, checks the log, writes every documented key and leaves no process behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from orchestrator.bench.report import (
    bucket_quantile,
    compare_rows,
    parse_histograms,
    sample_quantile,
)
from orchestrator.bench.restorer import check_restored
from orchestrator.bench.statefill import final_state
from orchestrator.partitioning import partition_for
from orchestrator.store import MemorySagaStore, StoreBatch

INF = math.inf
BASE_MS = 1_767_225_600_000


@pytest.mark.kafka
def test_a_short_throughput_run_with_ceiling_writes_a_checked_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.bench", "-n", "150", "--warmup", "20",
         "--replicas", "1", "--partitions", "2", "--ceiling", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    for key in (
        "n", "replicas", "partitions", "check_passed", "sagas_per_s", "records_per_s",
        "records_in", "records_out", "mean_batch_records", "commit_p50_ms", "commit_p99_ms",
        "orchestrator_cpu_s_per_1000_sagas", "broker_cpu_s", "replica_peak_rss_mb",
        "ceiling_records_per_s", "ceiling_ratio",
    ):  # fmt: skip
        assert key in figures, key
    assert figures["warmup"] == 20
    assert figures["check_passed"] is True
    assert (figures["n"], figures["replicas"], figures["partitions"]) == (150, 1, 2)
    assert sum(figures["outcomes"].values()) == 150
    assert figures["outcomes"]["COMPENSATED"] > 0  # 10 % declined at payment
    assert "check: ok" in result.stdout
    leftovers = subprocess.run(
        ["pgrep", "-f", "ksaga-bench-"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""


@pytest.mark.kafka
def test_a_short_latency_run_samples_rss_over_time(tmp_path: Path) -> None:
    out, timeline = tmp_path / "latency.json", tmp_path / "rss.csv"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.bench", "-n", "200", "--rate", "50",
         "--partitions", "2", "--rss-interval", "0.5", "--rss-csv", str(timeline),
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["check_passed"] is True
    assert (figures["mode"], figures["rate"]) == ("latency", 50.0)
    for key in ("latency_p50_ms", "latency_p99_ms", "latency_max_ms"):
        assert figures[key] > 0, key
    rss = figures["rss"]
    assert rss["interval_s"] == 0.5
    assert rss["samples"] >= 2
    assert 0 < rss["warmup_s"] <= 60
    assert 0 <= rss["sagas"] <= 200
    assert set(rss["processes"]) == {"replica-0", "participants"}
    for name, p in rss["processes"].items():
        assert 0 < p["first_mb"] <= p["max_mb"], name
        assert p["last_mb"] <= p["max_mb"], name
        assert isinstance(p["slope_mb_per_min"], float), name
        assert isinstance(p["late_slope_mb_per_min"], float), name
    # The replica's current RSS never exceeds its lifetime peak, read after the window.
    assert rss["processes"]["replica-0"]["max_mb"] <= figures["replica_peak_rss_mb"][0]
    rows = timeline.read_text().splitlines()
    assert rows[0] == "t_s,sagas,replica-0_mb,participants_mb"
    assert len(rows) - 1 >= rss["samples"]
    assert "replica-0 RSS slope" in result.stdout


@pytest.mark.kafka
def test_a_short_restore_run_checks_every_state_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "restore.json"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.bench", "--restore", "--restore-states", "3000",
         "--partitions", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    for key in (
        "restore_states_per_s", "restore_seconds", "restore_peak_rss_mb", "restore_store_mb",
        "restore_cpu_s", "restore_block_cache_mb", "restore_write_buffer_mb", "load_average_1m",
    ):  # fmt: skip
        assert key in figures, key
    assert figures["check_passed"] is True
    assert (figures["mode"], figures["n"], figures["partitions"]) == ("restore", 3000, 3)
    # 3,000 final states, 300 earlier versions, 30 doomed sagas and their 30 tombstones.
    assert figures["restore_records"] == figures["restore_records_applied"] == 3360
    assert figures["restore_peak_rss_mb"] > 0
    assert "check: ok" in result.stdout


def test_the_restore_check_finds_a_wrong_a_missing_and_a_resurrected_state() -> None:
    store = MemorySagaStore()
    partitions, n = 3, 200
    for i in range(n):
        state = final_state(i, BASE_MS)
        store.apply(StoreBatch.of([(partition_for(state.saga_id, partitions), state)]))
    assert check_restored(store, partitions, n, BASE_MS) == []

    wrong = dataclasses.replace(final_state(7, BASE_MS), version=99)
    gone = dataclasses.replace(final_state(0, BASE_MS), saga_id="order/bench-gone-0000000")
    missing = final_state(9, BASE_MS).saga_id
    store.apply(StoreBatch.of([(partition_for(wrong.saga_id, partitions), wrong)]))
    store.apply(StoreBatch.of([(0, gone)], [(partition_for(missing, partitions), missing)]))
    problems = "\n".join(check_restored(store, partitions, n, BASE_MS))
    assert "order/bench-0000007" in problems
    assert "order/bench-gone-0000000" in problems
    assert "1 of 200 sagas missing" in problems
    assert "partition 0: due-time index" in problems  # the resurrected saga's timer


def test_bucket_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    # 10 observations <= 1, 10 more in (1, 2], none above.
    buckets = {1.0: 10.0, 2.0: 20.0, 5.0: 20.0, INF: 20.0}
    assert bucket_quantile(0.5, buckets) == pytest.approx(1.0)
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.5)  # from 0 to the first bound
    assert bucket_quantile(0.75, buckets) == pytest.approx(1.5)
    assert bucket_quantile(1.0, buckets) == pytest.approx(2.0)  # not the empty (2, 5] bucket
    # In the +Inf bucket: the largest finite bound is all a histogram can say.
    assert bucket_quantile(0.99, {1.0: 1.0, INF: 10.0}) == 1.0
    assert bucket_quantile(0.5, {1.0: 0.0, INF: 0.0}) is None
    assert bucket_quantile(0.5, {}) is None


def test_histograms_parse_from_a_metrics_page_and_subtract_between_scrapes() -> None:
    registry = CollectorRegistry()
    hist = Histogram("ksaga_commit_seconds", "x", registry=registry, buckets=(0.01, 0.1, 1))
    hist.observe(0.005)
    before = parse_histograms(generate_latest(registry).decode(), ["ksaga_commit_seconds"])
    for value in (0.05, 0.05, 0.5, 0.5):
        hist.observe(value)
    after = parse_histograms(generate_latest(registry).decode(), ["ksaga_commit_seconds"])
    window = after["ksaga_commit_seconds"] - before["ksaga_commit_seconds"]
    assert window.count == 4
    assert window.mean == pytest.approx(0.275)
    assert window.buckets == {0.01: 0.0, 0.1: 2.0, 1.0: 4.0, INF: 4.0}
    assert window.quantile(0.5) == pytest.approx(0.1)
    assert sample_quantile(0.5, [3.0, 1.0, 2.0]) == 2.0
    assert sample_quantile(1.0, [3.0, 1.0, 2.0]) == 3.0
    assert sample_quantile(0.99, []) is None


def test_compare_shows_b_over_a_for_numbers_and_both_values_for_flags() -> None:
    a = {"n": 100, "sagas_per_s": 200.0, "check_passed": True, "mode": "throughput"}
    b = {"n": 100, "sagas_per_s": 300.0, "check_passed": True, "mode": "throughput"}
    rows = {row[0]: row[1:] for row in compare_rows(a, b)}
    assert rows["sagas_per_s"] == ("200", "300", "1.500x")
    assert rows["n"] == ("100", "100", "1.000x")
    assert rows["check_passed"] == ("True", "True", "")
    assert "mode" not in rows
