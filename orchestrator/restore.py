"""Bring one partition's store up to the end of its ``ksaga.state`` partition.

Runs in the main loop (never inside a rebalance callback) before any inbox record of the
partition is processed. The recipe is ``exactly-once.md``'s: first let the inbox partition's
committed offset become stable (a read_committed ``committed()`` waits for a previous owner's
pending transaction), then take the target as the state partition's **high watermark**
(read_uncommitted ListOffsets; the tail of a transactional partition is commit markers, so "the
last record I saw" is not a target), then read with read_committed from the store's checkpoint
until ``position >= target``, applying each chunk and its checkpoint in one WriteBatch. A store
whose checkpoint the topic no longer covers (retention, a recreated topic) is wiped and rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from orchestrator import clock
from orchestrator.core import SagaState
from orchestrator.crashpoints import crash_point
from orchestrator.errors import KsagaError
from orchestrator.kafka import watermarks
from orchestrator.store import SagaStore, StoreBatch
from orchestrator.wire import decode_state

__all__ = ["RestoreResult", "high_watermark", "restore_partition"]

_log = structlog.get_logger("ksaga.restore")
CHUNK = 2_000


@dataclass(frozen=True, slots=True)
class RestoreResult:
    partition: int
    start_offset: int
    target: int
    records: int
    seconds: float
    wiped: bool


def high_watermark(admin: AdminClient, topic: str, partition: int) -> int:
    return watermarks(admin, [(topic, partition)])[(topic, partition)]


def _low_watermark(admin: AdminClient, topic: str, partition: int) -> int:
    return watermarks(admin, [(topic, partition)], earliest=True)[(topic, partition)]


def _checkpoint_within(
    store: SagaStore, partition: int, low: int, high: int
) -> tuple[int | None, bool]:
    """The store's checkpoint, or (None, wiped) when the topic no longer covers it."""
    start = store.checkpoint(partition)
    if start is None or low <= start <= high:
        return start, False
    _log.warning(
        "store checkpoint outside the state topic; wiping the partition",
        partition=partition,
        checkpoint=start,
        low=low,
        high=high,
    )
    store.wipe_partition(partition)
    return None, True


def restore_partition(
    store: SagaStore,
    consumer: Consumer,
    admin: AdminClient,
    state_topic: str,
    partition: int,
    *,
    stall_timeout_s: float = 120.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Catch ``store`` up on ``state_topic[partition]``; ``on_progress(done, total)`` is called
    with the offsets read so far and to read in all, once before the first chunk and after each
    (a progress bar, and the loop's heartbeat: a long restore is not a stall)."""
    began = clock.monotonic()
    target = high_watermark(admin, state_topic, partition)
    low = _low_watermark(admin, state_topic, partition)
    start, wiped = _checkpoint_within(store, partition, low, target)
    position = start if start is not None else low
    first = position
    if on_progress is not None:
        on_progress(0, target - first)
    records = 0
    tp = TopicPartition(state_topic, partition, position)
    consumer.assign([tp])
    try:
        last_progress = clock.monotonic()
        while position < target:
            messages = consumer.consume(CHUNK, timeout=0.05)
            latest: dict[str, SagaState | None] = {}  # a chunk may hold one saga many times
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KsagaError(f"restore of {state_topic}[{partition}] failed: {err}")
                key = msg.key()
                value = msg.value()
                if key is None:
                    continue
                latest[key.decode()] = None if value is None else decode_state(value)
                records += 1
            puts = [(partition, s) for s in latest.values() if s is not None]
            deletes = [(partition, k) for k, s in latest.items() if s is None]
            (current,) = consumer.position([TopicPartition(state_topic, partition)])
            if current.offset >= 0 and current.offset > position:
                position = current.offset
                last_progress = clock.monotonic()
            if puts or deletes or position > (store.checkpoint(partition) or -1):
                store.apply(StoreBatch.of(puts, deletes, {partition: position}))
                crash_point("during-restore")
            if on_progress is not None:
                on_progress(min(position, target) - first, target - first)
            if clock.monotonic() - last_progress > stall_timeout_s:
                raise KsagaError(
                    f"restore of {state_topic}[{partition}] stalled at {position} < {target} for"
                    f" {stall_timeout_s:.0f} s: a hanging transaction holds the LSO"
                )
    finally:
        consumer.unassign()
    result = RestoreResult(
        partition, start or low, target, records, clock.monotonic() - began, wiped
    )
    _log.info(
        "partition restored",
        partition=partition,
        records=records,
        start=result.start_offset,
        target=target,
        seconds=round(result.seconds, 3),
    )
    return result
