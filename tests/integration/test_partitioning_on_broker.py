"""ksaga's own saga placement agrees with what librdkafka's murmur2_random does on a real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, Message, Producer

from orchestrator.partitioning import partition_for
from orchestrator.testing.kafka_cluster import KafkaBroker

pytestmark = pytest.mark.kafka


def test_explicit_partitions_match_the_murmur2_partitioner(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str]
) -> None:
    partitions = 7
    topic = kafka_broker.create_topic(unique_topic("placement"), partitions=partitions)
    producer = Producer(
        {"bootstrap.servers": kafka_broker.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    landed: dict[str, int] = {}
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            key, partition = msg.key(), msg.partition()
            assert key is not None
            assert partition is not None
            landed[key.decode()] = partition

    keys = [f"order/{i}" for i in range(300)] + ["", "é", "a-little-bit-longer-string"]
    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"x", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert errors == []
    assert landed == {key: partition_for(key, partitions) for key in keys}
    assert len(set(landed.values())) == partitions  # the keys really spread
