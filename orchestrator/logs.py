"""Structured logs of ksaga processes (structlog): one JSON object per line, and per record the
saga and position it is about.

Every line logged while a record is handled carries ``saga_id``, ``step``, ``attempt``,
``topic``, ``partition`` and ``offset`` (those known), without each call site passing them: the
orchestrator loop and the participant put one small :class:`RecordContext` in a ``ContextVar``
per record and fill it in as they learn more, and a processor copies its fields into a line only
when one is written. That is the cheap form of structlog's own ``bind_contextvars``: binding and
resetting five keys per record measured ~6 µs here, one ``ContextVar.set`` ~0.2 µs, and most
records log nothing. Fields passed explicitly at a call site win over the context's.

``KSAGA_LOG_FORMAT`` picks the renderer: ``json`` (the default: one object per line on stderr,
for a log pipeline) or ``console`` (coloured key=value, for a terminal).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import structlog

__all__ = [
    "LOG_FORMATS",
    "RecordContext",
    "add_record_context",
    "configure_logging",
    "handling",
]

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")

_current: ContextVar[RecordContext | None] = ContextVar("ksaga_record", default=None)


@dataclass(slots=True)
class RecordContext:
    """The record being handled; mutable so the handler can add the saga and step it finds."""

    topic: str
    partition: int
    offset: int
    saga_id: str | None = None
    step: str | None = None
    attempt: int | None = None


def handling(context: RecordContext | None) -> None:
    """Make ``context`` the record every following line is about (None: no record)."""
    _current.set(context)


def add_record_context(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current record's known fields, under explicit ones."""
    context = _current.get()
    if context is not None:
        for key in ("saga_id", "step", "attempt", "topic", "partition", "offset"):
            value = getattr(context, key)
            if value is not None:
                event_dict.setdefault(key, value)
    return event_dict


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Configure structlog for this process: level filter, record context, renderer."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_record_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
