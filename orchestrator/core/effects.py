"""Effects: what the state machine asks the shell to do, named as imperatives.

Effects are plain values. The shell turns them into Kafka records (commands, timers, dead
letters) in the same transaction as the state they came with; the core never performs them.
``Reject`` means the *input* was bad (dead-letter it); ``Ignore`` means the input was a benign
leftover (a duplicate start, a stale reply or timer) that changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from orchestrator.core.status import Action, SagaStatus

__all__ = [
    "ArmTimer",
    "CancelTimer",
    "Effect",
    "FinishSaga",
    "Ignore",
    "IgnoreReason",
    "Reject",
    "RejectReason",
    "SendCommand",
]


@dataclass(frozen=True, slots=True)
class SendCommand:
    saga_id: str
    saga_type: str
    step: str
    action: Action
    attempt: int
    idempotency_key: str
    topic: str
    command_type: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ArmTimer:
    saga_id: str
    token: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    saga_id: str
    token: str


@dataclass(frozen=True, slots=True)
class FinishSaga:
    saga_id: str
    outcome: SagaStatus


class RejectReason(Enum):
    """Why an input is dead-lettered. The value is the ``ksaga.dlq.reason`` header."""

    UNKNOWN_SAGA = "unknown-saga"
    UNKNOWN_STEP = "unknown-step"
    WRONG_SAGA_TYPE = "wrong-saga-type"
    DEFINITION_RAISED = "definition-raised"


class IgnoreReason(Enum):
    """Why an input changed nothing. The value labels ``ksaga_inputs_ignored``."""

    DUPLICATE_START = "duplicate-start"
    STALE_REPLY = "stale-reply"
    STALE_TIMER = "stale-timer"
    NOT_RESUMABLE = "not-resumable"  # a resume for a saga that is not FAILED
    NOT_CANCELLABLE = "not-cancellable"  # a cancel the saga cannot honour (see transitions)


@dataclass(frozen=True, slots=True)
class Reject:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: IgnoreReason
    detail: str


Effect = SendCommand | ArmTimer | CancelTimer | FinishSaga | Reject | Ignore
