"""The ceiling of ``ksaga bench --ceiling``: a bare confluent-kafka transactional copier.

It does what the orchestrator's loop does minus everything ksaga adds (decoding, the fold,
RocksDB, timers, encoding): consume a batch of up to ``batch_max_records`` (the orchestrator's
default, 500) with read_committed, produce ``fanout`` records per input record (the
orchestrator's measured records out per record in), ``send_offsets_to_transaction``, commit.
The producer and consumer settings mirror ``orchestrator/kafka.py`` (idempotent, acks=all,
linger.ms=2, read_committed, cooperative-sticky). Its records/s (in + out) is the most a single
Python process with this client, this broker and this machine can move through transactions;
``ceiling_ratio`` is the orchestrator's share of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from orchestrator import clock
from orchestrator.kafka import poll_batch, produce_when_room
from orchestrator.testing.kafka_cluster import wait_for

__all__ = ["CopierResult", "run_copier"]


@dataclass(frozen=True)
class CopierResult:
    records_in: int
    records_out: int
    seconds: float
    transactions: int

    @property
    def records_per_s(self) -> float:
        return (self.records_in + self.records_out) / self.seconds if self.seconds > 0 else 0.0


def _create(bootstrap: str, topics: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    for future in futures.values():
        try:
            future.result(30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    wait_for(
        lambda: all(t in admin.list_topics(timeout=10).topics for t in topics),
        30,
        f"topics {topics}",
    )


def prefill(bootstrap: str, topic: str, records: int, value_size: int) -> None:
    """``records`` records of ``value_size`` bytes, keyed over many keys, committed and flushed."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    value = b"x" * value_size
    for i in range(records):
        produce_when_room(producer, topic, poll_s=0.05, key=f"k-{i:08d}".encode(), value=value)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the copier's input was not delivered within 60 s")


def run_copier(
    bootstrap: str,
    *,
    partitions: int,
    records: int,
    fanout: int,
    value_size: int = 200,
    batch_max_records: int = 500,
    batch_max_ms: int = 20,
    batch_linger_ms: int = 0,
    timeout_s: float = 600.0,
    topic_prefix: str = "bench.copier.",
) -> CopierResult:
    """Pre-fill ``<prefix>in`` with ``records`` records, then time copying them transactionally.

    The clock starts when the first batch arrives (after the group assignment) and stops after
    the commit that covers the last input record.
    """
    source, sink = f"{topic_prefix}in", f"{topic_prefix}out"
    _create(bootstrap, [source, sink], partitions)
    prefill(bootstrap, source, records, value_size)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic_prefix}group-{os.getpid()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"{topic_prefix}tx-{os.getpid()}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([source])
    copied = produced = transactions = 0
    began: float | None = None
    deadline = clock.monotonic() + timeout_s
    try:
        while copied < records:
            if clock.monotonic() > deadline:
                raise TimeoutError(f"the copier copied {copied}/{records} in {timeout_s:g} s")
            batch = poll_batch(
                consumer, batch_max_records, batch_max_ms / 1000, batch_linger_ms / 1000
            )
            batch = [m for m in batch if m.error() is None]
            if not batch:
                continue
            if began is None:
                began = clock.monotonic()
            producer.begin_transaction()
            for msg in batch:
                for _ in range(fanout):
                    produce_when_room(producer, sink, poll_s=0.01, key=msg.key(), value=msg.value())
            produced += len(batch) * fanout
            offsets: dict[tuple[str, int], int] = {}
            for msg in batch:
                offset = msg.offset()
                assert offset is not None
                offsets[(msg.topic() or source, msg.partition() or 0)] = offset + 1
            producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                consumer.consumer_group_metadata(),
                30,
            )
            producer.commit_transaction(30)
            transactions += 1
            copied += len(batch)
        assert began is not None
        seconds = clock.monotonic() - began
    finally:
        consumer.close()
        producer.flush(10)
    return CopierResult(copied, produced, seconds, transactions)
