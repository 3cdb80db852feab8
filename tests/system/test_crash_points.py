"""kill -9 at the exact crash points of exactly-once.md, then restart: the guarantees hold.

Each replica run with ``KSAGA_CRASH_AT=<point>:<n>`` SIGKILLs itself the n-th time it passes the
point (``orchestrator/crashpoints.py``); the restarted replica (same identity) must lose no saga,
emit no (idempotency key, attempt) twice and compensate exactly what the participants decided.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from connectors.order_participants import Behaviour
from orchestrator.app import EXIT_FATAL
from orchestrator.testing.kafka_cluster import wait_for
from tests.system.conftest import System, orders

pytestmark = pytest.mark.kafka

MIXED = Behaviour(seed=11, decline_rate=0.25, flaky_rate=0.15)


@pytest.mark.parametrize(
    "point",
    [
        "after-produce",  # K2: records produced, offsets not sent: aborted, invisible, redone
        "after-send-offsets",  # K3: the restart fences and aborts the open transaction
        "after-commit",  # K5: committed but not in RocksDB: restore catches the store up
    ],
)
def test_a_crash_inside_the_batch_cycle_loses_and_repeats_nothing(
    system_factory: Callable[[Behaviour], System], point: str
) -> None:
    system = system_factory(MIXED)
    crashing = system.replica("r1", crash_at=f"{point}:6")
    system.start_participants()
    system.publish(orders("cp", 80))
    assert crashing.wait(120) == -9, f"the replica did not crash at {point}\n{crashing.tail()}"
    system.replica("r1")
    system.assert_guarantees()


def test_a_crash_during_restore_resumes_from_the_chunk_checkpoint(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(MIXED)
    replica = system.replica("r1")
    system.start_participants()
    first = orders("rc", 60)
    system.publish(first)
    system.wait_all_terminal()
    assert replica.terminate() == 0
    shutil.rmtree(replica.state_dir)
    crashing = system.replica("r1", crash_at="during-restore:1")
    assert crashing.wait(60) == -9, crashing.tail()
    replica = system.replica("r1")
    wait_for(lambda: "partition restored" in replica.log_path.read_text(), 60, "restore")
    sent = len(system.watch().commands)
    system.publish(first)  # repeated triggers: recognised from the restored store
    system.publish(orders("rc", 30, start=60))
    system.assert_guarantees()
    old = {f"order/{o}" for o in first}
    assert [c for c in system.watch().commands[sent:] if c.saga_id in old] == []


def test_a_zombie_replica_that_wakes_up_cannot_commit_what_it_no_longer_owns(
    system_factory: Callable[[Behaviour], System],
) -> None:
    """K13: SIGSTOP a replica past its session timeout while another takes over, then wake it."""
    system = system_factory(MIXED)
    zombie = system.replica("r1")
    system.replica("r2")
    system.start_participants()
    system.publish(orders("zb", 100))
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 20, 60, "progress")
    zombie.signal(signal.SIGSTOP)
    system.publish(orders("zb", 100, start=100))  # r2 must take r1's partitions over
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 120, 90, "takeover")
    zombie.signal(signal.SIGCONT)  # it wakes mid-whatever and tries to carry on
    system.publish(orders("zb", 50, start=200))
    system.assert_guarantees()
    assert zombie.running(), "a fenced or expelled replica rejoins; it must not have crashed"


def test_a_loop_stalled_inside_a_transaction_is_ended_by_its_watchdog(
    system_factory: Callable[[Behaviour], System],
) -> None:
    """The chaos suite's finding: librdkafka's send_offsets_to_transaction can block past its
    timeout after a network cut, and the stuck replica then stalls the whole group. With
    ``KSAGA_STALL_AT`` the loop blocks forever at that very call; the watchdog must end the
    process with EXIT_FATAL (a crash), and the restarted replica must finish every saga."""
    system = system_factory(MIXED)
    stalled = system.replica(
        "r1",
        stall_at="after-send-offsets:4",
        transaction_timeout_ms=2_000,  # so the liveness limit may be as low as 33 s
        liveness_timeout_s=33,
    )
    system.start_participants()
    system.publish(orders("st", 60))
    assert stalled.wait(120) == EXIT_FATAL, stalled.tail()
    assert "loop stalled; exiting for a restart" in stalled.log_path.read_text()
    system.replica("r1")
    system.assert_guarantees()


def test_a_fenced_replica_rejoins_with_new_clients_and_loses_nothing(
    system_factory: Callable[[Behaviour], System],
) -> None:
    """A newer producer with the replica's transactional.id fences it mid-run (what a second pod
    with the same name, or a transaction outliving its timeout, does). The fatal error must not
    end the process: it closes its clients, rejoins with new ones and finishes every saga."""
    system = system_factory(MIXED)
    replica = system.replica("r1")
    system.start_participants()
    system.publish(orders("fe", 60))
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 10, 60, "progress")
    usurper = Producer(
        {"bootstrap.servers": system.bootstrap, "transactional.id": "ksaga-orchestrator-r1"}
    )
    usurper.init_transactions(30)  # bumps the epoch: r1's producer is fenced from here on
    system.publish(orders("fe", 40, start=60))  # so r1 has transactions to try
    wait_for(lambda: "rejoining with new clients" in replica.log_path.read_text(), 60, "the rejoin")
    system.assert_guarantees()
    assert replica.running(), replica.tail()
