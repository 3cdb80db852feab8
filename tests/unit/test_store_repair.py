"""The loop's answer to an unreadable stored state: rebuild the partition, a bounded number of
times. No broker: the rebuild is bookkeeping (wipe, forget, pause, queue the restore)."""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from orchestrator.config import load_settings
from orchestrator.core import Action, SagaState, SagaStatus
from orchestrator.loop import FatalError, Orchestrator, _CorruptState
from orchestrator.metrics import Metrics
from orchestrator.registry import load_registry
from orchestrator.store import MemorySagaStore, StoreBatch


class _PausingConsumer:
    def __init__(self) -> None:
        self.paused: list[tuple[str, int]] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused += [(tp.topic, tp.partition) for tp in partitions]


def _state(saga_id: str) -> SagaState:
    return SagaState(
        saga_id=saga_id, saga_type="order", status=SagaStatus.RUNNING, data=b"{}", step=1,
        action=Action.DO, attempt=1, timer=None, completed=(0,), to_compensate=(),
        failure=None, version=2, started_ms=0, updated_ms=1,
    )  # fmt: skip


def test_an_unreadable_state_queues_its_partition_for_restore_three_times_then_gives_up() -> None:
    store = MemorySagaStore()
    store.apply(StoreBatch.of([(2, _state("order/a")), (3, _state("order/b"))], (), {2: 9, 3: 4}))
    consumer = _PausingConsumer()
    loop = Orchestrator(
        settings=load_settings(bootstrap_servers="127.0.0.1:1"), registry=load_registry("sagas"),
        store=store, consumer=consumer, producer=None,  # type: ignore[arg-type]
        restore_consumer=None, admin=None, partitions=4, metrics=Metrics(),  # type: ignore[arg-type]
    )  # fmt: skip
    loop.active.update({2, 3})
    loop._fired["order/a"] = "t1"

    for attempt in range(1, 4):
        loop._repair(_CorruptState(2, "order/a", "bad-marker"))
        assert store.get(2, "order/a") is None  # wiped
        assert store.checkpoint(2) is None  # so the restore reads the whole state partition
        assert store.get(3, "order/b") is not None  # the other partition untouched
        assert loop.pending_restore == {2}
        assert loop.active == {3}
        assert consumer.paused[-1] == ("ksaga.inbox", 2)  # no record folded until restored
        assert loop._fired == {}
        assert loop.metrics.store_rebuilds._value.get() == attempt
        loop.pending_restore.clear()  # as a finished restore would
        loop.active.add(2)

    with pytest.raises(FatalError, match="again after 3 rebuilds"):
        loop._repair(_CorruptState(2, "order/a", "bad-marker"))
