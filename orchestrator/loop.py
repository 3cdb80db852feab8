"""The transactional batch loop: consume, decide, produce, send offsets, commit, store.

One consumer, one transactional producer, one thread. Per batch::

    begin -> for each record: route a trigger / fold an inbox record through ``decide`` against
    the overlay over the store -> produce state, history, commands, dead letters -> fire due timers
    -> flush -> send_offsets_to_transaction(group metadata) -> commit -> store.apply(overlay)

Kafka-side rules (``exactly-once.md``): the store is written only after ``commit_transaction``
returns (I2), so an abort just drops the overlay and rewinds to the committed offsets. A newly
assigned inbox partition is paused and restored here, in the loop, before any of its records is
folded. ``consume`` is never called inside an open transaction, so rebalance callbacks never see
one: a revoke drops the partition, an assign queues its restore. Errors follow ``kafka.classify``:
RETRIABLE -> call again, ABORT -> abort and redo, FATAL -> ``FatalError``: app.py closes every
client without committing and rejoins with new ones (``rejoin.py``), or exits non-zero for the
supervisor once that happened too often.

This module's ``if``s are about Kafka; what a saga does is ``decide``'s business, and what the
operators see of it is ``telemetry``'s (metrics and spans, published when a batch commits).
Every line logged while a record is handled carries its saga, step, attempt and position
(``logs.RecordContext``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import structlog
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from orchestrator import clock
from orchestrator.admission import TriggerGate, cached_lags
from orchestrator.budget import WindowBudget
from orchestrator.config import Settings
from orchestrator.core import (
    Decision,
    Input,
    SagaDefinition,
    SagaState,
    SendCommand,
    StepFailed,
    StepSucceeded,
)
from orchestrator.crashpoints import crash_point, stall_point
from orchestrator.errors import DecodeError, KsagaError
from orchestrator.inbox import fold_record
from orchestrator.kafka import ErrorClass, classify, poll_batch
from orchestrator.logs import RecordContext, handling
from orchestrator.metrics import Metrics
from orchestrator.partitioning import partition_for
from orchestrator.records import (
    OutRecord,
    Source,
    command_out,
    dead_letter_out,
    history_out,
    start_out,
    state_out,
    timer_out,
)
from orchestrator.registry import Registry
from orchestrator.restore import restore_partition
from orchestrator.store import MAX_DUE_MS, SagaStore, StoreBatch
from orchestrator.telemetry import Telemetry
from orchestrator.tracing import SagaTracer
from schemas import headers

__all__ = ["FatalError", "Orchestrator"]

_log = structlog.get_logger("ksaga.loop")
T = TypeVar("T")
_RETRIES = 10
_REBUILDS, _REBUILD_WINDOW_S = 3, 300.0  # store rebuilds a loop may do before it gives up
_ALL_TIMERS = 1 << 40  # "no limit" for counting a restored partition's timers


class FatalError(KsagaError):
    """The producer or the membership is gone: rejoin with new clients, or exit for a restart."""


class _Abort(Exception):
    """The transaction must be aborted and the batch redone from the committed offsets."""


class _CorruptState(Exception):
    """A state in RocksDB cannot be decoded (a damaged disk, a bug): the record is sound, the
    local copy is not, so the partition is rebuilt from the state topic, never dead-lettered."""

    def __init__(self, partition: int, saga_id: str, reason: str) -> None:
        super().__init__(f"stored state of {saga_id!r} (partition {partition}): {reason}")
        self.partition = partition


@dataclass
class _Batch:
    """One transaction's working set: the overlay over the store and what to commit."""

    overlay: dict[str, tuple[int, SagaState]] = field(default_factory=dict)
    encoded: dict[str, bytes] = field(default_factory=dict)  # saga id -> its state record's value
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    fired: dict[str, str] = field(default_factory=dict)
    records: int = 0


class Orchestrator:
    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        store: SagaStore,
        consumer: Consumer,
        producer: Producer,
        restore_consumer: Consumer,
        admin: AdminClient,
        partitions: int,
        metrics: Metrics,
        tracer: SagaTracer | None = None,
        gauge_interval_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.registry = registry
        self.store = store
        self.consumer = consumer
        self.producer = producer
        self.restore_consumer = restore_consumer
        self.admin = admin
        self.partitions = partitions
        self.metrics = metrics
        self.telemetry = Telemetry(metrics, tracer)
        self.gauge_interval_s = gauge_interval_s
        self._gauges_due = 0.0
        self.active: set[int] = set()
        self.pending_restore: set[int] = set()
        self.assigned: set[tuple[str, int]] = set()
        self._fired: dict[str, str] = {}  # saga id -> token already sent as TimerFired
        self._delivery_errors: list[KafkaError] = []
        self._state_offsets: dict[int, int] = {}
        self.heartbeat = clock.monotonic()
        self.gate = TriggerGate(settings.max_inbox_backlog)
        self._rebuilds = WindowBudget(_REBUILDS, _REBUILD_WINDOW_S)
        metrics.gate_state.set(0)  # a rejoin's new loop starts open, whatever the last one did

    # ------------------------------------------------------------------ life cycle

    def run(self, stop: threading.Event) -> None:
        self._call(lambda: self.producer.init_transactions(30))
        topics = [self.topics.inbox, *sorted(self.registry.trigger_topics)]
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        _log.info("orchestrator started", replica=self.settings.replica_id, topics=topics)
        while not stop.is_set():
            self.step()
        _log.info("orchestrator stopping: leaving the group")

    @property
    def ready(self) -> bool:
        """Every owned inbox partition restored (the readiness probe)."""
        return bool(self.assigned) and not self.pending_restore

    def beat(self) -> None:
        """The loop made progress: a turn began, a bounded Kafka call is about to start, or a
        restore moved on. Read by ``/live`` and by the watchdog (orchestrator/watchdog.py)."""
        self.heartbeat = clock.monotonic()

    def step(self) -> None:
        """One turn: restore what is pending, then one batch (if there is anything to do)."""
        self.beat()
        self._restore_pending()
        sample = self.heartbeat >= self._gauges_due
        if sample or self.gate.high:
            lags = cached_lags(self.consumer, self.topics.inbox, self.active)
            self._admit(sum(lags.values()))
            if sample:
                self._gauges_due = self.heartbeat + self.gauge_interval_s
                self.telemetry.lags(lags)
        settings = self.settings
        polled = poll_batch(
            self.consumer,
            settings.batch_max_records,
            settings.batch_max_ms / 1000,
            settings.batch_linger_ms / 1000,
        )
        messages = self._owned(polled)
        due = self._due_timers(clock.wall_ms())
        if not messages and not due:
            return
        try:
            batch = self._transaction(messages, due)
        except _Abort as exc:
            self.telemetry.aborted()
            self.metrics.aborts.inc()
            _log.warning("transaction aborted; redoing the batch", reason=str(exc))
            self._abort_and_rewind(_first_offsets(messages))
            return
        except _CorruptState as exc:
            self.telemetry.aborted()
            self.metrics.aborts.inc()
            self._abort_and_rewind(_first_offsets(messages))
            self._repair(exc)
            return
        self._apply(batch)

    def _admit(self, backlog: int) -> None:
        """Hold or release the trigger partitions as the inbox backlog asks (admission.py)."""
        change = self.gate.update(backlog)
        if change is None:
            return
        held = self._trigger_partitions()
        if change:
            if held:
                self.consumer.pause(held)
            self.metrics.gate_closed.inc()
            _log.info("inbox backlog high: holding new sagas", backlog=backlog, held=len(held))
        else:
            if held:
                self.consumer.resume(held)
            _log.info("inbox backlog down: taking new sagas again", backlog=backlog)
        self.metrics.gate_state.set(int(change))

    def _trigger_partitions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.assigned) if t != self.topics.inbox]

    def _owned(self, polled: list[Message]) -> list[Message]:
        """Only records of partitions this replica owns and (inbox) has restored.

        librdkafka may hand back records fetched before a revoke in the same consume() call, and
        KIP-447 fences by generation, not by ownership: folding such a record would race the new
        owner. A record of an owned but not yet restored partition would be folded against a
        stale store, so its partition is rewound to it instead.
        """
        kept: list[Message] = []
        rewind: dict[tuple[str, int], int] = {}
        for msg in polled:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise FatalError(f"fatal consumer error: {err}")
                if err.code() != KafkaError._PARTITION_EOF:
                    _log.warning("consumer error", error=str(err))
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None
            assert partition is not None
            assert offset is not None
            owned = (topic, partition) in self.assigned
            if owned and (topic != self.topics.inbox or partition in self.active):
                kept.append(msg)
            elif owned:
                rewind.setdefault((topic, partition), offset)
        if rewind:
            self._seek(rewind)
        return kept

    # ------------------------------------------------------------------ the transaction

    def _transaction(self, messages: list[Message], due: list[tuple[int, str, str, int]]) -> _Batch:
        batch = _Batch()
        self._delivery_errors.clear()
        self._state_offsets.clear()
        self._call(self.producer.begin_transaction)
        try:
            for msg in messages:
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                assert topic is not None
                assert partition is not None
                assert offset is not None
                batch.offsets[(topic, partition)] = offset + 1
                batch.records += 1
                context = RecordContext(topic, partition, offset)
                handling(context)
                if topic == self.topics.inbox:
                    self._fold(msg, batch, Source(topic, partition, offset), context)
                else:
                    self._route(msg, Source(topic, partition, offset))
        finally:
            handling(None)
        for partition, saga_id, token, due_ms in due:
            self._produce(timer_out(self.topics.inbox, partition, saga_id, token, due_ms))
            batch.fired[saga_id] = token
        self.telemetry.timers_fired(len(due))
        crash_point("after-produce")
        self.beat()
        if self._flush(30):
            raise _Abort("records still undelivered after 30 s")
        if self._delivery_errors:
            raise _Abort(f"delivery failed: {self._delivery_errors[0]}")
        if batch.offsets:
            offsets = [TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()]
            metadata = self.consumer.consumer_group_metadata()
            self._call(lambda: self.producer.send_offsets_to_transaction(offsets, metadata, 30))
            crash_point("after-send-offsets")
            stall_point("after-send-offsets")
        began = clock.monotonic()
        self._call(lambda: self.producer.commit_transaction(30))
        crash_point("after-commit")
        self.metrics.commit_seconds.observe(clock.monotonic() - began)
        self.metrics.batch_records.observe(batch.records)
        return batch

    def _fold(self, msg: Message, batch: _Batch, source: Source, context: RecordContext) -> None:
        now = _timestamp(msg)
        folded = fold_record(
            self.registry, self.partitions, source.partition, msg.value(),
            state_of=lambda saga_id: self._state(batch, source.partition, saga_id), now=now,
        )  # fmt: skip
        event, before, definition = folded.event, folded.before, folded.definition
        if event is not None:  # the log context of every line about this record
            context.saga_id = event.saga_id
            if isinstance(event, StepSucceeded | StepFailed):
                context.step, context.attempt = event.step, event.attempt
            elif (
                before is not None
                and definition is not None
                and 0 <= before.step < len(definition.steps)
            ):
                context.step = definition.steps[before.step].name
                context.attempt = before.attempt
        if folded.error is not None and event is not None:
            _log.error("decide raised", saga_id=event.saga_id, exc_info=folded.error)
        if folded.ignored is not None:
            self.telemetry.ignored(folded.ignored)
        if folded.changed is not None:
            assert event is not None
            assert definition is not None
            assert folded.decision is not None
            self._emit(batch, definition, source=source, before=before, event=event,
                       decision=folded.decision, now=now)  # fmt: skip
        if folded.dead_letter is not None:
            letter = folded.dead_letter
            self._dead_letter(msg, source, letter.reason, letter.error_class, letter.detail)

    def _emit(
        self,
        batch: _Batch,
        definition: SagaDefinition,
        *,
        source: Source,
        before: SagaState | None,
        event: Input,
        decision: Decision,
        now: int,
    ) -> None:
        state = decision.state
        assert state is not None
        partition = source.partition
        batch.overlay[state.saga_id] = (partition, state)
        record = state_out(self.topics.state, partition, state)
        assert record.value is not None
        batch.encoded[state.saga_id] = record.value  # the store keeps these very bytes
        self._produce(record, checkpoint=True)
        if self.settings.history:
            self._produce(
                history_out(
                    self.topics.history, partition, before=before.status if before else None,
                    decision=decision, event=event, source=source, at_ms=now,
                )
            )  # fmt: skip
        for effect in decision.effects:
            if isinstance(effect, SendCommand):
                self._produce(command_out(effect, self.topics.inbox, partition, now))
        self.telemetry.folded(
            definition, source, before=before, event=event, after=state, effects=decision.effects
        )

    def _route(self, msg: Message, source: Source) -> None:
        """A trigger -> StartSaga in the saga's inbox partition, in this transaction."""
        sagas = self.registry.for_trigger_topic(source.topic)
        wanted = headers.last_header(_headers(msg), headers.RECORD_TYPE)
        if wanted is not None:
            sagas = tuple(s for s in sagas if s.trigger.event.__name__ == wanted.decode())
        errors: list[str] = []
        routed = 0
        for saga in sagas:
            try:
                saga_id, data = saga.route(msg.value() or b"")
            except Exception as exc:
                errors.append(f"{saga.name}: {type(exc).__name__}: {exc}")
                continue
            partition = partition_for(saga_id, self.partitions)
            self._produce(
                start_out(
                    self.topics.inbox, partition, saga_id=saga_id, saga_type=saga.name,
                    data=data, source=source, at_ms=_timestamp(msg),
                )
            )  # fmt: skip
            routed += 1
        if not routed:
            reason = "bad-trigger" if errors else "unroutable-trigger"
            self._dead_letter(msg, source, reason, "TriggerError", "; ".join(errors)[:1000])
        self.telemetry.routed(routed)

    def _dead_letter(
        self, msg: Message, source: Source, reason: str, error_class: str, message: str
    ) -> None:
        self.telemetry.dead_lettered(reason)
        _log.warning(
            "dead-lettered",
            reason=reason,
            error_class=error_class,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            detail=message,
        )
        self._produce(
            dead_letter_out(
                self.topics.dlq, source, msg.key(), msg.value(), _headers(msg),
                reason=reason, error_class=error_class, message=message, now=clock.wall_ms(),
            )
        )  # fmt: skip

    def _state(self, batch: _Batch, partition: int, saga_id: str) -> SagaState | None:
        if saga_id in batch.overlay:
            return batch.overlay[saga_id][1]
        try:
            return self.store.get(partition, saga_id)
        except DecodeError as exc:
            raise _CorruptState(partition, saga_id, str(exc)) from exc

    # ------------------------------------------------------------------ producing

    def _produce(self, record: OutRecord, *, checkpoint: bool = False) -> None:
        """Queue ``record`` in the open transaction.

        Only state records (``checkpoint``) ask for a delivery report: their offsets are the
        store's checkpoints. Any other record that fails puts the transaction in librdkafka's
        abortable state, and ``commit_transaction`` then raises (ABORT, the batch is redone),
        so a report per record would be a Python call per record for nothing.
        """
        kwargs: dict[str, Any] = {
            "key": record.key,
            "value": record.value,
            "headers": record.headers,
        }
        if record.partition is not None:
            kwargs["partition"] = record.partition
        if checkpoint:
            kwargs["on_delivery"] = self._state_delivered
        for _ in range(_RETRIES * 100):
            try:
                self.producer.produce(record.topic, **kwargs)
                return
            except BufferError:
                self._poll(0.05)
            except KafkaException as exc:
                if _failed_transaction(exc):
                    raise _Abort(f"the transaction already failed: {exc}") from exc
                self._raise_for(exc)
        raise _Abort("producer queue stayed full")

    def _flush(self, timeout: float) -> int:
        """``producer.flush``: the records still undelivered after ``timeout``."""
        return self._surfacing_fatal(lambda: self.producer.flush(timeout))

    def _poll(self, timeout: float) -> None:
        """``producer.poll``: serve delivery reports, making room in the queue."""
        self._surfacing_fatal(lambda: self.producer.poll(timeout))

    def _surfacing_fatal(self, serve: Callable[[], T]) -> T:
        """Run the delivery reports (``flush``/``poll``), surfacing a fatal error as one.

        confluent-kafka raises a producer's fatal error from inside ``poll``/``flush``; if a
        delivery report is due after it in the same call, Python sees a ``SystemError`` whose
        cause is that KafkaException (found when a fenced replica flushed). Either is the same
        fatal error to us.
        """
        try:
            return serve()
        except KafkaException as exc:
            self._raise_for(exc)
        except SystemError as exc:
            cause = exc.__cause__ or exc.__context__
            if not isinstance(cause, KafkaException):
                raise
            self._raise_for(cause)

    def _state_delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(err)
            return
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None
        assert offset is not None
        previous = self._state_offsets.get(partition, -1)
        self._state_offsets[partition] = max(previous, offset + 1)

    def _call(self, fn: Callable[[], T]) -> T:
        """Call a transactional API, retrying RETRIABLE errors, mapping the others."""
        for attempt in range(_RETRIES):
            self.beat()  # each attempt is bounded; the watchdog catches one that is not
            try:
                return fn()
            except KafkaException as exc:
                if classify(exc) is not ErrorClass.RETRIABLE or attempt == _RETRIES - 1:
                    self._raise_for(exc)
                _log.info("retriable Kafka error; calling again", error=str(exc))
        raise AssertionError("unreachable")

    def _raise_for(self, exc: KafkaException) -> NoReturn:
        cls = classify(exc)
        if cls is ErrorClass.ABORT:
            raise _Abort(str(exc)) from exc
        self.metrics.fatal.inc()
        raise FatalError(f"fatal Kafka error ({cls.value}): {exc}") from exc

    # ------------------------------------------------------------------ after commit / abort

    def _apply(self, batch: _Batch) -> None:
        """The commit returned: make the overlay the store's, with the state-topic checkpoints."""
        puts = list(batch.overlay.values())
        if puts or self._state_offsets:
            self.store.apply(StoreBatch.of(puts, (), dict(self._state_offsets), batch.encoded))
        for saga_id in batch.overlay:
            self._fired.pop(saga_id, None)
        for saga_id, token in batch.fired.items():
            # A timer fired from the store's state while this batch also moved its saga (its
            # reply came in): the new state names another timer or none, and remembering the
            # old token would keep it here until a rebalance, lengthening every timer scan.
            changed = batch.overlay.get(saga_id)
            timer = None if changed is None else changed[1].timer
            if changed is None or (timer is not None and timer.token == token):
                self._fired[saga_id] = token
        self.telemetry.committed()
        self.metrics.transactions.inc()

    def _abort_and_rewind(self, first: dict[tuple[str, int], int]) -> None:
        """Abort, then put every partition of the batch back at the batch's first record.

        The previous batch was committed, so those are exactly the committed offsets; seeking
        there needs no broker round trip and no guess for never-committed partitions.
        """
        try:
            self._call(lambda: self.producer.abort_transaction(30))
        except _Abort as exc:
            raise FatalError(f"abort_transaction failed: {exc}") from exc
        self._seek({tp: o for tp, o in first.items() if tp in self.assigned})

    def _seek(self, offsets: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in offsets.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                # Carrying on would skip the records between here and the fetch position.
                raise FatalError(f"cannot rewind {topic}[{partition}] to {offset}: {exc}") from exc

    # ------------------------------------------------------------------ timers

    def _due_timers(self, now: int) -> list[tuple[int, str, str, int]]:
        due = []
        budget = self.settings.timer_scan_limit
        for partition in sorted(self.active):
            for timer in self.store.due_timers(partition, now, budget + len(self._fired)):
                if self._fired.get(timer.saga_id) != timer.token:
                    due.append((partition, timer.saga_id, timer.token, timer.due_ms))
            if len(due) >= budget:
                break
        return due[:budget]

    # ------------------------------------------------------------------ rebalance

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        inbox = [tp for tp in partitions if tp.topic == self.topics.inbox]
        if inbox:
            consumer.pause(inbox)
        if self.gate.closed:  # new sagas are being held: hold these triggers too
            triggers = [tp for tp in partitions if tp.topic != self.topics.inbox]
            if triggers:
                consumer.pause(triggers)
        for tp in partitions:
            self.assigned.add((tp.topic, tp.partition))
        self.pending_restore.update(tp.partition for tp in inbox)
        _log.info(
            "partitions assigned", partitions=[f"{t.topic}[{t.partition}]" for t in partitions]
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # No transaction is open here: consume() is only called between transactions.
        self._drop(partitions)
        _log.info(
            "partitions revoked", partitions=[f"{t.topic}[{t.partition}]" for t in partitions]
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop(partitions)
        _log.warning(
            "partitions lost", partitions=[f"{t.topic}[{t.partition}]" for t in partitions]
        )

    def _drop(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.discard((tp.topic, tp.partition))
            if tp.topic == self.topics.inbox:
                self.active.discard(tp.partition)
                self.pending_restore.discard(tp.partition)
                self.telemetry.partition_dropped(tp.partition)
        if any(tp.topic == self.topics.inbox for tp in partitions):
            self._fired.clear()

    def _repair(self, corrupt: _CorruptState) -> None:
        """Rebuild the partition of an unreadable state (the batch is already rewound)."""
        if not self._rebuilds.take(clock.monotonic()):
            # The same bytes came back from ksaga.state itself (a codec bug): rebuilding again
            # cannot help, and would stall every partition of this replica.
            raise FatalError(f"{corrupt}, again after {_REBUILDS} rebuilds")
        self.metrics.store_rebuilds.inc()
        _log.error(
            "a stored state is unreadable; rebuilding its partition from the state topic",
            partition=corrupt.partition,
            reason=str(corrupt),
        )
        self._rebuild(corrupt.partition)

    def _rebuild(self, partition: int) -> None:
        """Wipe RocksDB's copy of ``partition`` and restore it before folding any more of it.

        The batch was aborted and rewound, so nothing of it reached the store; the restore reads
        the whole state partition (no checkpoint after the wipe), as for a lost disk."""
        self.store.wipe_partition(partition)
        self.active.discard(partition)
        self.telemetry.partition_dropped(partition)
        self._fired.clear()
        self.pending_restore.add(partition)
        self.consumer.pause([TopicPartition(self.topics.inbox, partition)])

    def _restore_pending(self) -> None:
        for partition in sorted(self.pending_restore):
            tp = TopicPartition(self.topics.inbox, partition)
            began = clock.monotonic()
            try:
                # Wait until a previous owner's transaction holding offsets for p is decided.
                self.beat()
                self.consumer.committed([tp], timeout=self.settings.previous_owner_wait_s)
                result = restore_partition(
                    self.store,
                    self.restore_consumer,
                    self.admin,
                    self.topics.state,
                    partition,
                    on_progress=lambda _done, _total: self.beat(),
                )
            except (KafkaException, KsagaError) as exc:
                raise FatalError(f"restore of partition {partition} failed: {exc}") from exc
            self.metrics.restore_seconds.observe(clock.monotonic() - began)
            self.metrics.restored_records.inc(result.records)
            armed = len(self.store.due_timers(partition, MAX_DUE_MS, _ALL_TIMERS))
            self.telemetry.partition_restored(partition, armed)
            self.pending_restore.discard(partition)
            self.active.add(partition)
            self.consumer.resume([tp])


def _failed_transaction(exc: KafkaException) -> bool:
    """``produce`` refused with _STATE: an earlier record of this transaction failed (timed out
    in flight, say), so librdkafka holds the transaction in its abortable state and flags the
    refusal with nothing. Abort: ``abort_transaction`` bumps the epoch and the batch is redone,
    or it raises a fatal error if the producer itself is gone."""
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and not err.fatal() and err.code() == KafkaError._STATE


def _first_offsets(messages: list[Message]) -> dict[tuple[str, int], int]:
    first: dict[tuple[str, int], int] = {}
    for msg in messages:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is not None and partition is not None and offset is not None:
            first.setdefault((topic, partition), offset)
    return first


def _timestamp(msg: Message) -> int:
    _kind, ts = msg.timestamp()
    return ts if ts > 0 else clock.wall_ms()


def _headers(msg: Message) -> list[tuple[str, bytes | None]]:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
