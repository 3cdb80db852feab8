"""Dead-letter headers: why a record was parked in ``ksaga.dlq`` and where it came from.

Its one job is to spell :class:`DeadLetterInfo` as Kafka headers and read it back. A dead letter
keeps the original key and value bytes untouched (so a redrive produces exactly what was
received); everything the operator needs is in these headers, readable with any Kafka tool.

Reading back is strict: a missing or unreadable header raises ``DecodeError`` (reason
``dlq-missing-header`` or ``dlq-invalid-header``), since a redrive must never guess where a
record came from. When a header repeats, the last one wins (Kafka's ``lastHeader``), which is
what a record dead-lettered again after a redrive looks like if its old headers were kept; use
:func:`without_dead_letter_headers` to drop them before adding new ones. ``first_seen_ms`` and
``redrive_count`` carry over such round trips: the first failure is the interesting one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.errors import DecodeError

__all__ = [
    "DLQ_HEADERS",
    "ERROR_CLASS",
    "FIRST_SEEN_MS",
    "MAX_MESSAGE_BYTES",
    "MESSAGE",
    "PREFIX",
    "REASON",
    "REDRIVE_COUNT",
    "SOURCE_OFFSET",
    "SOURCE_PARTITION",
    "SOURCE_TOPIC",
    "DeadLetterInfo",
    "from_headers",
    "to_headers",
    "without_dead_letter_headers",
]

PREFIX = "ksaga.dlq."
REASON = "ksaga.dlq.reason"  # a short tag, e.g. a DecodeError reason: "malformed-body"
ERROR_CLASS = "ksaga.dlq.error_class"  # the exception class name, e.g. "DecodeError"
MESSAGE = "ksaga.dlq.message"  # optional, for humans; at most MAX_MESSAGE_BYTES
SOURCE_TOPIC = "ksaga.dlq.source_topic"
SOURCE_PARTITION = "ksaga.dlq.source_partition"
SOURCE_OFFSET = "ksaga.dlq.source_offset"
FIRST_SEEN_MS = "ksaga.dlq.first_seen_ms"  # epoch ms of the first dead-lettering
REDRIVE_COUNT = "ksaga.dlq.redrive_count"  # optional; how often it was redriven already

DLQ_HEADERS = (
    REASON,
    ERROR_CLASS,
    MESSAGE,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    FIRST_SEEN_MS,
    REDRIVE_COUNT,
)

MAX_MESSAGE_BYTES = 1024
"""A message longer than this is cut: a huge traceback must not make the dead letter itself
too large to produce, which would stall the loop on the very record it tries to park."""

_ELLIPSIS = "…"
_DECIMAL = re.compile(rb"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """Why and from where a record was dead-lettered.

    Integers are non-negative (``ValueError`` otherwise: building a bad one is a bug).
    """

    reason: str
    error_class: str
    source_topic: str
    source_partition: int
    source_offset: int
    first_seen_ms: int
    message: str = ""
    redrive_count: int = 0

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("reason is required: say why the record was parked")
        if not self.source_topic:
            raise ValueError("source_topic is required: a redrive needs to know the origin")
        for name in ("source_partition", "source_offset", "first_seen_ms", "redrive_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
                raise ValueError(f"{name} must be an int in [0, 2**63), got {value!r}")


def _cut(message: str) -> str:
    data = message.encode("utf-8")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    room = MAX_MESSAGE_BYTES - len(_ELLIPSIS.encode("utf-8"))
    return data[:room].decode("utf-8", errors="ignore") + _ELLIPSIS


def to_headers(info: DeadLetterInfo) -> list[tuple[str, bytes]]:
    """The headers to add to a dead letter (the message is cut to ``MAX_MESSAGE_BYTES``)."""
    headers = [
        (REASON, info.reason.encode("utf-8")),
        (ERROR_CLASS, info.error_class.encode("utf-8")),
        (SOURCE_TOPIC, info.source_topic.encode("utf-8")),
        (SOURCE_PARTITION, str(info.source_partition).encode("ascii")),
        (SOURCE_OFFSET, str(info.source_offset).encode("ascii")),
        (FIRST_SEEN_MS, str(info.first_seen_ms).encode("ascii")),
        (REDRIVE_COUNT, str(info.redrive_count).encode("ascii")),
    ]
    if info.message:
        headers.append((MESSAGE, _cut(info.message).encode("utf-8")))
    return headers


_MISSING = object()


def _text(found: dict[str, bytes | None], name: str, default: str | None = None) -> str:
    raw = found.get(name, _MISSING)
    if raw is _MISSING:
        if default is not None:
            return default
        raise DecodeError("dlq-missing-header", f"header {name!r} is missing")
    if not isinstance(raw, bytes):
        raise DecodeError("dlq-invalid-header", f"header {name!r} has no bytes value")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("dlq-invalid-header", f"header {name!r} is not UTF-8") from exc


def _number(found: dict[str, bytes | None], name: str, default: int | None = None) -> int:
    text = _text(found, name, None if default is None else str(default))
    if not _DECIMAL.fullmatch(text.encode("utf-8")):
        raise DecodeError("dlq-invalid-header", f"header {name!r} is not a decimal: {text!r}")
    return int(text)


def from_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> DeadLetterInfo:
    """Read :class:`DeadLetterInfo` back from a record's headers; other headers are ignored."""
    found: dict[str, bytes | None] = {}
    for key, value in headers or ():
        if key.startswith(PREFIX):
            found[key] = value  # the last one wins
    try:
        return DeadLetterInfo(
            reason=_text(found, REASON),
            error_class=_text(found, ERROR_CLASS),
            source_topic=_text(found, SOURCE_TOPIC),
            source_partition=_number(found, SOURCE_PARTITION),
            source_offset=_number(found, SOURCE_OFFSET),
            first_seen_ms=_number(found, FIRST_SEEN_MS),
            message=_text(found, MESSAGE, ""),
            redrive_count=_number(found, REDRIVE_COUNT, 0),
        )
    except ValueError as exc:
        raise DecodeError("dlq-invalid-header", str(exc)) from exc


def without_dead_letter_headers(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> list[tuple[str, bytes | None]]:
    """The headers minus every ``ksaga.dlq.*`` one: the original record's headers, for redrive."""
    return [(key, value) for key, value in headers or () if not key.startswith(PREFIX)]
