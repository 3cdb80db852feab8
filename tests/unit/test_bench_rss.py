"""The RSS timeline of ``ksaga bench --rate``: the summary math, the CSV and the sampler.

No broker: the samples are synthetic, and the sampler samples this test process.
"""

from __future__ import annotations

import csv
import math
import os
import threading
from pathlib import Path

import pytest

from orchestrator.bench.report import result_table, rss_rows
from orchestrator.bench.rss import RssSample, RssSampler, rss_mb, summarise, warmup_for, write_csv


def timeline(
    mb_at: dict[str, list[float]], step_s: float = 5.0, per_s: float = 150.0
) -> list[RssSample]:
    """One sample every ``step_s`` at a constant ``per_s`` sagas/s."""
    n = len(next(iter(mb_at.values())))
    return [
        RssSample(i * step_s, i * step_s * per_s, {k: v[i] for k, v in mb_at.items()})
        for i in range(n)
    ]


def test_a_steady_leak_gives_its_slope_per_minute_and_per_100k_sagas() -> None:
    # 241 samples over 20 minutes; the replica grows 0.5 MiB per minute from 100 MiB.
    replica = [100 + 0.5 * (i * 5 / 60) for i in range(241)]
    summary = summarise(timeline({"replica-0": replica, "participants": [60.0] * 241}))
    assert summary["warmup_s"] == 60.0
    assert summary["samples"] == 241 - 12  # samples at 0..55 s are the warm-up
    assert summary["minutes"] == 19.0
    assert summary["sagas"] == 19 * 60 * 150
    leak = summary["processes"]["replica-0"]
    assert leak["slope_mb_per_min"] == pytest.approx(0.5)
    assert leak["late_slope_mb_per_min"] == pytest.approx(0.5)  # a leak does not slow down
    # 0.5 MiB per minute at 9,000 sagas per minute.
    assert leak["mb_per_100k_sagas"] == pytest.approx(0.5 / 9_000 * 100_000, abs=0.01)
    assert (leak["first_mb"], leak["last_mb"], leak["max_mb"]) == (100.5, 110.0, 110.0)
    flat = summary["processes"]["participants"]
    assert flat["slope_mb_per_min"] == 0.0
    assert flat["mb_per_100k_sagas"] == 0.0


def test_the_warm_up_ramp_is_left_out_so_a_plateau_is_flat() -> None:
    # +40 MiB in the first minute (arenas, memtables fill), then flat with +-1 MiB noise.
    replica = [80 + 40 * min(1.0, i / 12) + (1 if i % 2 else -1) for i in range(121)]
    summary = summarise(timeline({"replica-0": replica}))
    p = summary["processes"]["replica-0"]
    assert abs(p["slope_mb_per_min"]) < 0.05
    assert p["max_mb"] == 121.0
    assert p["first_mb"] == 119.0  # the sample at 60 s, not the 79 MiB at start-up
    with_ramp = summarise(timeline({"replica-0": replica}), warmup_s=0)
    assert with_ramp["processes"]["replica-0"]["slope_mb_per_min"] > 1
    assert with_ramp["samples"] == 121


def test_a_cache_filling_up_slows_down_in_the_second_half() -> None:
    # 64 MiB filling with a 5-minute time constant, sampled for 20 minutes.
    replica = [100 + 64 * (1 - math.exp(-(i * 5 / 60) / 5)) for i in range(241)]
    p = summarise(timeline({"replica-0": replica}))["processes"]["replica-0"]
    assert p["slope_mb_per_min"] > 1.5
    assert 0 < p["late_slope_mb_per_min"] < p["slope_mb_per_min"] / 3
    assert p["max_mb"] == p["last_mb"] < 164


def test_short_windows_warm_up_for_half_and_too_few_points_give_no_slope() -> None:
    assert warmup_for(1200) == 60
    assert warmup_for(30) == 15
    short = summarise(timeline({"replica-0": [70.0, 71.0, 72.0, 73.0, 74.0]}, step_s=1))
    assert short["warmup_s"] == 2.0
    assert short["processes"]["replica-0"]["slope_mb_per_min"] == pytest.approx(60.0)
    one = summarise([RssSample(0.0, 20, {"replica-0": 70.0})])
    assert one["processes"]["replica-0"]["slope_mb_per_min"] is None
    assert one["processes"]["replica-0"]["mb_per_100k_sagas"] is None
    idle = summarise([RssSample(t, 20, {"replica-0": 70.0}) for t in (0.0, 5.0, 10.0)], 0)
    assert idle["processes"]["replica-0"]["slope_mb_per_min"] == 0.0
    assert idle["processes"]["replica-0"]["mb_per_100k_sagas"] is None  # no saga finished
    assert summarise([])["processes"] == {}


def test_the_csv_holds_one_row_per_sample_and_a_column_per_process(tmp_path: Path) -> None:
    samples = timeline({"replica-0": [70.0, 70.25], "participants": [60.0, 61.0]})
    path = tmp_path / "rss.csv"
    write_csv(samples, path)
    rows = list(csv.reader(path.open()))
    assert rows == [
        ["t_s", "sagas", "replica-0_mb", "participants_mb"],
        ["0.0", "0", "70.0", "60.0"],
        ["5.0", "750", "70.2", "61.0"],
    ]


def test_the_sampler_reads_a_live_process_and_skips_a_failed_scrape() -> None:
    assert 1 < rss_mb(os.getpid()) < 100_000
    calls: list[int] = []
    enough = threading.Event()

    def sagas() -> float:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("replica busy")  # this sample is skipped
        if len(calls) >= 4:
            enough.set()
        return float(len(calls))

    sampler = RssSampler({"me": os.getpid()}, sagas, interval_s=0.01).start()
    assert enough.wait(30)
    samples = sampler.stop()
    assert [s.sagas for s in samples[:2]] == [1.0, 3.0]
    assert all(s.mb["me"] > 1 for s in samples)
    assert [s.t_s for s in samples] == sorted(s.t_s for s in samples)
    with pytest.raises(FileNotFoundError):
        rss_mb(2**22 + 12_345)  # above the kernel's pid_max: never a process


def test_the_table_shows_the_window_and_each_process() -> None:
    summary = summarise(timeline({"replica-0": [100.0 + i for i in range(30)]}))
    rows = dict(rss_rows({"interval_s": 5.0, **summary}))
    window = "RSS sampled every 5 s after 60 s warm-up"
    assert rows[window] == "18 samples, 1.4 min, 12,750 sagas"
    assert rows["  replica-0 RSS first/last/max (MiB)"] == "112.0 / 129.0 / 129.0"
    slopes = rows["  replica-0 RSS slope MiB/min, 2nd half; /100k sagas"]
    assert slopes == "+12.000 / +12.000 / +133.330"
    table = result_table({"replica_peak_rss_mb": [129.0], "rss": {"interval_s": 5.0, **summary}})
    assert table.row_count == 1 + 1 + 2
