"""Inputs to the state machine: facts, named in the past tense.

Each is decoded by the shell from one inbox record. They carry no clock: ``now`` is passed to
``decide`` separately (the record's timestamp or the timer tick), so folding the same records
again yields the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.status import Action

__all__ = ["Input", "SagaTriggered", "StepFailed", "StepSucceeded", "TimerFired"]


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


Input = SagaTriggered | StepSucceeded | StepFailed | TimerFired
