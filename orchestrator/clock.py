"""The shell's only clocks. The pure core never reads time: it is handed ``now``.

Kept in one module so ruff's banned-api can forbid clock reads everywhere else, and so tests
could substitute a clock for the shell if they need to.
"""

from __future__ import annotations

import time

__all__ = ["monotonic", "wall_ms", "wall_ns"]


def wall_ms() -> int:
    """Epoch milliseconds: timer due times and record timestamps."""
    return time.time_ns() // 1_000_000


def monotonic() -> float:
    """Seconds for measuring durations and deadlines (never goes back)."""
    return time.monotonic()


def wall_ns() -> int:
    """Epoch nanoseconds: span start and end times (OpenTelemetry's unit)."""
    return time.time_ns()
