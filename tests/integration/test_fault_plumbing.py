"""Fault-injection plumbing on the real broker.

A client bootstrapped through its proxied listener stays behind its proxy: cutting the proxy
partitions that client (and only it) from the broker, and restoring it heals the link. The
transaction coordinator the chaos nemesis kills is the one the broker really uses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from orchestrator.testing.coordinators import (
    TRANSACTION_STATE,
    group_coordinator,
    transaction_coordinator,
    transaction_partition,
)
from orchestrator.testing.kafka_cluster import KafkaBroker

pytestmark = pytest.mark.kafka


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "message.timeout.ms": 5_000,
            "socket.connection.setup.timeout.ms": 1_000,
            "reconnect.backoff.max.ms": 500,
        }
    )


def _produce(producer: Producer, topic: str, value: bytes) -> KafkaError | None:
    """Produce one record; the delivery error, or None when it landed."""
    outcome: list[KafkaError | None] = []
    producer.produce(
        topic,
        value,
        on_delivery=lambda err, _msg: outcome.append(err),
    )
    producer.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def _values(broker: KafkaBroker, topic: str, expect: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(100):
            msg = consumer.poll(0.2)
            value = msg.value() if msg is not None and msg.error() is None else None
            if value is not None:
                got.append(value)
            if len(got) >= expect:
                break
    finally:
        consumer.close()
    return got


def test_cutting_one_clients_proxy_partitions_only_that_client(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    topic = kafka_broker.create_topic(unique_topic("cut"))
    alpha = kafka_broker.proxied.bootstrap("alpha")
    beta = kafka_broker.proxied.bootstrap("beta")
    assert kafka_broker.bootstrap_servers not in (alpha, beta)

    # One producer per client for the whole test: its open connections are what gets cut.
    alpha_producer, beta_producer = _producer(alpha), _producer(beta)
    assert _produce(alpha_producer, topic, b"alpha-before") is None
    kafka_broker.proxied.cut("alpha")
    try:
        assert kafka_broker.proxied.is_cut("alpha")
        cut_off = _produce(alpha_producer, topic, b"alpha-while-cut")
        assert cut_off is not None
        assert cut_off.code() == KafkaError._MSG_TIMED_OUT
        assert _produce(beta_producer, topic, b"beta-while-alpha-cut") is None
    finally:
        kafka_broker.proxied.restore("alpha")
    assert _produce(alpha_producer, topic, b"alpha-after") is None

    assert sorted(_values(kafka_broker, topic, 3)) == [
        b"alpha-after",
        b"alpha-before",
        b"beta-while-alpha-cut",
    ]


def test_transaction_coordinator_formula_matches_the_brokers_own_assignment(
    kafka_broker: KafkaBroker,
) -> None:
    """The broker logs the __transaction_state partition of every id it initialises."""
    txn_id = "ksaga-coordinator-probe"
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers,
                         "transactional.id": txn_id})  # fmt: skip
    producer.init_transactions(30)
    partitions = len(
        kafka_broker.admin().list_topics(TRANSACTION_STATE, timeout=10).topics[TRANSACTION_STATE]
        .partitions
    )  # fmt: skip
    want = f"Initialized transactionalId {txn_id} with"
    lines = [
        line
        for line in kafka_broker.nodes[0].server_log.read_text(errors="replace").splitlines()
        if want in line
    ]
    assert lines, f"no broker log line for {txn_id}"
    assert lines[-1].endswith(
        f"on partition {TRANSACTION_STATE}-{transaction_partition(txn_id, partitions)}"
        " (kafka.coordinator.transaction.TransactionCoordinator)"
    )
    assert transaction_coordinator(kafka_broker.admin(), txn_id) == 1
    assert group_coordinator(kafka_broker.admin(), "ksaga-warm-up") == 1
