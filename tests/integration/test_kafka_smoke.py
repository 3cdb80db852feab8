"""What ksaga's exactly-once design rests on, checked against the real broker with librdkafka.

Each test proves one broker/client behaviour that ``exactly-once.md`` assumes: a consume →
produce step commits its outputs and its input offsets atomically (I1); an aborted step leaves
neither; a restarted replica's ``init_transactions`` fences its zombie and aborts its open
transaction; ``position()`` reaches the high watermark past trailing transaction markers
(restore step 4); and ``committed()`` on a read_committed consumer waits while another
producer's transaction holds offsets for the group (restore step 1). Every assertion is paired
with its opposite (read_uncommitted sees what read_committed must not), so each test can fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from orchestrator.kafka import watermarks
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for

pytestmark = pytest.mark.kafka

TXN_TIMEOUT_MS = 10_000
TIMEOUT_S = 30.0


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        **extra,
    }


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer(
        producer_config(
            bootstrap,
            **{"transactional.id": transactional_id, "transaction.timeout.ms": TXN_TIMEOUT_MS},
        )
    )
    producer.init_transactions(TIMEOUT_S)
    return producer


def consumer(bootstrap: str, group: str, isolation: str = "read_committed") -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def produce_plain(bootstrap: str, topic: str, count: int) -> None:
    """``count`` keyed records m0..m<count-1>, spread over the partitions by key."""
    producer = Producer(producer_config(bootstrap))
    for i in range(count):
        producer.produce(topic, key=f"k{i}".encode(), value=f"m{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0


def poll_messages(source: Consumer, count: int, what: str) -> list[Message]:
    """Poll until ``count`` records arrived (no more are expected)."""
    got: list[Message] = []

    def enough() -> bool:
        for msg in source.consume(count - len(got), 0.2):
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg)
        return len(got) >= count

    wait_for(enough, TIMEOUT_S, what, interval=0)  # consume() itself waits
    return got


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    probe = consumer(bootstrap, "ksaga-probe")
    try:
        return {
            p: probe.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        probe.close()


def read_to_end(
    bootstrap: str, topic: str, partitions: int = 1, isolation: str = "read_committed"
) -> list[bytes]:
    """Every visible value, read until each partition's position reaches its high watermark.

    This stops by position, not by a count, so it also sees records that should not be there.
    It relies on ``position()`` passing trailing transaction markers, which
    ``test_read_committed_position_reaches_the_high_watermark`` checks on its own.
    """
    ends = end_offsets(bootstrap, topic, partitions)
    reader = consumer(bootstrap, "ksaga-reader", isolation)
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: list[bytes] = []

    def at_end() -> bool:
        for msg in reader.consume(500, 0.1):
            if msg.error():
                raise KafkaException(msg.error())
            values.append(msg.value() or b"")
        positions = reader.position([TopicPartition(topic, p) for p in range(partitions)])
        return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in positions)

    try:
        what = f"{isolation} reader to reach the end of {topic}"
        wait_for(at_end, TIMEOUT_S, what, interval=0)  # consume() itself waits
    finally:
        reader.close()
    return values


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets, read by a fresh consumer that never joins the group."""
    fresh = consumer(bootstrap, group)
    try:
        tps = fresh.committed([TopicPartition(topic, p) for p in range(partitions)], TIMEOUT_S)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        fresh.close()


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    """The offsets to commit after ``batch``: one past the last record of each partition."""
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        key = (msg.topic() or "", msg.partition() or 0)
        last[key] = max(last.get(key, -1), msg.offset() or 0)
    return [TopicPartition(topic, p, offset + 1) for (topic, p), offset in sorted(last.items())]


def test_consume_produce_commits_outputs_and_offsets_atomically(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    source = kafka_broker.create_topic(unique_topic("in"), partitions=2)
    sink = kafka_broker.create_topic(unique_topic("out"), partitions=2)
    group = unique_topic("group")
    produce_plain(bootstrap, source, 40)

    inbox = consumer(bootstrap, group)
    inbox.subscribe([source])
    producer = transactional_producer(bootstrap, unique_topic("txn"))
    consumed = poll_messages(inbox, 40, f"40 records from {source}")
    for batch in (consumed[:25], consumed[25:]):  # two steps, each one transaction
        producer.begin_transaction()
        for msg in batch:
            producer.produce(sink, key=msg.key(), value=b"out:" + (msg.value() or b""))
        producer.send_offsets_to_transaction(
            next_offsets(batch), inbox.consumer_group_metadata(), TIMEOUT_S
        )
        producer.commit_transaction(TIMEOUT_S)
    positions = {
        tp.partition: tp.offset
        for tp in inbox.position([TopicPartition(source, p) for p in range(2)])
    }
    inbox.close()

    outputs = read_to_end(bootstrap, sink, partitions=2)
    assert sorted(outputs) == sorted(f"out:m{i}".encode() for i in range(40))
    committed = committed_offsets(bootstrap, group, source, 2)
    assert committed == positions == end_offsets(bootstrap, source, 2)
    assert sum(committed.values()) == 40


def test_aborted_step_is_invisible_and_commits_no_offsets(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    source = kafka_broker.create_topic(unique_topic("in"))
    sink = kafka_broker.create_topic(unique_topic("out"))
    group = unique_topic("group")
    produce_plain(bootstrap, source, 10)
    inbox = consumer(bootstrap, group)
    inbox.subscribe([source])
    producer = transactional_producer(bootstrap, unique_topic("txn"))

    def step(commit: bool) -> None:
        batch = poll_messages(inbox, 10, f"10 records from {source}")
        producer.begin_transaction()
        for msg in batch:
            producer.produce(sink, value=b"out:" + (msg.value() or b""))
        assert producer.flush(TIMEOUT_S) == 0  # the records are in the log either way
        producer.send_offsets_to_transaction(
            next_offsets(batch), inbox.consumer_group_metadata(), TIMEOUT_S
        )
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            producer.abort_transaction(TIMEOUT_S)

    expected = [f"out:m{i}".encode() for i in range(10)]
    step(commit=False)
    assert read_to_end(bootstrap, sink) == []
    assert read_to_end(bootstrap, sink, isolation="read_uncommitted") == expected
    assert committed_offsets(bootstrap, group, source, 1) == {0: OFFSET_INVALID}

    # The abort path: rewind to the committed offset (none: the beginning) and decide again.
    inbox.seek(TopicPartition(source, 0, 0))
    step(commit=True)
    inbox.close()
    assert read_to_end(bootstrap, sink) == expected  # exactly one visible copy
    assert read_to_end(bootstrap, sink, isolation="read_uncommitted") == expected * 2
    assert committed_offsets(bootstrap, group, source, 1) == {0: 10}


def test_same_transactional_id_fences_the_zombie_and_aborts_its_transaction(
    kafka_broker: KafkaBroker,
    unique_topic: Callable[[str], str],
    kafka_report: Callable[[str], None],
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = kafka_broker.create_topic(unique_topic("out"))
    transactional_id = unique_topic("txn")
    zombie = transactional_producer(bootstrap, transactional_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1")
    assert zombie.flush(TIMEOUT_S) == 0  # written to the log: the transaction is open

    successor = transactional_producer(bootstrap, transactional_id)  # bumps the epoch

    zombie.produce(topic, value=b"zombie-2")  # accepted locally; the broker refuses it
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(TIMEOUT_S)
    error: KafkaError = raised.value.args[0]
    kafka_report(
        f"fencing: the zombie's commit raised {error.name()} ({error.code()}), "
        f"fatal={error.fatal()}, retriable={error.retriable()}, "
        f"txn_requires_abort={error.txn_requires_abort()}: {error.str()}"
    )
    # librdkafka turns the broker's INVALID_PRODUCER_EPOCH / PRODUCER_FENCED into _FENCED, fatal.
    assert error.code() == KafkaError._FENCED
    assert error.fatal()
    assert not error.retriable()

    successor.begin_transaction()
    successor.produce(topic, value=b"successor")
    successor.commit_transaction(TIMEOUT_S)
    assert read_to_end(bootstrap, topic) == [b"successor"]
    uncommitted = read_to_end(bootstrap, topic, isolation="read_uncommitted")
    assert b"zombie-1" in uncommitted
    assert b"successor" in uncommitted


def test_read_committed_position_reaches_the_high_watermark(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = kafka_broker.create_topic(unique_topic("log"))
    producer = transactional_producer(bootstrap, unique_topic("txn"))
    for txn in range(3):
        producer.begin_transaction()
        for i in range(5):
            producer.produce(topic, value=f"c{txn}-{i}".encode())
        producer.commit_transaction(TIMEOUT_S)

    def last_record_and_end() -> tuple[int, int]:
        reader = consumer(bootstrap, unique_topic("reader"))
        reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        try:
            msgs = poll_messages(reader, 15, f"15 committed records of {topic}")
            end = end_offsets(bootstrap, topic, 1)[0]
            tp = TopicPartition(topic, 0)

            def at_end() -> bool:
                msg = reader.poll(0.1)
                assert msg is None, f"unexpected record {msg.value()!r}"
                return reader.position([tp])[0].offset >= end

            what = f"position of {topic} to reach the high watermark {end}"
            wait_for(at_end, TIMEOUT_S, what, interval=0)
            assert reader.position([tp])[0].offset == end
            return msgs[-1].offset() or 0, end
        finally:
            reader.close()

    last, end = last_record_and_end()
    assert end == last + 2  # the tail of the log is a commit marker, not a record

    # An aborted transaction at the tail: 5 invisible records and an abort marker.
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, value=f"aborted-{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0  # else abort just drops them from the local queue
    producer.abort_transaction(TIMEOUT_S)
    last_after_abort, end_after_abort = last_record_and_end()
    assert last_after_abort == last
    assert end_after_abort == end + 6


def test_committed_waits_while_a_transaction_holds_offsets_for_the_group(
    kafka_broker: KafkaBroker,
    unique_topic: Callable[[str], str],
    kafka_report: Callable[[str], None],
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = kafka_broker.create_topic(unique_topic("inbox"))
    group = unique_topic("group")
    previous_owner = transactional_producer(bootstrap, unique_topic("txn"))
    metadata_source = consumer(bootstrap, group)  # never joins: generation -1, no fencing
    new_owner = consumer(bootstrap, group, "read_committed")
    tp = TopicPartition(topic, 0)

    def committed_while(decide: Callable[[float], None], offset: int) -> int:
        previous_owner.begin_transaction()
        previous_owner.send_offsets_to_transaction(
            [TopicPartition(topic, 0, offset)],
            metadata_source.consumer_group_metadata(),
            TIMEOUT_S,
        )
        result: list[int] = []
        asker = threading.Thread(
            target=lambda: result.append(new_owner.committed([tp], TIMEOUT_S)[0].offset)
        )
        asker.start()
        asker.join(1.5)
        assert asker.is_alive(), "committed() returned while the transaction was open"
        decide(TIMEOUT_S)
        asker.join(TIMEOUT_S)
        assert not asker.is_alive()
        return result[0]

    try:
        assert committed_while(previous_owner.abort_transaction, 5) == OFFSET_INVALID
        assert committed_while(previous_owner.commit_transaction, 7) == 7
    finally:
        metadata_source.close()
        new_owner.close()
    kafka_report("committed() on a read_committed consumer blocked until the txn was decided")


def test_watermarks_wait_for_a_partition_that_is_not_there_yet(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    """A restore right after topics are created met NOT_LEADER_FOR_PARTITION and exited; the
    offsets lookup now asks again until the partition answers (within its timeout)."""
    topic = unique_topic("late")
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    creator = threading.Timer(1.0, lambda: kafka_broker.create_topic(topic, 1))
    creator.start()
    try:
        assert watermarks(admin, [(topic, 0)], timeout=30) == {(topic, 0): 0}
    finally:
        creator.join()
    with pytest.raises(KafkaException):  # a partition that never comes: the timeout holds
        watermarks(admin, [(unique_topic("never"), 0)], timeout=2)
