"""Seeded chaos runs, judged by the log checker: every saga terminal and exactly as the log folds.

Two bounded runs for CI (``orchestrator/testing/chaos.py``): one on a single broker with every
process fault (kill -9, exact crash points, SIGSTOP zombies, lost disks, a participants crash),
one on the three-node cluster adding broker kill -9. Each starts its own broker(s) in a fresh
work dir and stops everything it started. A failure prints the checker's evidence and keeps the
logs. The same seed gives the same fault plan and publication sequence (checked without Kafka).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.testing.chaos import (
    ChaosConfig,
    ChaosResult,
    plan_faults,
    plan_workload,
    run_chaos,
)

SINGLE = ChaosConfig(
    seed=1, duration_s=60.0, sagas=360, rate=6.0, replicas=2, partitions=4, cluster="single",
    fault_interval_s=5.0, quiesce_timeout_s=120.0,
)  # fmt: skip
THREE = replace(SINGLE, seed=2, cluster="three")


def evidence(result: ChaosResult, lines: list[str]) -> str:
    tail = "\n".join(lines[-80:])
    return (
        f"{result.summary()}\nharness errors: {result.errors}\nwork dir: {result.workdir}\n{tail}"
    )


def run(config: ChaosConfig) -> tuple[ChaosResult, list[str]]:
    lines: list[str] = []

    def echo(line: str) -> None:
        print(line)
        lines.append(line)

    return run_chaos(config, echo=echo), lines


def test_the_plan_and_the_workload_are_pure_functions_of_the_seed(tmp_path: Path) -> None:
    config = replace(SINGLE, workdir=tmp_path)
    assert plan_faults(config) == plan_faults(replace(SINGLE))
    assert plan_faults(config) != plan_faults(replace(SINGLE, seed=3))
    sequence = plan_workload(config)
    assert sequence == plan_workload(replace(SINGLE))
    assert sorted(set(sequence)) == [f"chaos-1-{i:05d}" for i in range(360)]
    assert len(sequence) > 360  # some triggers are published twice
    kinds = Counter(f.kind for f in plan_faults(config))
    assert "broker-kill9" not in kinds
    assert len(kinds) >= 4, kinds


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(360)
def test_chaos_on_a_single_broker(tmp_path: Path) -> None:
    result, lines = run(replace(SINGLE, workdir=tmp_path / "chaos"))
    assert result.report is not None, evidence(result, lines)
    assert result.report.passed, evidence(result, lines)
    assert result.quiesced, evidence(result, lines)
    assert lines[-1].startswith("verdict: PASS"), evidence(result, lines)
    assert sum(result.faults.values()) >= 6, evidence(result, lines)
    assert len(result.faults) >= 4, evidence(result, lines)


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(360)
def test_chaos_on_three_nodes_with_broker_crashes(tmp_path: Path) -> None:
    result, lines = run(replace(THREE, workdir=tmp_path / "chaos"))
    assert result.report is not None, evidence(result, lines)
    assert result.report.passed, evidence(result, lines)
    assert result.quiesced, evidence(result, lines)
    assert lines[-1].startswith("verdict: PASS"), evidence(result, lines)
    assert result.faults.get("broker-kill9", 0) >= 1, evidence(result, lines)
    assert sum(result.faults.values()) >= 6, evidence(result, lines)
    assert len(result.faults) >= 4, evidence(result, lines)
