"""Under `ksaga saga resume|cancel`: the Signal lands where the saga's owner folds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from orchestrator.config import load_settings
from orchestrator.core import SagaCancelled, SagaResumed
from orchestrator.errors import ConfigError
from orchestrator.ops.control import send_signal
from orchestrator.partitioning import partition_for
from orchestrator.testing.kafka_cluster import KafkaBroker
from orchestrator.topics import create_topics, plan_topics
from orchestrator.wire import decode_input
from schemas import headers

pytestmark = pytest.mark.kafka


def test_a_signal_lands_in_the_sagas_inbox_partition_keyed_by_its_id(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    settings = load_settings(bootstrap_servers=bootstrap, topic_prefix=f"{unique_topic('ops')}.")
    resume = SagaResumed("order/o-7", "alice", "inventory fixed")
    with pytest.raises(ConfigError, match="ksaga topics create"):
        send_signal(settings, resume, requested_ms=1)

    create_topics(AdminClient({"bootstrap.servers": bootstrap}), plan_topics(settings, 5))
    cancel = SagaCancelled("order/o-8", "bob", "")
    written = [send_signal(settings, s, requested_ms=1) for s in (resume, cancel)]
    assert [(w.kind, w.topic) for w in written] == [
        ("RESUME", settings.topics.inbox),
        ("CANCEL", settings.topics.inbox),
    ]
    assert [w.partition for w in written] == [partition_for(s.saga_id, 5) for s in (resume, cancel)]
    assert "written to" in written[0].describe()

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ops-test"})
    try:
        signals: tuple[SagaResumed | SagaCancelled, ...] = (resume, cancel)
        for signal, where in zip(signals, written, strict=True):
            consumer.assign([TopicPartition(where.topic, where.partition, where.offset)])
            msg = consumer.poll(15)
            assert msg is not None
            assert msg.error() is None
            assert msg.key() == signal.saga_id.encode()
            raw: Any = msg.headers()
            assert headers.last_header(raw, headers.RECORD_TYPE) == b"Signal"
            assert decode_input(msg.value()) == signal
    finally:
        consumer.close()
