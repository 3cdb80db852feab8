"""Deterministic kill -9 at named points of the loop, for the crash-point tests (exactly-once.md).

``KSAGA_CRASH_AT=<point>:<n>`` makes the process SIGKILL itself the n-th time it passes
``<point>`` (an orchestrator point, or a participant point for ``ksaga participants``); unset
(always, in production) every call is a dictionary lookup that returns. A real SIGKILL, not an
exception: no ``finally``, no flush, no close, exactly like a crash.

``KSAGA_STALL_AT=<point>:<n>`` instead blocks the loop forever at that pass, like a Kafka call
that ignores its timeout (the fault the watchdog, ``orchestrator/watchdog.py``, exists for).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["PARTICIPANT_POINTS", "POINTS", "crash_configured", "crash_point", "stall_point"]

POINTS = (
    "after-produce",  # K2: some records produced, offsets not yet sent
    "after-send-offsets",  # K3: offsets in the transaction, not committed
    "after-commit",  # K5: committed, the store not yet written
    "during-restore",  # K8: a restore chunk applied, the restore not finished
)
PARTICIPANT_POINTS = (
    "after-store",  # a participant did the work and synced its outcome, but has not replied
)


def _parse(variable: str) -> tuple[str, int] | None:
    spec = os.environ.get(variable)
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS + PARTICIPANT_POINTS:
        known = ", ".join(POINTS + PARTICIPANT_POINTS)
        raise ValueError(f"{variable}: unknown point {point!r}; one of {known}")
    return point, int(count or "1")


_TARGET = _parse("KSAGA_CRASH_AT")
_STALL = _parse("KSAGA_STALL_AT")
_passes: dict[str, int] = {}
_stall_passes: dict[str, int] = {}


def crash_configured(point: str) -> bool:
    """Whether this process was told to crash at ``point`` (lets callers skip installing hooks)."""
    return _TARGET is not None and _TARGET[0] == point


def crash_point(point: str) -> None:
    if _TARGET is None or _TARGET[0] != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def stall_point(point: str) -> None:
    """Block this thread forever on the n-th pass of ``point`` (see the module docstring)."""
    if _STALL is None or _STALL[0] != point:
        return
    _stall_passes[point] = _stall_passes.get(point, 0) + 1
    if _stall_passes[point] >= _STALL[1]:
        threading.Event().wait()
