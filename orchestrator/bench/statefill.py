"""The saga states of ``ksaga bench --restore``: made from their index, written as the loop does.

Saga ``i`` (``order/bench-<i>``) has one final state, a pure function of ``i`` and ``base_ms``,
so the restoring process can check every state it restored without being sent them. The mix
looks like a live store of order sagas: 1 in 5 in flight (RUNNING or COMPENSATING, waiting on a
reply timeout or a retry backoff, so the due-time index gets an entry), the rest terminal
(mostly COMPLETED, some COMPENSATED or FAILED with their failure).

The topic also holds what compaction has not yet removed, so a restore meets it too: every 10th
saga first has an earlier in-flight version with another timer (its index entry must go when the
final version arrives), and every 100th index has an extra saga ``order/bench-gone-<i>`` that is
written and then tombstoned (it must not be restored). Earlier versions and doomed sagas are
written first, then the final states and the tombstones, each to partition
``murmur2(saga id) % P`` with the loop's own record builder (``records.state_out``: the real
codec and headers), by a plain idempotent producer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from confluent_kafka import Producer

from orchestrator.core import (
    Action,
    Failure,
    SagaState,
    SagaStatus,
    Timer,
    TimerKind,
    timer_token,
)
from orchestrator.kafka import produce_when_room
from orchestrator.partitioning import partition_for
from orchestrator.records import OutRecord, state_out

__all__ = [
    "FillResult",
    "bench_index",
    "bench_saga_id",
    "fill_state_topic",
    "final_state",
]

_STEPS = ("reserve-stock", "charge-payment", "ship-order")
_PREFIX = "order/bench-"


def bench_saga_id(i: int) -> str:
    return f"{_PREFIX}{i:07d}"


def bench_index(saga_id: str) -> int | None:
    """``i`` of ``order/bench-<i>``, or None for any other id."""
    digits = saga_id.removeprefix(_PREFIX)
    return int(digits) if digits != saga_id and digits.isdigit() else None


def _data(i: int, progress: int) -> bytes:
    order = {
        "order_id": f"bench-{i:07d}",
        "customer_id": f"c-{i % 50_000:05d}",
        "items": [{"sku": "kafka-book", "quantity": 1 + i % 3}],
        "amount_cents": 3_999 * (1 + i % 3),
        "address": f"{i % 997} Log Street",
        "reservation_id": f"r-{i:07d}" if progress > 0 else None,
        "payment_id": f"p-{i:07d}" if progress > 1 else None,
        "tracking_number": f"t-{i:07d}" if progress > 2 else None,
    }
    return json.dumps(order, separators=(",", ":")).encode()


def _state(i: int, base_ms: int, status: SagaStatus, completed: tuple[int, ...]) -> SagaState:
    started = base_ms - 60_000 + i % 50_000
    return SagaState(
        saga_id=bench_saga_id(i), saga_type="order", status=status,
        data=_data(i, len(completed)), step=0, action=Action.DO, attempt=1, timer=None,
        completed=completed, to_compensate=(), failure=None, version=1, started_ms=started,
        updated_ms=started + 40,
    )  # fmt: skip


_DECLINED = Failure(_STEPS[1], Action.DO, "PaymentDeclined", "card declined")
_GAVE_UP = Failure(_STEPS[0], Action.UNDO, "StockServiceDown", "gave up after 5 attempts")


def final_state(i: int, base_ms: int) -> SagaState:
    """Saga ``i``'s state in the store after a restore."""
    kind = i % 20
    if kind < 3:  # waiting on a reply: a timeout timer
        step = i % 3
        token = timer_token(_STEPS[step], Action.DO, 1, TimerKind.TIMEOUT)
        timer = Timer(token, base_ms + 30_000 + i % 60_000, TimerKind.TIMEOUT)
        running = _state(i, base_ms, SagaStatus.RUNNING, tuple(range(step)))
        return replace(running, step=step, timer=timer, version=1 + 2 * step)
    if kind == 3:  # retrying after a transient failure: a backoff timer
        token = timer_token(_STEPS[1], Action.DO, 3, TimerKind.BACKOFF)
        timer = Timer(token, base_ms + i % 5_000, TimerKind.BACKOFF)
        running = _state(i, base_ms, SagaStatus.RUNNING, (0,))
        return replace(running, step=1, attempt=3, timer=timer, version=6)
    if kind == 4:  # compensating: undoing the stock reservation
        token = timer_token(_STEPS[0], Action.UNDO, 1, TimerKind.TIMEOUT)
        timer = Timer(token, base_ms + 10_000 + i % 20_000, TimerKind.TIMEOUT)
        undoing = _state(i, base_ms, SagaStatus.COMPENSATING, (0,))
        return replace(undoing, action=Action.UNDO, timer=timer, to_compensate=(0,),
                       failure=_DECLINED, version=5)  # fmt: skip
    if kind < 18:
        return replace(_state(i, base_ms, SagaStatus.COMPLETED, (0, 1, 2)), step=2, version=7)
    if kind == 18:
        compensated = _state(i, base_ms, SagaStatus.COMPENSATED, (0,))
        return replace(compensated, action=Action.UNDO, failure=_DECLINED, version=7)
    failed = _state(i, base_ms, SagaStatus.FAILED, (0,))
    return replace(failed, action=Action.UNDO, attempt=5, failure=_GAVE_UP, version=12)


def _earlier_state(i: int, base_ms: int) -> SagaState:
    token = timer_token(_STEPS[0], Action.DO, 1, TimerKind.TIMEOUT)
    timer = Timer(token, base_ms + 20_000 + i % 7_000, TimerKind.TIMEOUT)
    return replace(_state(i, base_ms, SagaStatus.RUNNING, ()), timer=timer)


def _doomed(i: int, base_ms: int) -> SagaState:
    return replace(_earlier_state(i, base_ms), saga_id=f"{_PREFIX}gone-{i:07d}")


@dataclass(frozen=True)
class FillResult:
    sagas: int  # states in the store after a restore
    records: int  # state records written (earlier versions, doomed sagas and tombstones too)
    tombstones: int
    value_bytes: int


def fill_state_topic(
    bootstrap: str, topic: str, partitions: int, n: int, base_ms: int
) -> FillResult:
    """Write the ``n`` sagas' states (and the extra records) and wait until all are delivered."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 50,
            "batch.size": 1_000_000,
        }
    )
    records = tombstones = value_bytes = 0

    def send(record: OutRecord) -> None:
        nonlocal records, value_bytes
        assert record.partition is not None
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        produce_when_room(
            producer,
            record.topic,
            poll_s=0.05,
            key=record.key,
            value=record.value,
            partition=record.partition,
            headers=headers,
        )
        records += 1
        value_bytes += len(record.value or b"")
        if records % 1_000 == 0:
            producer.poll(0)

    def place(state: SagaState) -> OutRecord:
        return state_out(topic, partition_for(state.saga_id, partitions), state)

    for i in range(0, n, 10):
        send(place(_earlier_state(i, base_ms)))
    for i in range(0, n, 100):
        send(place(_doomed(i, base_ms)))
    for i in range(n):
        send(place(final_state(i, base_ms)))
        if i % 100 == 0:
            doomed = place(_doomed(i, base_ms))
            send(OutRecord(topic, doomed.partition, doomed.key, None, doomed.headers))
            tombstones += 1
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} state records not delivered within 120 s")
    return FillResult(sagas=n, records=records, tombstones=tombstones, value_bytes=value_bytes)
