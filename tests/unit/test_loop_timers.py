"""The loop's memory of fired timers (``_fired``): what it keeps after a batch commits.

No broker: ``_apply`` is bookkeeping after ``commit_transaction`` returned (store write, fired
tokens, telemetry), so a real but unconnected producer and the in-memory store are enough.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from orchestrator.config import load_settings
from orchestrator.core import Action, SagaState, SagaStatus, Timer, TimerKind
from orchestrator.loop import Orchestrator, _Batch
from orchestrator.metrics import Metrics
from orchestrator.registry import load_registry
from orchestrator.store import MemorySagaStore


def waiting(saga_id: str, token: str | None) -> SagaState:
    return SagaState(
        saga_id=saga_id, saga_type="order", status=SagaStatus.RUNNING, data=b"{}", step=1,
        action=Action.DO, attempt=1,
        timer=None if token is None else Timer(token, 5_000, TimerKind.TIMEOUT),
        completed=(0,), to_compensate=(), failure=None, version=2, started_ms=0, updated_ms=1,
    )  # fmt: skip


@pytest.fixture
def loop() -> Orchestrator:
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    return Orchestrator(
        settings=load_settings(bootstrap_servers="127.0.0.1:1"), registry=load_registry("sagas"),
        store=MemorySagaStore(), consumer=None, producer=producer,  # type: ignore[arg-type]
        restore_consumer=None, admin=None, partitions=4, metrics=Metrics(),  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_fired_timer_is_remembered_until_its_saga_moves(loop: Orchestrator) -> None:
    loop._apply(_Batch(fired={"order/a": "t1"}))
    assert loop._fired == {"order/a": "t1"}  # not fired again while its TimerFired is in flight
    loop._apply(_Batch(overlay={"order/a": (0, waiting("order/a", "t2"))}))
    assert loop._fired == {}  # the TimerFired was folded: the saga has a new timer


def test_a_timer_fired_in_the_batch_that_moved_its_saga_is_forgotten(loop: Orchestrator) -> None:
    """The reply and the timeout in one batch: the new state's timer is another one."""
    moved = _Batch(overlay={"order/b": (0, waiting("order/b", "t2"))}, fired={"order/b": "t1"})
    loop._apply(moved)
    assert loop._fired == {}
    finished = _Batch(overlay={"order/c": (0, waiting("order/c", None))}, fired={"order/c": "t1"})
    loop._apply(finished)
    assert loop._fired == {}


def test_a_fired_timer_the_new_state_still_names_is_kept(loop: Orchestrator) -> None:
    same = _Batch(overlay={"order/d": (0, waiting("order/d", "t1"))}, fired={"order/d": "t1"})
    loop._apply(same)
    assert loop._fired == {"order/d": "t1"}
