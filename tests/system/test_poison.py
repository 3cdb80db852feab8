"""Bad input never stops the loop: each poison lands in the DLQ with its reason, sagas go on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from connectors.order_participants import Behaviour
from orchestrator.partitioning import partition_for
from orchestrator.testing.kafka_cluster import wait_for
from schemas.codec import RecordType, default_catalog
from tests.system.conftest import PARTITIONS, System, orders

pytestmark = pytest.mark.kafka


def reply(saga_id: str, step: str) -> bytes:
    return default_catalog().encode(
        RecordType.REPLY,
        {"saga_id": saga_id, "step": step, "action": "DO", "attempt": 1,
         "outcome": "SUCCEEDED", "payload": b"{}", "replied_ms": 1},
    )  # fmt: skip


def test_each_bad_input_is_dead_lettered_with_its_reason_and_good_sagas_complete(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(Behaviour(seed=1, decline_rate=0.2))
    system.replica("r1")
    system.start_participants()
    system.publish(orders("ok", 30))
    system.wait_all_terminal()

    known = "order/ok-00001"
    stranger = "order/nobody"
    start_unknown_type = default_catalog().encode(
        RecordType.START_SAGA,
        {"saga_id": "x/1", "saga_type": "no-such-saga", "data": b"{}", "trigger_topic": "t",
         "trigger_partition": 0, "trigger_offset": 0, "triggered_ms": 1},
    )  # fmt: skip
    wrong = (partition_for(known, PARTITIONS) + 1) % PARTITIONS
    poison = [
        ("ksaga.inbox", 0, b"\x00\x01 not avro at all", "bad-marker"),
        ("ksaga.inbox", partition_for(stranger, PARTITIONS), reply(stranger, "reserve_stock"),
         "unknown-saga"),
        ("ksaga.inbox", partition_for("x/1", PARTITIONS), start_unknown_type, "unknown-saga-type"),
        ("ksaga.inbox", partition_for(known, PARTITIONS), reply(known, "teleport"), "unknown-step"),
        ("ksaga.inbox", wrong, reply(known, "reserve_stock"), "wrong-partition"),
        ("orders", 0, b'{"order_id": 42}', "bad-trigger"),
    ]  # fmt: skip
    producer = Producer({"bootstrap.servers": system.bootstrap})
    for topic, partition, value, _ in poison:
        producer.produce(topic, partition=partition, key=b"poison", value=value)
    assert producer.flush(10) == 0
    system.publish(orders("ok", 30, start=30))  # the loop must keep going after the poison

    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.dead_letters) >= len(poison), 60, "dlq")
    system.assert_guarantees(poison=dict(Counter(r for *_, r in poison)))
    reasons = sorted(d["ksaga.dlq.reason"] for d in observer.dead_letters)
    assert reasons == sorted(r for *_, r in poison)
    for letter in observer.dead_letters:
        assert letter["ksaga.dlq.source_topic"] in {"ksaga.inbox", "orders"}
        assert int(letter["ksaga.dlq.source_offset"]) >= 0
        assert letter["ksaga.dlq.error_class"]
    log = system.replicas["r1"].log_path.read_text()
    assert log.count('"event": "dead-lettered"') == len(poison)
