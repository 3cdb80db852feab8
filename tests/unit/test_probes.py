"""The probe endpoints a Kubernetes kubelet polls: readiness after restore, liveness by heartbeat.

Against the real HTTP server of ``orchestrator.probes`` and a small stand-in for the loop (the
probes read only its heartbeat and partition sets).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from orchestrator import clock
from orchestrator.config import load_settings
from orchestrator.errors import ConfigError
from orchestrator.probes import start_probe_server
from orchestrator.testing.kafka_cluster import free_ports
from orchestrator.testing.readiness import assigned_partitions, read_ready


@dataclass
class Loop:
    heartbeat: float = field(default_factory=clock.monotonic)
    assigned: set[tuple[str, int]] = field(default_factory=set)
    pending_restore: set[int] = field(default_factory=set)
    active: set[int] = field(default_factory=set)

    @property
    def ready(self) -> bool:
        return bool(self.assigned) and not self.pending_restore


@pytest.fixture
def served() -> Iterator[tuple[Loop, int]]:
    loop = Loop()
    (port,) = free_ports(1)
    server = start_probe_server(port, loop, CollectorRegistry(), stale_after_s=30)
    try:
        yield loop, port
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ready_only_when_every_owned_partition_is_restored(served: tuple[Loop, int]) -> None:
    loop, port = served
    assert get(port, "/ready")[0] == 503  # nothing assigned yet
    loop.assigned = {("ksaga.inbox", 0), ("ksaga.inbox", 1), ("orders", 0)}
    loop.pending_restore = {0, 1}
    status, body = get(port, "/ready")
    assert (status, body["restoring_partitions"]) == (503, [0, 1])
    loop.pending_restore, loop.active = {1}, {0}
    assert get(port, "/ready")[0] == 503
    loop.pending_restore, loop.active = set(), {0, 1}
    status, body = get(port, "/ready")
    assert (status, body["restored_partitions"], body["restoring_partitions"]) == (200, [0, 1], [])


def test_the_harness_reads_both_ready_answers_and_silence(served: tuple[Loop, int]) -> None:
    """``read_ready`` (ksaga local, the pods test) against the same server."""
    loop, port = served
    loop.assigned = {("ksaga.inbox", 3), ("ksaga.inbox", 0), ("orders", 5)}
    loop.pending_restore = {3}
    answer = read_ready(port)
    assert answer is not None
    status, body = answer
    assert (status, body["restoring_partitions"]) == (503, [3])
    assert assigned_partitions(body["assigned"], "ksaga.inbox") == [0, 3]
    loop.pending_restore, loop.active = set(), {0, 3}
    answer = read_ready(port)
    assert answer is not None
    assert (answer[0], answer[1]["restored_partitions"]) == (200, [0, 3])
    (silent,) = free_ports(1)
    assert read_ready(silent) is None


def test_live_while_the_heartbeat_is_recent(served: tuple[Loop, int]) -> None:
    loop, port = served
    assert get(port, "/live")[0] == 200
    loop.heartbeat = clock.monotonic() - 31  # stale_after_s=30: the loop is stuck
    status, body = get(port, "/live")
    assert status == 503
    assert body["loop_age_s"] >= 31
    loop.heartbeat = clock.monotonic()
    assert get(port, "/live")[0] == 200


def test_a_liveness_timeout_shorter_than_a_legitimate_wait_is_refused() -> None:
    # A restore may wait transaction timeout + 30 s for a previous owner's transaction.
    with pytest.raises(ConfigError, match=r"KSAGA_LIVENESS_TIMEOUT_S: .*must exceed.* 40 s"):
        load_settings(
            bootstrap_servers="k:9092", transaction_timeout_ms=10_000, liveness_timeout_s=40
        )
    ok = load_settings(
        bootstrap_servers="k:9092", transaction_timeout_ms=10_000, liveness_timeout_s=41
    )
    assert ok.previous_owner_wait_s == 40
