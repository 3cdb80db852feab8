"""KIP-848 (``KSAGA_GROUP_PROTOCOL=consumer``): replicas share the inbox *and* the trigger topics.

With the classic cooperative-sticky assignor two replicas of a 4+4-partition system end up
one with all of ``ksaga.inbox`` and the other with all of ``orders`` (it balances the count
over both topics, measured): one replica folds every saga while the other only routes. The
broker's range assignor gives each replica the same partition numbers of every topic. Same
guarantees, including a replica killed mid-run, whose partitions the survivor takes over.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.order_participants import Behaviour
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from orchestrator.testing.system import ReplicaProcess, create_all_topics
from tests.system.conftest import PARTITIONS, System, orders

pytestmark = pytest.mark.kafka

# The session timeout and heartbeat are the broker's under KIP-848; the defaults (45 s, 5 s)
# would make a takeover after kill -9 take most of a minute.
BROKER = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "1000",
}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    broker = KafkaBroker(tmp_path / "kafka", extra_config=BROKER).start()
    create_all_topics(broker.bootstrap_servers, PARTITIONS)
    made = System(broker, tmp_path / "ksaga", Behaviour(seed=3, decline_rate=0.2))
    yield made
    made.stop()
    broker.stop()


def owned(replica: ReplicaProcess) -> dict[str, set[int]]:
    """What the replica owns now, from its own log of assignments, revocations and losses."""
    mine: dict[str, set[int]] = {}
    for line in replica.log_path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        event = entry.get("event")
        if event not in ("partitions assigned", "partitions revoked", "partitions lost"):
            continue
        for name in entry["partitions"]:
            topic, partition = name[:-1].split("[")
            held = mine.setdefault(topic, set())
            if event == "partitions assigned":
                held.add(int(partition))
            else:
                held.discard(int(partition))
    return mine


def test_two_replicas_each_own_the_same_numbers_of_inbox_and_trigger_partitions(
    system: System,
) -> None:
    r1 = system.replica("r1", group_protocol="consumer")
    r2 = system.replica("r2", group_protocol="consumer")
    system.start_participants()
    system.publish(orders("kp", 120))

    def co_partitioned() -> bool:
        a, b = owned(r1), owned(r2)
        return (
            len(a.get("ksaga.inbox", ())) == len(b.get("ksaga.inbox", ())) == PARTITIONS // 2
            and a.get("ksaga.inbox") == a.get("orders")
            and b.get("ksaga.inbox") == b.get("orders")
        )

    wait_for(co_partitioned, 60, "each replica to own half of both topics, the same numbers")
    system.assert_guarantees()

    r1.signal(signal.SIGKILL)  # the survivor takes every partition over and finishes the rest
    system.publish(orders("kp", 60, start=120))
    wait_for(lambda: owned(r2).get("ksaga.inbox") == set(range(PARTITIONS)), 60, "takeover")
    system.assert_guarantees()
    assert owned(r2)["orders"] == set(range(PARTITIONS))
