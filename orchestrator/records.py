"""Outgoing Kafka records, built from decisions: state, history, commands, timers, starts, DLQ.

Pure construction (no client calls), so the loop's transaction body reads as "decide, then
produce these". Everything here is a function of its arguments: deciding the same batch again
after an abort yields byte-identical records (I5), including the W3C ``traceparent``, which is
derived from the saga id and the command rather than drawn at random.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import traceids
from orchestrator.core import (
    Decision,
    Effect,
    FinishSaga,
    Input,
    SagaState,
    SagaStatus,
    SendCommand,
    StepFailed,
    StepSucceeded,
)
from orchestrator.wire import command_record, state_to_record
from schemas import deadletter, headers
from schemas.codec import RecordType, default_catalog

__all__ = [
    "OutRecord",
    "Source",
    "command_out",
    "dead_letter_out",
    "describe_effect",
    "history_out",
    "start_out",
    "state_out",
    "timer_out",
    "traceparent",
]

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Source:
    """Where an input record came from (for history and dead letters)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    partition: int | None
    key: bytes
    value: bytes | None
    headers: Headers = field(default_factory=list)


def traceparent(command: SendCommand) -> bytes:
    """The command attempt's span in the saga's trace (:mod:`orchestrator.traceids`)."""
    span = traceids.step_span_id(
        command.saga_id, command.step, command.action.value, command.attempt
    )
    return traceids.traceparent(traceids.trace_id(command.saga_id), span)


def state_out(topic: str, partition: int, state: SagaState) -> OutRecord:
    value = default_catalog().encode(RecordType.SAGA_STATE, state_to_record(state))
    return OutRecord(
        topic,
        partition,
        state.saga_id.encode(),
        value,
        [(headers.RECORD_TYPE, b"SagaState"), (headers.SAGA_ID, state.saga_id.encode())],
    )


def describe_effect(effect: Effect) -> str:
    match effect:
        case SendCommand():
            return (
                f"send {effect.command_type} {effect.step}/{effect.action.value}#{effect.attempt}"
            )
        case FinishSaga():
            return f"finish {effect.outcome.value}"
        case _:
            return type(effect).__name__


def history_out(
    topic: str,
    partition: int,
    *,
    before: SagaStatus | None,
    decision: Decision,
    event: Input,
    source: Source,
    at_ms: int,
) -> OutRecord:
    state = decision.state
    assert state is not None
    reply = event if isinstance(event, StepSucceeded | StepFailed) else None
    value = {
        "saga_id": state.saga_id,
        "saga_type": state.saga_type,
        "version": state.version,
        "at_ms": at_ms,
        "input_type": type(event).__name__,
        "step": reply.step if reply else None,
        "action": reply.action.name if reply else None,
        "attempt": reply.attempt if reply else None,
        "status_before": before.name if before else None,
        "status_after": state.status.name,
        "effects": [describe_effect(e) for e in decision.effects],
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
    }
    return OutRecord(
        topic,
        partition,
        state.saga_id.encode(),
        default_catalog().encode(RecordType.HISTORY_EVENT, value),
        [(headers.RECORD_TYPE, b"HistoryEvent"), (headers.SAGA_ID, state.saga_id.encode())],
    )


def command_out(
    command: SendCommand, reply_topic: str, reply_partition: int, now: int
) -> OutRecord:
    value = default_catalog().encode(
        RecordType.COMMAND,
        command_record(
            command, reply_topic=reply_topic, reply_partition=reply_partition, sent_ms=now
        ),
    )
    return OutRecord(
        command.topic,
        None,  # the participant's topic: placed by the murmur2 partitioner on the saga id
        command.saga_id.encode(),
        value,
        [
            (headers.RECORD_TYPE, b"Command"),
            (headers.SAGA_ID, command.saga_id.encode()),
            (headers.IDEMPOTENCY_KEY, command.idempotency_key.encode()),
            (headers.ATTEMPT, str(command.attempt).encode()),
            (headers.REPLY_TOPIC, reply_topic.encode()),
            (headers.REPLY_PARTITION, str(reply_partition).encode()),
            (headers.TRACEPARENT, traceparent(command)),
        ],
    )


def timer_out(inbox: str, partition: int, saga_id: str, token: str, due_ms: int) -> OutRecord:
    value = default_catalog().encode(
        RecordType.TIMER_FIRED, {"saga_id": saga_id, "token": token, "due_ms": due_ms}
    )
    return OutRecord(
        inbox,
        partition,
        saga_id.encode(),
        value,
        [(headers.RECORD_TYPE, b"TimerFired"), (headers.SAGA_ID, saga_id.encode())],
    )


def start_out(
    inbox: str,
    partition: int,
    *,
    saga_id: str,
    saga_type: str,
    data: bytes,
    source: Source,
    at_ms: int,
) -> OutRecord:
    value = default_catalog().encode(
        RecordType.START_SAGA,
        {
            "saga_id": saga_id,
            "saga_type": saga_type,
            "data": data,
            "trigger_topic": source.topic,
            "trigger_partition": source.partition,
            "trigger_offset": source.offset,
            "triggered_ms": at_ms,
        },
    )
    return OutRecord(
        inbox,
        partition,
        saga_id.encode(),
        value,
        [(headers.RECORD_TYPE, b"StartSaga"), (headers.SAGA_ID, saga_id.encode())],
    )


def dead_letter_out(
    dlq: str,
    source: Source,
    key: bytes | None,
    value: bytes | None,
    original_headers: Headers,
    *,
    reason: str,
    error_class: str,
    message: str,
    now: int,
) -> OutRecord:
    """The original bytes untouched, with why and whence in ``ksaga.dlq.*`` headers."""
    info = deadletter.DeadLetterInfo(
        reason=reason,
        error_class=error_class,
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
        first_seen_ms=now,
        message=message,
    )
    kept = deadletter.without_dead_letter_headers(original_headers)
    return OutRecord(dlq, None, key or b"", value, [*kept, *deadletter.to_headers(info)])
