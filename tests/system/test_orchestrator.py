"""The orchestrator end to end on a real broker: outcomes, restarts, replicas, disk loss, timers.

Every check reads the topics (read_committed): terminal states in ``ksaga.state`` must equal what
the seeded participants decided, no (idempotency key, attempt) may appear twice in the command
topics, and a compensated order releases its stock exactly once.
"""

from __future__ import annotations

import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from connectors.order_participants import Behaviour
from orchestrator.testing.kafka_cluster import wait_for
from tests.system.conftest import System, orders

pytestmark = pytest.mark.kafka

MIXED = Behaviour(seed=7, decline_rate=0.2, flaky_rate=0.1)


def test_sagas_complete_and_compensate_end_to_end(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(MIXED)
    port = free_port()
    system.replica("r1", http_port=port)
    ready = wait_for(lambda: probe(port, "/ready"), 60, "readiness after restore")
    assert ready["ready"] is True
    assert ready["restored_partitions"] == [0, 1, 2, 3]  # one replica owns every partition
    assert ready["restoring_partitions"] == []
    system.start_participants()
    system.publish(orders("e2e", 80))
    system.publish(orders("e2e", 10))  # duplicate triggers: idempotent starts
    system.assert_guarantees()
    outcomes = set(system.wait_all_terminal().values())
    assert outcomes == {"COMPLETED", "COMPENSATED"}  # the mix really happened
    retried = [c for c in system.watch().commands if c.attempt > 1]
    assert retried, "flaky payments were retried"
    assert probe(port, "/live") is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    finished = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ksaga_sagas_finished_total{")
    )
    assert finished == len(system.expected())


def test_a_burst_of_triggers_is_admitted_as_the_inbox_backlog_allows(
    system_factory: Callable[[Behaviour], System],
) -> None:
    """With a tiny backlog limit the gate must close and reopen, and every saga still finish."""
    system = system_factory(Behaviour(seed=11, decline_rate=0.1))
    port = free_port()
    system.replica("r1", http_port=port, max_inbox_backlog=20)
    wait_for(lambda: probe(port, "/ready"), 60, "readiness after restore")
    system.start_participants()
    system.publish(orders("burst", 300))
    system.wait_all_terminal()
    system.assert_guarantees()
    system.assert_log_checks()
    metrics = scrape(port)
    assert metrics["ksaga_trigger_gate_closed_total"] >= 1  # the burst was held back
    assert metrics["ksaga_trigger_gate_holding"] == 0  # and let in: nothing is left waiting


def scrape(port: int) -> dict[str, float]:
    """Unlabelled samples of /metrics by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in lines)
        if not name.startswith("#") and "{" not in name and value
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def probe(port: int, path: str) -> dict[str, Any] | None:
    """The probe's JSON when it answers 200, None otherwise (not up yet, or 503)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (OSError, urllib.error.HTTPError):
        return None


def test_restart_after_sigterm_and_kill_9_loses_nothing_and_repeats_nothing(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(MIXED)
    replica = system.replica("r1")
    system.start_participants()
    system.publish(orders("rs", 150))
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 20, 60, "first sagas")
    assert replica.kill() == -9  # crash at an arbitrary instant
    system.publish(orders("rs", 100, start=150))
    replica = system.replica("r1")  # same identity: fences and aborts its predecessor at once
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 180, 90, "progress")
    assert replica.terminate() == 0  # graceful: finish the transaction, leave the group
    system.publish(orders("rs", 50, start=250))
    system.replica("r1")
    system.assert_guarantees()


def test_replicas_share_partitions_while_one_joins_and_one_leaves(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(MIXED)
    system.replica("r1")
    system.replica("r2")
    system.start_participants()
    system.publish(orders("rb", 120))
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 30, 60, "progress")
    system.replica("r3")
    system.publish(orders("rb", 120, start=120))
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 150, 90, "progress")
    assert system.replicas["r1"].terminate() == 0
    system.publish(orders("rb", 60, start=240))
    system.assert_guarantees()
    logs = [system.replicas[r].log_path.read_text() for r in ("r2", "r3")]
    assert all("partitions assigned" in log and "ksaga.inbox" in log for log in logs)


def test_a_lost_disk_is_rebuilt_from_the_state_topic(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(MIXED)
    replica = system.replica("r1")
    system.start_participants()
    first = orders("dl", 60)
    system.publish(first)
    system.wait_all_terminal()
    sent_before = len(system.watch().commands)
    assert replica.terminate() == 0
    shutil.rmtree(replica.state_dir)  # the pod's disk is gone
    replica = system.replica("r1")
    log = replica.log_path
    wait_for(lambda: "partition restored" in log.read_text(), 60, "restore after disk loss")
    # Repeated triggers of finished orders must be recognised from the rebuilt store: no command.
    system.publish(first)
    system.publish(orders("dl", 40, start=60))
    system.assert_guarantees()
    old = {f"order/{o}" for o in first}
    again = [c for c in system.watch().commands[sent_before:] if c.saga_id in old]
    assert again == []


def test_a_silent_participant_times_out_and_is_retried_across_a_restart(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(Behaviour(seed=3, decline_rate=0.0, silent_rate=0.5))
    replica = system.replica("r1")
    system.start_participants()
    system.publish(orders("tm", 30))
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.commands) >= 30, 30, "first commands")
    assert replica.kill() == -9  # the 5 s timeouts are pending in the store and the topic
    system.replica("r1")
    system.assert_guarantees()
    second = [c for c in observer.commands if c.step == "reserve_stock" and c.attempt == 2]
    assert len(second) >= 5, "silent orders were retried after their timeout"
    assert {c.attempt for c in observer.commands} <= {1, 2}
