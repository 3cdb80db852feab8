"""Restore reads exactly the committed fold of a state partition, past markers and aborts,
into either store (RocksDB takes the raw records through its restore writer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from orchestrator.core import Action, SagaState, SagaStatus
from orchestrator.restore import high_watermark, restore_partition
from orchestrator.store import MemorySagaStore, RocksSagaStore, SagaStore, StoreBatch
from orchestrator.testing.kafka_cluster import KafkaBroker
from orchestrator.wire import encode_state

pytestmark = pytest.mark.kafka


def state(saga_id: str, version: int) -> SagaState:
    return SagaState(
        saga_id=saga_id, saga_type="order", status=SagaStatus.RUNNING, data=b"{}", step=0,
        action=Action.DO, attempt=1, timer=None, completed=(), to_compensate=(), failure=None,
        version=version, started_ms=0, updated_ms=version,
    )  # fmt: skip


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SagaStore]:
    made: SagaStore = (
        MemorySagaStore()
        if request.param == "memory"
        else RocksSagaStore(tmp_path, block_cache_bytes=4 << 20, write_buffer_bytes=2 << 20)
    )
    yield made
    made.close()


def test_restore_equals_the_committed_fold_and_reaches_the_high_watermark(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str], store: SagaStore
) -> None:
    topic = kafka_broker.create_topic(unique_topic("state"), partitions=2)
    bootstrap = kafka_broker.bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    expected: dict[str, SagaState | None] = {}

    def txn(records: list[tuple[str, SagaState | None]], commit: bool) -> None:
        producer.begin_transaction()
        for key, value in records:
            producer.produce(
                topic, partition=1, key=key.encode(), value=encode_state(value) if value else None
            )
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
            expected.update(records)
        else:
            producer.abort_transaction(30)

    # Many versions of few sagas (chunks repeat keys), a tombstone, an aborted transaction last.
    for version in range(1, 40):
        txn([(f"s{i}", state(f"s{i}", version)) for i in range(5)], commit=True)
    txn([("s3", None)], commit=True)
    txn([("s0", state("s0", 999)), ("s9", state("s9", 1))], commit=False)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "restore-test",
         "isolation.level": "read_committed", "enable.partition.eof": True}
    )  # fmt: skip
    # (done, total) per chunk: a progress bar's input and the loop's liveness heartbeat.
    moved: list[tuple[int, int]] = []
    result = restore_partition(
        store, consumer, admin, topic, 1, on_progress=lambda d, t: moved.append((d, t))
    )
    assert moved[0][0] == 0
    assert moved[-1][0] == moved[-1][1] > 0
    assert [d for d, _ in moved] == sorted(d for d, _ in moved)
    want = {k: v for k, v in expected.items() if v is not None}
    assert {s.saga_id: s for s in store.states(1)} == want
    assert store.get(1, "s0") == state("s0", 39)  # the aborted version 999 is invisible
    assert store.get(1, "s3") is None  # tombstoned
    assert store.checkpoint(1) == high_watermark(admin, topic, 1)  # past the abort marker
    assert result.records == 5 * 39 + 1

    # A later restore resumes from the checkpoint; a checkpoint past the end wipes and rebuilds.
    moved.clear()
    resumed = restore_partition(
        store, consumer, admin, topic, 1, on_progress=lambda d, t: moved.append((d, t))
    )
    assert resumed.records == 0
    assert moved  # already at the end: nothing to read
    assert set(moved) == {(0, 0)}
    store.apply(StoreBatch.of([(1, dataclasses.replace(state("s1", 1)))], (), {1: 10**9}))
    again = restore_partition(store, consumer, admin, topic, 1)
    assert again.wiped
    assert {s.saga_id: s for s in store.states(1)} == want
    consumer.close()
