"""Core values <-> Avro envelopes: the only place that knows both shapes.

The state machine speaks frozen dataclasses; Kafka carries single-object-encoded Avro records
(``schemas``). This module maps one to the other and nothing more: no Kafka client, no I/O. A
record that decodes as Avro but cannot be an input (a SagaState in the inbox, an unknown enum
symbol) raises ``DecodeError`` like bytes that do not decode at all, so the loop has one path to
the dead-letter topic.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core import (
    Action,
    Failure,
    Input,
    SagaCancelled,
    SagaResumed,
    SagaState,
    SagaStatus,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepSucceeded,
    Timer,
    TimerFired,
    TimerKind,
)
from orchestrator.errors import DecodeError
from schemas.codec import DecodedRecord, RecordType, SchemaCatalog, default_catalog

__all__ = [
    "command_record",
    "decode_input",
    "decode_state",
    "encode_command",
    "encode_signal",
    "encode_state",
    "input_from_record",
    "signal_record",
    "state_from_record",
    "state_to_record",
]

_INBOX_TYPES = (RecordType.START_SAGA, RecordType.REPLY, RecordType.TIMER_FIRED, RecordType.SIGNAL)


def state_to_record(state: SagaState) -> dict[str, Any]:
    return {
        "saga_id": state.saga_id,
        "saga_type": state.saga_type,
        "status": state.status.name,
        "data": state.data,
        "step": state.step,
        "action": state.action.name,
        "attempt": state.attempt,
        "timer": None
        if state.timer is None
        else {
            "token": state.timer.token,
            "due_ms": state.timer.due_ms,
            "kind": state.timer.kind.name,
        },
        "completed": list(state.completed),
        "to_compensate": list(state.to_compensate),
        "failure": None
        if state.failure is None
        else {
            "step": state.failure.step,
            "action": state.failure.action.name,
            "error_type": state.failure.error_type,
            "message": state.failure.message,
        },
        "version": state.version,
        "started_ms": state.started_ms,
        "updated_ms": state.updated_ms,
        "first_attempt": state.first_attempt,
    }


def state_from_record(value: dict[str, Any]) -> SagaState:
    timer = value["timer"]
    failure = value["failure"]
    return SagaState(
        saga_id=value["saga_id"],
        saga_type=value["saga_type"],
        status=SagaStatus[value["status"]],
        data=value["data"],
        step=value["step"],
        action=Action[value["action"]],
        attempt=value["attempt"],
        timer=None
        if timer is None
        else Timer(timer["token"], timer["due_ms"], TimerKind[timer["kind"]]),
        completed=tuple(value["completed"]),
        to_compensate=tuple(value["to_compensate"]),
        failure=None
        if failure is None
        else Failure(
            failure["step"], Action[failure["action"]], failure["error_type"], failure["message"]
        ),
        version=value["version"],
        started_ms=value["started_ms"],
        updated_ms=value["updated_ms"],
        first_attempt=value["first_attempt"],
    )


def input_from_record(record: DecodedRecord) -> Input:
    """An inbox record -> the state machine's input. Raises ``DecodeError`` for non-inputs."""
    v = record.value
    match record.record_type:
        case RecordType.START_SAGA:
            return SagaTriggered(v["saga_id"], v["saga_type"], v["data"])
        case RecordType.TIMER_FIRED:
            return TimerFired(v["saga_id"], v["token"])
        case RecordType.REPLY:
            action = Action[v["action"]]
            if v["outcome"] == "SUCCEEDED":
                return StepSucceeded(v["saga_id"], v["step"], action, v["attempt"], v["payload"])
            return StepFailed(
                v["saga_id"],
                v["step"],
                action,
                v["attempt"],
                v["error_type"] or "UnspecifiedError",
                v["message"] or "",
                v["outcome"] == "FAILED_RETRYABLE",
            )
        case RecordType.SIGNAL:
            kind = _SIGNALS[v["kind"]]  # the schema's enum: any other symbol fails to decode
            return kind(v["saga_id"], v["requested_by"], v["reason"])
    raise DecodeError(
        "not-an-input",
        f"a {record.record_type} record is not an inbox input (expected one of"
        f" {', '.join(_INBOX_TYPES)})",
    )


_SIGNALS: dict[str, type[SagaResumed | SagaCancelled]] = {
    "RESUME": SagaResumed,
    "CANCEL": SagaCancelled,
}


def signal_record(signal: SagaResumed | SagaCancelled, *, requested_ms: int) -> dict[str, Any]:
    kind = "RESUME" if isinstance(signal, SagaResumed) else "CANCEL"
    return {
        "saga_id": signal.saga_id,
        "kind": kind,
        "requested_by": signal.requested_by,
        "reason": signal.reason,
        "requested_ms": requested_ms,
    }


def command_record(
    command: SendCommand, *, reply_topic: str, reply_partition: int, sent_ms: int
) -> dict[str, Any]:
    return {
        "saga_id": command.saga_id,
        "saga_type": command.saga_type,
        "step": command.step,
        "action": command.action.name,
        "attempt": command.attempt,
        "idempotency_key": command.idempotency_key,
        "command_type": command.command_type,
        "payload": command.payload,
        "reply_topic": reply_topic,
        "reply_partition": reply_partition,
        "sent_ms": sent_ms,
    }


# --------------------------------------------------------------------------- bytes


def encode_state(state: SagaState, catalog: SchemaCatalog | None = None) -> bytes:
    return (catalog or default_catalog()).encode(RecordType.SAGA_STATE, state_to_record(state))


def decode_state(data: bytes, catalog: SchemaCatalog | None = None) -> SagaState:
    record = (catalog or default_catalog()).decode_as(RecordType.SAGA_STATE, data)
    return state_from_record(record.value)


def encode_signal(
    signal: SagaResumed | SagaCancelled, *, requested_ms: int, catalog: SchemaCatalog | None = None
) -> bytes:
    value = signal_record(signal, requested_ms=requested_ms)
    return (catalog or default_catalog()).encode(RecordType.SIGNAL, value)


def decode_input(data: bytes | None, catalog: SchemaCatalog | None = None) -> Input:
    return input_from_record((catalog or default_catalog()).decode(data))


def encode_command(
    command: SendCommand,
    *,
    reply_topic: str,
    reply_partition: int,
    sent_ms: int,
    catalog: SchemaCatalog | None = None,
) -> bytes:
    value = command_record(
        command, reply_topic=reply_topic, reply_partition=reply_partition, sent_ms=sent_ms
    )
    return (catalog or default_catalog()).encode(RecordType.COMMAND, value)
