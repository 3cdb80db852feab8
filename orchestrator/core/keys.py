"""Deterministic identities: idempotency keys and timer tokens.

Nothing here may be random or time-based: after an aborted transaction the same batch is
decided again and must produce byte-identical records (I5). The idempotency key names the
*work* (saga, step, action) and is the same for every attempt, so a participant answers a retry
from its cache instead of doing the work twice. Timer tokens name one particular wait, so a
``TimerFired`` for any other wait is recognisably stale.
"""

from __future__ import annotations

from enum import Enum

from orchestrator.core.status import Action

__all__ = ["TimerKind", "idempotency_key", "timer_token"]


class TimerKind(Enum):
    """Why a saga waits: for a reply (timeout) or before sending the next attempt (backoff)."""

    TIMEOUT = "timeout"
    BACKOFF = "backoff"


def idempotency_key(saga_id: str, step: str, action: Action) -> str:
    return f"{saga_id}|{step}|{action.value}"


def timer_token(step: str, action: Action, attempt: int, kind: TimerKind) -> str:
    return f"{step}|{action.value}|{attempt}|{kind.value}"
