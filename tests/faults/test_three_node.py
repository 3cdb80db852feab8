"""Crash the partition leader under a transactional stream: nothing lost, nothing doubled.

On a three-node KRaft cluster (RF 3, min ISR 2) a transactional producer with ``acks=all``
writes sequence numbers 0..N-1 in many small transactions, handling librdkafka's error classes
the way ``exactly-once.md`` prescribes (retriable: call again; txn_requires_abort: abort and
send the batch again; fatal: fail). Mid-stream the partition leader is killed with SIGKILL and
restarted after the stream ends. A read_committed consumer must then see every number once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from orchestrator.kafka import produce_when_room
from orchestrator.testing.kafka_cluster import KafkaCluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

N = 3000
BATCH = 25
KILL_AT = N // 3
CALL_DEADLINE_S = 120.0
T = TypeVar("T")


def retrying(call: Callable[[], T], what: str) -> T:
    """Call again while librdkafka says the error is retriable; anything else propagates."""
    deadline = time.monotonic() + CALL_DEADLINE_S
    while True:
        try:
            return call()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal():
                pytest.fail(f"{what}: fatal {error.name()}: {error.str()}")
            if not error.retriable() or time.monotonic() > deadline:
                raise


def produce(producer: Producer, topic: str, seq: int) -> None:
    produce_when_room(producer, topic, poll_s=0.1, key=b"seq", value=str(seq).encode(), partition=0)


def read_committed_values(cluster: KafkaCluster, topic: str, isolation: str) -> list[int]:
    reader = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": f"{topic}-reader",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    tp = TopicPartition(topic, 0)
    end = reader.get_watermark_offsets(tp, 30.0, cached=False)[1]
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[int] = []

    def at_end() -> bool:
        for msg in reader.consume(1000, 0.2):
            if msg.error():
                raise KafkaException(msg.error())
            values.append(int(msg.value() or b"-1"))
        return reader.position([tp])[0].offset >= end

    try:
        wait_for(at_end, 60.0, f"{isolation} reader to reach offset {end} of {topic}", interval=0)
    finally:
        reader.close()
    return values


@pytest.mark.timeout(300)
def test_leader_kill_mid_stream_loses_and_duplicates_nothing(
    kafka_cluster3: KafkaCluster,
    unique_topic: Callable[[str], str],
    kafka_report: Callable[[str], None],
) -> None:
    cluster = kafka_cluster3
    topic = cluster.create_topic(
        unique_topic("seq"), replication_factor=3, config={"min.insync.replicas": "2"}
    )
    assert len(cluster.partition(topic).isrs) == 3
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "transactional.id": unique_topic("txn"),
            "transaction.timeout.ms": 30_000,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    retrying(lambda: producer.init_transactions(30.0), "init_transactions")

    killed: int | None = None
    killed_at = 0.0
    first_commit_after_kill = 0.0
    aborts: list[str] = []
    started = time.monotonic()
    for start in range(0, N, BATCH):
        if killed is None and start >= KILL_AT:
            killed = cluster.leader_of(topic)
            cluster.kill_node(killed)
            killed_at = time.monotonic()
        while True:
            try:
                producer.begin_transaction()
                for seq in range(start, min(start + BATCH, N)):
                    produce(producer, topic, seq)
                retrying(lambda: producer.commit_transaction(30.0), "commit_transaction")
                break
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.txn_requires_abort():
                    raise
                aborts.append(error.name())
                retrying(lambda: producer.abort_transaction(30.0), "abort_transaction")
        if killed is not None and not first_commit_after_kill:
            first_commit_after_kill = time.monotonic()
    streamed = time.monotonic() - started
    assert killed is not None

    new_leader = cluster.leader_of(topic, not_=killed)
    failover = first_commit_after_kill - killed_at
    cluster.restart_node(killed)
    back = wait_for(
        lambda: len(cluster.partition(topic).isrs) == 3,
        60.0,
        f"node {killed} to rejoin the ISR of {topic}",
        ignore=(KafkaException,),
    )
    assert back
    rejoined = time.monotonic() - killed_at

    committed = read_committed_values(cluster, topic, "read_committed")
    raw = read_committed_values(cluster, topic, "read_uncommitted")
    kafka_report(
        f"leader failover: killed node {killed} (leader of {topic}-0) at seq {KILL_AT}; "
        f"new leader {new_leader}; first commit after the kill {failover:.1f} s later; "
        f"{N} records in {N // BATCH} transactions took {streamed:.1f} s; "
        f"{len(aborts)} aborted attempts {sorted(set(aborts))}; "
        f"{len(raw) - N} records of aborted transactions in the log; "
        f"killed node back in the ISR {rejoined:.1f} s after the kill"
    )
    assert len(committed) == N, f"{len(committed)} committed records, expected {N}"
    assert sorted(committed) == list(range(N))  # no loss, no duplicates
    assert committed == list(range(N))  # one partition, one producer: in order too
