"""Shared pytest fixtures: the real Kafka brokers and unique topic names.

``kafka_broker`` (session) is one combined KRaft node, started lazily the first time a test asks
for it; ``kafka_cluster3`` is a three-node static quorum for the fault tests (one per module,
healed before every test). Both are stopped at session or module end whatever the outcome, and
the harness also kills any JVM left if pytest itself dies. The Kafka version, addresses and
startup times are printed in the terminal summary (visible without ``-s``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import pytest

from orchestrator.testing.kafka_cluster import KafkaBroker, KafkaCluster, KRaftCluster

_KAFKA_REPORT = pytest.StashKey[list[str]]()
_topic_counter = itertools.count(1)


def _describe(kind: str, cluster: KRaftCluster) -> str:
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cluster.timings.items())
    return (
        f"{kind}: Apache Kafka {cluster.version} at {cluster.bootstrap_servers}, "
        f"started in {cluster.startup_seconds:.1f} s ({steps}); logs in {cluster.log_dir}"
    )


def _report(config: pytest.Config, line: str) -> None:
    config.stash.setdefault(_KAFKA_REPORT, []).append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_KAFKA_REPORT, [])
    if lines:
        terminalreporter.section("kafka")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_broker(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """One combined KRaft node (RF 1 everywhere) shared by every integration test.

    Two clients, ``alpha`` and ``beta``, may reach it through their own cuttable proxies
    (``broker.proxied.bootstrap("alpha")``), for the connection-cut tests.
    """
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-broker"), proxied=("alpha", "beta"))
    with broker:  # stops it even if a test or the start itself fails
        _report(pytestconfig, _describe("single broker", broker))
        yield broker


@pytest.fixture(scope="module")
def _kafka_cluster3_module(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster3"))
    with cluster:
        _report(pytestconfig, _describe("three-node cluster", cluster))
        yield cluster


@pytest.fixture
def kafka_cluster3(_kafka_cluster3_module: KafkaCluster) -> KafkaCluster:
    """Three combined KRaft nodes (RF 3 / min ISR 2), every node up when the test begins."""
    _kafka_cluster3_module.heal()
    return _kafka_cluster3_module


@pytest.fixture
def kafka_report(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Add a line to the "kafka" section of the terminal summary (measurements, error codes)."""

    def report(line: str) -> None:
        print(line)
        _report(pytestconfig, line)

    return report


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Return a factory of topic names unique in the session, readable in broker logs.

    No dots: Kafka refuses a topic whose name equals another's with ``.`` swapped for ``_``.
    """
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")[:120]

    def make(role: str = "t") -> str:
        return f"{base}-{role}-{next(_topic_counter)}"

    return make
