"""Command records in, reply and dead-letter records out: the participant's record shapes.

Its one job is to spell the records the participant reads and writes (the Command envelope as a
:class:`CommandInfo`, the Reply envelope's fields and headers, a dead letter's headers, the
offsets of a batch). It produces nothing and decides nothing; :mod:`connectors.participant`
does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message, TopicPartition

from schemas import headers as h
from schemas.codec import RecordType
from schemas.deadletter import DeadLetterInfo, to_headers

__all__ = [
    "BatchOffsets",
    "CommandInfo",
    "command_info",
    "dead_letter_headers",
    "original_headers",
    "reply_headers",
    "reply_value",
]

Headers = Sequence[tuple[str, bytes | None]] | None


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """One command attempt as the handler sees it (the envelope minus the payload, plus where
    the record was read from)."""

    saga_id: str
    saga_type: str
    step: str
    action: str  # "DO" or "UNDO"
    attempt: int  # 1 for the first attempt
    idempotency_key: str  # the same for every attempt of (saga, step, action)
    command_type: str
    reply_topic: str
    reply_partition: int
    sent_ms: int
    topic: str
    partition: int
    offset: int


def command_info(value: dict[str, Any], msg: Message) -> CommandInfo:
    """The decoded Command envelope ``value`` of ``msg`` as a :class:`CommandInfo`."""
    return CommandInfo(
        saga_id=value["saga_id"],
        saga_type=value["saga_type"],
        step=value["step"],
        action=value["action"],
        attempt=value["attempt"],
        idempotency_key=value["idempotency_key"],
        command_type=value["command_type"],
        reply_topic=value["reply_topic"],
        reply_partition=value["reply_partition"],
        sent_ms=value["sent_ms"],
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
    )


def reply_value(
    info: CommandInfo,
    outcome: str,
    payload: bytes,
    error_type: str | None,
    message: str | None,
    *,
    now_ms: int,
) -> dict[str, Any]:
    """The Reply envelope for ``info``'s attempt (always the current attempt number)."""
    return {
        "saga_id": info.saga_id,
        "step": info.step,
        "action": info.action,
        "attempt": info.attempt,
        "outcome": outcome,
        "payload": payload,
        "error_type": error_type,
        "message": message,
        "replied_ms": now_ms,
    }


def reply_headers(
    info: CommandInfo, command_headers: Headers, trace_headers: Headers = None
) -> list[tuple[str, bytes]]:
    """Record type, saga id, idempotency key, attempt, and the trace context: the participant's
    span's (``trace_headers``) when it traces, else the command's as it came."""
    out = [
        (h.RECORD_TYPE, RecordType.REPLY.value.encode("utf-8")),
        (h.SAGA_ID, info.saga_id.encode("utf-8")),
        (h.IDEMPOTENCY_KEY, info.idempotency_key.encode("utf-8")),
        (h.ATTEMPT, str(info.attempt).encode("ascii")),
    ]
    trace = command_headers if trace_headers is None else trace_headers
    for name in (h.TRACEPARENT, h.TRACESTATE):
        value = h.last_header(trace, name)
        if value is not None:
            out.append((name, value))
    return out


def dead_letter_headers(
    msg: Message, reason: str, error_class: str, message: str, now_ms: int
) -> list[tuple[str, bytes | None]]:
    """The original record's headers plus the dead-letter headers saying why and from where."""
    info = DeadLetterInfo(
        reason=reason,
        error_class=error_class,
        source_topic=msg.topic() or "",
        source_partition=msg.partition() or 0,
        source_offset=msg.offset() or 0,
        first_seen_ms=now_ms,
        message=message,
    )
    return original_headers(msg) + list(to_headers(info))


def original_headers(msg: Message) -> list[tuple[str, bytes | None]]:
    """``msg``'s headers as (name, bytes) pairs, in order (librdkafka may hand back str)."""
    raw = msg.headers() or ()
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode("utf-8") if isinstance(v, str) else v) for k, v in pairs]


@dataclass(slots=True)
class BatchOffsets:
    """First and last offset of each partition in a batch: what to commit, where to rewind."""

    _first: dict[tuple[str, int], int] = field(default_factory=dict)
    _last: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, msg: Message) -> None:
        key = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        self._first.setdefault(key, offset)
        self._last[key] = max(self._last.get(key, offset), offset)

    def to_commit(self) -> list[TopicPartition]:
        """One past the last record of each partition."""
        return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(self._last.items())]

    def to_rewind(self) -> list[TopicPartition]:
        """The first record of each partition: where to seek to do the batch again."""
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self._first.items())]
