"""Output of the operator tools: rich tables for a person, JSON for a script.

Every command builds plain rows (dicts of JSON-able values) first and only then renders them,
so ``--json`` prints exactly the data the table shows, with full values (the table may shorten
long ones).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["console", "duration", "iso", "print_json", "print_table", "text_or_hex"]


_NO_WRAP = frozenset({"at", "timestamp", "updated", "started", "position", "saga_id", "source"})
"""Short tokens that read badly when broken over lines; other columns wrap instead."""


def console() -> Console:
    """stdout; not a terminal: no colours, 140 columns unless COLUMNS says otherwise."""
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ
    return Console(width=None if wide else 140)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def print_table(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    out: Console | None = None,
    caption: str | None = None,
) -> None:
    table = Table(title=escape(title), caption=caption, show_lines=False, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in _NO_WRAP)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else escape(str(row.get(c))) for c in columns))
    (out or console()).print(table)


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds, e.g. 2026-05-01T12:00:00.123Z."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def duration(ms: int) -> str:
    """A short human duration: 850ms, 12s, 4m05s, 3h02m, 2d04h."""
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    if ms < 1_000:
        return f"{sign}{ms}ms"
    s = ms // 1_000
    if s < 60:
        return f"{sign}{s}s"
    if s < 3_600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86_400:
        return f"{sign}{s // 3_600}h{s % 3_600 // 60:02d}m"
    return f"{sign}{s // 86_400}d{s % 86_400 // 3_600:02d}h"


def text_or_hex(data: bytes | None) -> str | None:
    """UTF-8 text when the bytes are printable text, ``hex:...`` otherwise."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + data.hex()
    if all(c.isprintable() or c in "\n\t" for c in text):
        return text
    return "hex:" + data.hex()
