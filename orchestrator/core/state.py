"""The saga state: one frozen value per saga, the result of folding its inbox records.

Everything the machine needs to decide the next input is here, and nothing else: the current
step and action, the attempt in flight, the one pending timer, which steps completed, which
still need undoing. The shell stores it (RocksDB, ``ksaga.state``) without understanding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.keys import TimerKind
from orchestrator.core.status import Action, SagaStatus

__all__ = ["Failure", "SagaState", "Timer"]


@dataclass(frozen=True, slots=True)
class Timer:
    """The one wait a saga may have: a reply timeout or a retry backoff."""

    token: str
    due_ms: int
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a saga left the happy path (kept for operators; never drives a decision)."""

    step: str
    action: Action
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class SagaState:
    """A saga between two inputs.

    ``step``/``action``/``attempt`` name the command in flight (or about to be sent again after
    a backoff). While RUNNING, ``completed`` grows with each step whose DO succeeded. When
    compensation begins, ``to_compensate`` is fixed once: the steps to undo, head first, in
    reverse order of completion; each successful UNDO pops the head. ``version`` counts folded
    transitions, so two replicas can compare states cheaply.

    ``first_attempt`` is where the current retry budget began: 1 for every new (step, action),
    and the attempt an operator's resume sent after that. Attempt numbers of one (step, action)
    only ever grow (participants and the log checker rely on it), so a resumed command is attempt
    n + 1, and the policy counts ``attempt - first_attempt + 1`` against its maximum.
    """

    saga_id: str
    saga_type: str
    status: SagaStatus
    data: bytes
    step: int
    action: Action
    attempt: int
    timer: Timer | None
    completed: tuple[int, ...]
    to_compensate: tuple[int, ...]
    failure: Failure | None
    version: int
    started_ms: int
    updated_ms: int
    first_attempt: int = 1

    @property
    def budget_attempt(self) -> int:
        """The attempt in flight, counted within the current retry budget (1-based)."""
        return self.attempt - self.first_attempt + 1
