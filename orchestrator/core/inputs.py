"""Inputs to the state machine: facts, named in the past tense.

Each is decoded by the shell from one inbox record. They carry no clock: ``now`` is passed to
``decide`` separately (the record's timestamp or the timer tick), so folding the same records
again yields the same result. Operator requests (``SagaResumed``, ``SagaCancelled``) are inbox
records too, so they are folded exactly once, in order with the replies and timers of their
saga, by the same transaction that commits their offset.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.status import Action

__all__ = [
    "Input",
    "SagaCancelled",
    "SagaResumed",
    "SagaTriggered",
    "StepFailed",
    "StepSucceeded",
    "TimerFired",
]


@dataclass(frozen=True, slots=True)
class SagaTriggered:
    """A trigger event was routed to this saga (``StartSaga`` on the wire)."""

    saga_id: str
    saga_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StepSucceeded:
    """A participant reports that a command's work is done."""

    saga_id: str
    step: str
    action: Action
    attempt: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class StepFailed:
    """A participant reports that a command's work failed.

    ``retryable`` is the participant's view; the step's policy may still refuse a retry
    (attempts exhausted, or ``error_type`` listed as non-retryable).
    """

    saga_id: str
    step: str
    action: Action
    attempt: int
    error_type: str
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A wait's due time passed (written to the inbox by the timer scanner)."""

    saga_id: str
    token: str


@dataclass(frozen=True, slots=True)
class SagaResumed:
    """An operator fixed what parked a FAILED saga and asks it to try again.

    ``requested_by`` and ``reason`` never drive a decision; they travel with the record for the
    audit trail (the inbox keeps it, the history points at it).
    """

    saga_id: str
    requested_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class SagaCancelled:
    """An operator asks a RUNNING saga to stop going forward and compensate now."""

    saga_id: str
    requested_by: str
    reason: str


Input = SagaTriggered | StepSucceeded | StepFailed | TimerFired | SagaResumed | SagaCancelled
