"""The operator's spellings of positions, instants and durations, parsed strictly.

``2:17`` is partition 2, offset 17; ``10m`` is ten minutes; an instant is ISO 8601 (a naive one
is UTC) or epoch milliseconds. A bad spelling is a usage error with an example of a good one
(``click.BadParameter``, exit 2), never a guess.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import click

__all__ = [
    "DURATION",
    "INSTANT",
    "POSITION",
    "Position",
    "parse_duration_ms",
    "parse_instant_ms",
    "parse_position",
]

Position = tuple[int, int]
_POSITION = re.compile(r"^(\d{1,5}):(\d{1,19})$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_position(text: str) -> Position:
    """``"p:o"`` -> (partition, offset)."""
    match = _POSITION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not partition:offset, e.g. 2:17")
    return int(match[1]), int(match[2])


def parse_duration_ms(text: str) -> int:
    """``"10m"`` -> 600000 (units ms, s, m, h, d)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration, e.g. 90s, 10m, 2h or 1d")
    return int(match[1]) * _UNIT_MS[match[2]]


def parse_instant_ms(text: str) -> int:
    """ISO 8601 (naive = UTC) or epoch milliseconds -> epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither epoch milliseconds nor ISO 8601, e.g. 2026-05-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class _Parsed(click.ParamType):  # type: ignore[type-arg]
    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


POSITION = _Parsed("PARTITION:OFFSET", parse_position)
DURATION = _Parsed("DURATION", parse_duration_ms)
INSTANT = _Parsed("ISO|MS", parse_instant_ms)
