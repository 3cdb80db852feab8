"""The participant side of ksaga: consume commands, run a handler once, reply to the inbox.

A service registers one handler per command type (the pydantic model's class name) and runs
the loop; everything Kafka is here, the handler sees a typed payload::

    p = Participant(ParticipantConfig(bootstrap_servers=..., group_id="inventory",
                                      topics=["inventory.commands"], state_dir=Path("state")))

    @p.handles(ReserveStock)
    def reserve(cmd: CommandInfo, payload: ReserveStock) -> StockReserved: ...

    p.run(stop_event)          # or p.run_once() from a test

Per batch: consume up to ``batch_size`` records (read_committed); for each, decode the Command
envelope, look its idempotency key up in the local outcome store, run the handler if there is no
final outcome yet, store a final outcome (synced) and only then produce the reply; flush; commit
the batch's offsets only if every reply and dead letter was delivered, else seek back and do the
batch again (answers come from the store the second time). Replies are at-least-once (the
producer is idempotent but not transactional): the orchestrator ignores a duplicate reply, and
accepts a reply only for the attempt in flight, so a stored outcome is re-sent with the *current*
command's attempt number.

The guarantee, and its honest limit. A final outcome is stored before its reply is produced, so
a participant that crashes after the work but before replying answers the redelivered command
from the store: the handler does not run twice. What remains is the window between the
handler's own external side effect (a row written elsewhere, an API called) and the synced store
write: a crash there re-executes the handler on redelivery. Handlers must be idempotent for that
window (use ``CommandInfo.idempotency_key`` as the external system's idempotency key), or keep
their effect in the same store. Retryable failures and silences are never stored.

Tracing (off unless a ``tracer`` is given): each command gets a span that is a child of the
step span named in the command's W3C ``traceparent`` header, covering decode, de-duplication,
the handler and the outcome store, until its reply is produced; the reply carries that span's
``traceparent``. Without a tracer the command's trace headers are copied to the reply as they are.
Every log line about a command carries its saga id, step, attempt, topic, partition and offset.

Bad input never stops the loop: undecodable bytes, an unregistered ``command_type``, a payload
that fails the model's validation, or a reply that can never be delivered (its topic or
partition does not exist) park the original record in the dead-letter topic with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaException, Message
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from pydantic import BaseModel, ValidationError

from connectors.config import ParticipantConfig
from connectors.delivery import Outbox
from connectors.errors import HandlerError, NoReply
from connectors.outcomes import FinalOutcome, OutcomeKind, OutcomeStore
from connectors.records import (
    BatchOffsets,
    CommandInfo,
    command_info,
    dead_letter_headers,
    original_headers,
    reply_headers,
    reply_value,
)
from orchestrator.clock import wall_ms
from orchestrator.core import Action, idempotency_key
from orchestrator.errors import ConfigError, DecodeError
from orchestrator.kafka import build_client, poll_batch
from orchestrator.lifecycle import ClosedOnExit
from orchestrator.logs import RecordContext, handling
from orchestrator.tracing import extract_context, inject_headers
from schemas.codec import RecordType, SchemaCatalog, default_catalog

__all__ = ["CommandInfo", "Handler", "HandlerResult", "Participant", "ParticipantConfig"]

_log = structlog.get_logger("ksaga.participant")

P = TypeVar("P", bound=BaseModel)
HandlerResult = BaseModel | NoReply | None
"""A reply model, ``None`` (success with an empty payload ``{}``), or ``NoReply()``."""
Handler = Callable[[CommandInfo, P], HandlerResult]


_QUEUED = frozenset({"deduplicated", "succeeded", "failed", "failed_retryable"})
"""Outcomes whose reply is queued: their span ends once the reply is produced."""


@dataclass(frozen=True, slots=True)
class _Route:
    model: type[BaseModel]
    handler: Callable[[CommandInfo, Any], HandlerResult]


@dataclass(frozen=True, slots=True)
class _Retry:
    error_type: str
    message: str


class Participant(ClosedOnExit):
    """Handlers by command type, and the batch loop that feeds them (see the module docstring).

    Counters (``processed``, ``executed``, ``deduplicated``, ``dead_lettered``, ``silent``,
    ``replied``, ``rewinds``) count records since construction. ``on_stored`` is a test hook,
    called after a final outcome is durably stored and before its reply is produced: raising
    from it (or killing the process, as ``ksaga participants`` does under ``KSAGA_CRASH_AT``)
    simulates a crash at the worst moment. ``duplicate_reply`` is a fault-injection hook: when
    it returns True for a command, its reply is produced twice (a duplicate delivery the
    orchestrator must fold once). ``tracer``: an OpenTelemetry tracer for the command spans
    (None: no spans).
    """

    def __init__(
        self,
        config: ParticipantConfig,
        *,
        catalog: SchemaCatalog | None = None,
        clock: Callable[[], int] = wall_ms,
        on_stored: Callable[[CommandInfo], None] | None = None,
        duplicate_reply: Callable[[CommandInfo], bool] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.config = config
        self._duplicate_reply = duplicate_reply
        self._tracer = tracer
        self._catalog = catalog or default_catalog()
        self._clock = clock
        self._on_stored = on_stored
        self._replies: list[tuple[Message, CommandInfo, FinalOutcome | _Retry, Span | None]] = []
        self._stored: list[CommandInfo] = []
        self._routes: dict[str, _Route] = {}
        self._consumer: Any = None
        self._outbox: Outbox | None = None
        self._store: OutcomeStore | None = None
        self.processed = self.executed = self.deduplicated = 0
        self.dead_lettered = self.silent = self.replied = self.rewinds = 0

    # -- registration --

    def handles(self, model: type[P]) -> Callable[[Handler[P]], Handler[P]]:
        """Register the decorated function for commands whose type is ``model.__name__``."""

        def register(handler: Handler[P]) -> Handler[P]:
            self.register(model, handler)
            return handler

        return register

    def register(self, model: type[P], handler: Handler[P]) -> None:
        name = model.__name__
        if name in self._routes:
            raise ConfigError(f"command type {name!r} already has a handler; register it once")
        self._routes[name] = _Route(model, handler)

    @property
    def command_types(self) -> tuple[str, ...]:
        return tuple(self._routes)

    def counters(self) -> dict[str, int]:
        names = ("processed", "executed", "deduplicated", "dead_lettered", "silent", "replied")
        return {name: getattr(self, name) for name in (*names, "rewinds")}

    # -- lifecycle --

    def open(self) -> None:
        """Open the store and the clients, and subscribe (``run_once`` does it on first use)."""
        if self._consumer is not None:
            return
        if not self._routes:
            raise ConfigError("no handler registered: decorate one with @participant.handles")
        cfg = self.config
        self._store = OutcomeStore(cfg.state_dir, sync=cfg.sync_writes)
        self._outbox = build_client(Outbox, cfg.producer_config(), cfg.kafka)
        self._consumer = build_client(Consumer, cfg.consumer_config(), cfg.kafka)
        self._consumer.subscribe(list(cfg.topics))
        _log.info("participant started", group=cfg.group_id, topics=cfg.topics)

    def close(self) -> None:
        """Leave the group, deliver what is queued, close the store. Commits nothing."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._outbox is not None:
            self._outbox.close(self.config.flush_timeout_s)
            self._outbox = None
        if self._store is not None:
            self._store.close()
            self._store = None
            _log.info("participant stopped", group=self.config.group_id, **self.counters())

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set; the last batch is finished and committed."""
        self.open()
        try:
            while not stop.is_set():
                self.run_once()
        finally:
            self.close()

    # -- one batch --

    def run_once(self, timeout: float | None = None) -> int:
        """Consume, process, deliver and commit one batch; returns how many records it had."""
        self.open()
        wait = self.config.poll_timeout_s if timeout is None else timeout
        batch: list[Message] = []
        linger = self.config.batch_linger_s
        for msg in poll_batch(self._consumer, self.config.batch_size, wait, linger):
            err = msg.error()
            if err is None:
                batch.append(msg)
            elif err.fatal():
                raise KafkaException(err)
            else:
                _log.warning("consumer error", error=str(err))
        if not batch:
            return 0
        offsets = BatchOffsets()
        self._replies.clear()
        self._stored.clear()
        try:
            for msg in batch:
                offsets.add(msg)
                self._process(msg)
        finally:
            handling(None)
        # One synced write for the batch's outcomes, and only then its replies: a reply is
        # never produced for an outcome that a crash could still lose.
        assert self._store is not None
        self._store.flush()
        if self._on_stored is not None:
            for info in self._stored:
                self._on_stored(info)
        for source, info, answer, span in self._replies:
            self._reply(source, info, answer, span)
            if span is not None:
                span.end()
        if self._deliver():
            try:
                self._consumer.commit(offsets=offsets.to_commit(), asynchronous=False)
            except KafkaException as exc:  # e.g. revoked meanwhile: the new owner redoes it
                _log.warning("offset commit failed", error=str(exc))
        else:
            self.rewinds += 1
            for tp in offsets.to_rewind():
                try:
                    self._consumer.seek(tp)
                except KafkaException as exc:  # no longer assigned: the new owner redoes it
                    _log.warning("seek back failed", partition=tp.partition, error=str(exc))
        return len(batch)

    def _process(self, msg: Message) -> None:
        """One command; its span (if tracing) ends here unless a reply was queued with it."""
        self.processed += 1
        context = RecordContext(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        handling(context)
        span = None
        if self._tracer is not None:
            span = self._tracer.start_span(
                f"handle {msg.topic()}",
                context=extract_context(original_headers(msg)),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": context.topic,
                    "messaging.destination.partition.id": str(context.partition),
                    "messaging.kafka.offset": context.offset,
                },
            )
        outcome = self._handle(msg, context, span)
        if span is not None:
            span.set_attribute("ksaga.outcome", outcome)
            if outcome in ("dead-lettered", "failed", "failed_retryable"):
                span.set_status(Status(StatusCode.ERROR, outcome))
            if outcome not in _QUEUED:
                span.end()

    def _handle(self, msg: Message, context: RecordContext, span: Span | None) -> str:
        try:
            record = self._catalog.decode_as(RecordType.COMMAND, msg.value())
        except DecodeError as exc:
            self._dead_letter(msg, exc.reason, "DecodeError", str(exc))
            return "dead-lettered"
        info = command_info(record.value, msg)
        context.saga_id, context.step, context.attempt = info.saga_id, info.step, info.attempt
        if span is not None:
            span.update_name(f"handle {info.command_type}")
            span.set_attributes(
                {
                    "ksaga.saga_id": info.saga_id,
                    "ksaga.step": info.step,
                    "ksaga.action": info.action,
                    "ksaga.attempt": info.attempt,
                    "ksaga.command_type": info.command_type,
                }
            )
        route = self._routes.get(info.command_type)
        if route is None:
            known = ", ".join(self._routes)
            message = f"no handler for {info.command_type!r} (handled: {known})"
            self._dead_letter(msg, "unknown-command", "UnknownCommand", message)
            return "dead-lettered"
        try:
            payload = route.model.model_validate_json(record.value["payload"])
        except ValidationError as exc:
            self._dead_letter(msg, "invalid-payload", "ValidationError", str(exc))
            return "dead-lettered"
        assert self._store is not None
        stored = self._store.get(info.idempotency_key)
        if stored is not None:
            self.deduplicated += 1
            _log.info("answered from store", key=info.idempotency_key, attempt=info.attempt)
            self._replies.append((msg, info, stored, span))
            return "deduplicated"
        if info.action == "UNDO":
            self._fence_late_do(info)
        answer = self._execute(route, info, payload)
        if answer is None:
            self.silent += 1
            _log.info("no reply on purpose", key=info.idempotency_key, attempt=info.attempt)
            return "no-reply"
        if isinstance(answer, FinalOutcome):
            self._store.put(info.idempotency_key, answer)
            self._stored.append(info)
        self._replies.append((msg, info, answer, span))
        if isinstance(answer, _Retry):
            return "failed_retryable"
        return "succeeded" if answer.kind is OutcomeKind.SUCCEEDED else "failed"

    def _fence_late_do(self, info: CommandInfo) -> None:
        """Before undoing a step, make sure its DO can never run afterwards.

        The orchestrator undoes a step whose DO timed out (its outcome unknown). If that DO is
        still on its way (a compensation on another topic, a slow redelivery), running it after
        the UNDO would leave an effect nothing undoes. So an UNDO first stores a final FAILED
        outcome under the DO's key when none is there: a late DO is then answered from the store
        and never executed.
        """
        assert self._store is not None
        do_key = idempotency_key(info.saga_id, info.step, Action.DO)
        if self._store.get(do_key) is None:
            self._store.put(
                do_key,
                FinalOutcome(
                    OutcomeKind.FAILED,
                    error_type="Compensated",
                    message="the step was compensated before this command ran",
                    stored_ms=self._clock(),
                ),
            )

    def _execute(
        self, route: _Route, info: CommandInfo, payload: BaseModel
    ) -> FinalOutcome | _Retry | None:
        self.executed += 1
        try:
            result = route.handler(info, payload)
            if isinstance(result, NoReply):
                return None
            if result is not None and not isinstance(result, BaseModel):
                raise TypeError(f"handler returned {type(result).__name__}, not a model or None")
            body = b"{}" if result is None else result.model_dump_json().encode("utf-8")
        except NoReply:
            return None
        except HandlerError as exc:
            _log.info(
                "handler failed",
                key=info.idempotency_key,
                retryable=exc.retryable,
                error_type=exc.error_type,
                message=exc.message,
            )
            if exc.retryable:
                return _Retry(exc.error_type, exc.message)
            return FinalOutcome(
                OutcomeKind.FAILED,
                error_type=exc.error_type,
                message=exc.message,
                stored_ms=self._clock(),
            )
        except Exception as exc:
            name = type(exc).__name__
            _log.warning(
                "handler raised", key=info.idempotency_key, error_type=name, error=str(exc)
            )
            return _Retry(name, str(exc))
        return FinalOutcome(OutcomeKind.SUCCEEDED, payload=body, stored_ms=self._clock())

    # -- producing --

    def _reply(
        self, source: Message, info: CommandInfo, answer: FinalOutcome | _Retry, span: Span | None
    ) -> None:
        if isinstance(answer, FinalOutcome):
            fields = (answer.kind.value, answer.payload, answer.error_type, answer.message)
        else:
            fields = ("FAILED_RETRYABLE", b"", answer.error_type, answer.message)
        value = self._catalog.encode(
            RecordType.REPLY, reply_value(info, *fields, now_ms=self._clock())
        )
        copies = 2 if self._duplicate_reply is not None and self._duplicate_reply(info) else 1
        assert self._outbox is not None
        headers = reply_headers(
            info, original_headers(source), None if span is None else inject_headers(span)
        )
        for _ in range(copies):
            self.replied += 1
            self._outbox.produce(
                source,
                is_reply=True,
                topic=info.reply_topic,
                partition=info.reply_partition,
                key=info.saga_id.encode("utf-8"),
                value=value,
                headers=headers,
            )

    def _dead_letter(self, msg: Message, reason: str, error_class: str, message: str) -> None:
        self.dead_lettered += 1
        where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
        _log.warning("dead-lettered", reason=reason, error_class=error_class, **where)
        headers = dead_letter_headers(msg, reason, error_class, message, self._clock())
        topic = self.config.dlq_topic
        assert self._outbox is not None
        self._outbox.produce(
            msg, is_reply=False, topic=topic, key=msg.key(), value=msg.value(), headers=headers
        )

    def _deliver(self) -> bool:
        """Flush; dead-letter commands whose reply can never be delivered. True if all landed."""
        assert self._outbox is not None
        result = self._outbox.flush(self.config.flush_timeout_s)
        for err in result.errors:
            _log.warning("delivery failed", error=str(err))
        if result.retry:
            return False
        for source, err in result.undeliverable:
            self._dead_letter(source, "undeliverable-reply", "KafkaError", str(err))
        return self._deliver() if result.undeliverable else True
