"""Kafka header names carried by every ksaga record, and how their values are spelled.

Its one job is to name headers once, so the orchestrator, the participant helper and a
participant in another language agree. Headers are a convenience for routing, tracing and
inspection (a participant can skip a command it does not handle without decoding it); the Avro
envelope stays the source of truth, so nothing here is needed to decode a record.

Values are UTF-8 text: strings as they are, integers in ASCII decimal. ``traceparent`` and
``tracestate`` use the W3C Trace Context names so OpenTelemetry propagators find them unchanged.
Dead-letter headers live in :mod:`schemas.deadletter`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ATTEMPT",
    "IDEMPOTENCY_KEY",
    "RECORD_HEADERS",
    "RECORD_TYPE",
    "REPLY_PARTITION",
    "REPLY_TOPIC",
    "SAGA_ID",
    "TRACEPARENT",
    "TRACESTATE",
    "last_header",
]

RECORD_TYPE = "ksaga.type"
"""The envelope's Avro record name, e.g. ``Command`` (``schemas.codec.RecordType``)."""

SAGA_ID = "ksaga.saga_id"
"""The saga id (also the record key on inbox, state, history and command topics)."""

IDEMPOTENCY_KEY = "ksaga.idempotency_key"
"""On commands and replies: the same for every attempt of one (saga, step, action)."""

ATTEMPT = "ksaga.attempt"
"""On commands and replies: the attempt number, 1 for the first."""

REPLY_TOPIC = "ksaga.reply_topic"
"""On commands: where to reply (the same value as the envelope's ``reply_topic``)."""

REPLY_PARTITION = "ksaga.reply_partition"
"""On commands: the partition to reply to (the same value as ``reply_partition``)."""

TRACEPARENT = "traceparent"
"""W3C Trace Context parent, propagated from trigger to commands and replies."""

TRACESTATE = "tracestate"
"""W3C Trace Context vendor state, propagated with ``traceparent`` when present."""

RECORD_HEADERS = (
    RECORD_TYPE,
    SAGA_ID,
    IDEMPOTENCY_KEY,
    ATTEMPT,
    REPLY_TOPIC,
    REPLY_PARTITION,
    TRACEPARENT,
    TRACESTATE,
)
"""Every header name above, for code that copies or strips them."""


def last_header(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """The value of the last header called ``name`` (Kafka allows repeats), or ``None``.

    Last wins, as in Kafka's own ``Headers.lastHeader``: a record re-produced with an updated
    header appended reads as updated.
    """
    found: bytes | None = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found
