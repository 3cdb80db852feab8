"""Bring one partition's store up to the end of its ``ksaga.state`` partition.

Runs in the main loop (never inside a rebalance callback) before any inbox record of the
partition is processed. The recipe is ``exactly-once.md``'s: first let the inbox partition's
committed offset become stable (a read_committed ``committed()`` waits for a previous owner's
pending transaction), then take the target as the state partition's **high watermark**
(read_uncommitted ListOffsets; the tail of a transactional partition is commit markers, so "the
last record I saw" is not a target), then read with read_committed from the store's checkpoint
until ``position >= target``. A store whose checkpoint the topic no longer covers (retention, a
recreated topic) is wiped and rebuilt; so is a partition with no checkpoint at all.

The records go to the store as they are (``SagaStore.restore_writer``): no state is decoded
here, chunks of up to ``CHUNK`` records are applied without RocksDB's write-ahead log, and
every ``COMMIT_RECORDS`` records, and at the end, ``commit`` makes them durable and only then
writes the checkpoint (the next offset to read). A crash in between loses at most what came
after the last checkpoint, which the next restore reads again; the checkpoint is never durable
ahead of the states it covers. The restore consumer's fetch settings are in ``kafka.py``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from orchestrator import clock
from orchestrator.crashpoints import crash_point
from orchestrator.errors import KsagaError
from orchestrator.kafka import watermarks
from orchestrator.store import SagaStore

__all__ = ["RestoreResult", "high_watermark", "restore_partition"]

_log = structlog.get_logger("ksaga.restore")
CHUNK = 10_000
"""Records per consume call and per WriteBatch."""
COMMIT_RECORDS = 250_000
"""Records applied between two durable checkpoints: what a crash mid-restore makes it re-read."""


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


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector for the duration of a restore.

    Each chunk is ~10,000 GC-tracked objects (librdkafka messages, tuples) alive across many
    allocations, so the collector keeps promoting and walking them: about a fifth of a
    restore's CPU, measured. A restore creates no reference cycles, and a cycle made meanwhile
    by another thread (the probe server) is collected when the restore ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _records(
    messages: list[Message], state_topic: str, partition: int
) -> list[tuple[bytes, bytes | None]]:
    """The (key, value) of each record; end-of-partition events are skipped.

    A fatal consumer error raises. Any other error (NOT_LEADER_FOR_PARTITION while a leader
    moves or a broker starts, a transport hiccup) is one librdkafka retries by itself: it is
    logged and the restore goes on; a restore that really cannot move is caught by the stall
    timeout. (``ksaga bench`` caught a replica exiting on a transient NOT_LEADER at start.)
    """
    if any(msg.error() is not None for msg in messages):
        for msg in messages:
            err = msg.error()
            if err is None or err.code() == KafkaError._PARTITION_EOF:
                continue
            if err.fatal():
                raise KsagaError(f"restore of {state_topic}[{partition}] failed: {err}")
            _log.warning("restore: transient consumer error", partition=partition, error=str(err))
        messages = [msg for msg in messages if msg.error() is None]
    return [(key, msg.value()) for msg in messages if (key := msg.key()) is not None]


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
    fetch (a progress bar, and the loop's heartbeat: a long restore is not a stall)."""
    with _cyclic_gc_paused():
        return _restore(
            store, consumer, admin, state_topic, partition,
            stall_timeout_s=stall_timeout_s, on_progress=on_progress,
        )  # fmt: skip


def _restore(
    store: SagaStore,
    consumer: Consumer,
    admin: AdminClient,
    state_topic: str,
    partition: int,
    *,
    stall_timeout_s: float,
    on_progress: Callable[[int, int], None] | None,
) -> RestoreResult:
    began = clock.monotonic()
    if on_progress is not None:  # a heartbeat before the watermark round trips
        on_progress(0, 0)
    target = high_watermark(admin, state_topic, partition)
    low = _low_watermark(admin, state_topic, partition)
    start = store.checkpoint(partition)
    wiped = False
    if start is not None and not low <= start <= target:
        _log.warning(
            "store checkpoint outside the state topic; wiping the partition",
            partition=partition,
            checkpoint=start,
            low=low,
            high=target,
        )
        wiped = True
    if start is None or wiped:
        # No trusted checkpoint: whatever the partition holds (say, records a crashed restore
        # applied before its first commit) is not known to be a prefix of the topic.
        store.wipe_partition(partition)
        start = None
    position = start if start is not None else low
    first = committed = position
    if on_progress is not None:
        on_progress(0, target - first)
    records = committed_records = 0
    writer = store.restore_writer(partition)
    consumer.assign([TopicPartition(state_topic, partition, position)])
    try:
        last_progress = clock.monotonic()
        while position < target:
            # What is already fetched, at once; otherwise wait a little for the next fetch.
            messages = consumer.consume(CHUNK, timeout=0) or consumer.consume(CHUNK, timeout=0.05)
            chunk = _records(messages, state_topic, partition)
            (current,) = consumer.position([TopicPartition(state_topic, partition)])
            if current.offset >= 0 and current.offset > position:
                position = current.offset
                last_progress = clock.monotonic()
            if chunk:
                writer.apply(chunk)  # every record before ``position`` is now applied
                records += len(chunk)
                crash_point("during-restore")
            if records - committed_records >= COMMIT_RECORDS:
                writer.commit(position)
                committed, committed_records = position, records
            if on_progress is not None:
                on_progress(min(position, target) - first, target - first)
            if clock.monotonic() - last_progress > stall_timeout_s:
                raise KsagaError(
                    f"restore of {state_topic}[{partition}] stalled at {position} < {target} for"
                    f" {stall_timeout_s:.0f} s: a hanging transaction holds the LSO"
                )
        if position != committed or start is None:
            writer.commit(position)
    finally:
        consumer.unassign()
    result = RestoreResult(
        partition, start if start is not None else low, target, records,
        clock.monotonic() - began, wiped,
    )  # fmt: skip
    _log.info(
        "partition restored",
        partition=partition,
        records=records,
        start=result.start_offset,
        target=target,
        seconds=round(result.seconds, 3),
    )
    return result
