"""``produce_when_room`` waits out a full local queue instead of dropping the record.

A real librdkafka producer with room for one record and no broker behind its bootstrap address:
each queued record stays until its ``message.timeout.ms`` passes, so the second call meets a
full queue and returns only once the first record timed out and was reported (librdkafka
scans for timed-out records once a second).
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, Producer

from orchestrator.kafka import produce_when_room
from orchestrator.testing.kafka_cluster import free_ports


def test_every_record_is_queued_after_the_full_queue_drains() -> None:
    (port,) = free_ports(1)  # nothing listens there
    reports: list[tuple[KafkaError | None, bytes | None]] = []
    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{port}",
            "queue.buffering.max.messages": 1,
            "message.timeout.ms": 200,
            "logger": logging.getLogger("ksaga.tests.produce_when_room"),
        }
    )
    for key in (b"a", b"b"):
        produce_when_room(
            producer,
            "t",
            poll_s=0.05,
            key=key,
            value=b"v",
            on_delivery=lambda err, msg: reports.append((err, msg.key())),
        )
    assert [key for _, key in reports] == [b"a"]  # b was queued only after a was reported
    producer.flush(5)
    assert [key for _, key in reports] == [b"a", b"b"]
    assert all(err is not None and err.code() == KafkaError._MSG_TIMED_OUT for err, _ in reports)
