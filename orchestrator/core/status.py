"""Saga statuses and step actions: the two enums every other core module speaks."""

from __future__ import annotations

from enum import Enum

__all__ = ["TERMINAL", "Action", "SagaStatus"]


class SagaStatus(Enum):
    """Where a saga is in its life.

    RUNNING and COMPENSATING wait on exactly one command (or its retry backoff). COMPLETED,
    COMPENSATED and FAILED are terminal: they absorb every later reply, timer and start. FAILED
    means a compensation gave up, or a step failed past its pivot: the saga is parked for an
    operator, never silently dropped, and only the operator's resume moves it again.
    """

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED})


class Action(Enum):
    """DO runs a step forward; UNDO runs its compensation."""

    DO = "DO"
    UNDO = "UNDO"
