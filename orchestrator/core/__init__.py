"""The pure saga state machine: ``decide(definition, state, input, now) -> Decision``.

This package imports only the standard library and itself. No Kafka, no RocksDB, no clock, no
randomness, no I/O: ``pyproject.toml`` holds the import-linter contract and ruff's banned-api list
that CI runs to keep it so.
"""

from orchestrator.core.decision import Decision
from orchestrator.core.definition import (
    BuildPayload,
    CompensationDefinition,
    MergeReply,
    SagaDefinition,
    StepDefinition,
    StepKind,
)
from orchestrator.core.effects import (
    ArmTimer,
    CancelTimer,
    Effect,
    FinishSaga,
    Ignore,
    IgnoreReason,
    Reject,
    RejectReason,
    SendCommand,
)
from orchestrator.core.inputs import (
    Input,
    SagaCancelled,
    SagaResumed,
    SagaTriggered,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from orchestrator.core.keys import TimerKind, idempotency_key, timer_token
from orchestrator.core.machine import decide, next_deadline
from orchestrator.core.retry import RetryPolicy
from orchestrator.core.state import Failure, SagaState, Timer
from orchestrator.core.status import TERMINAL, Action, SagaStatus

__all__ = [
    "TERMINAL",
    "Action",
    "ArmTimer",
    "BuildPayload",
    "CancelTimer",
    "CompensationDefinition",
    "Decision",
    "Effect",
    "Failure",
    "FinishSaga",
    "Ignore",
    "IgnoreReason",
    "Input",
    "MergeReply",
    "Reject",
    "RejectReason",
    "RetryPolicy",
    "SagaCancelled",
    "SagaDefinition",
    "SagaResumed",
    "SagaState",
    "SagaStatus",
    "SagaTriggered",
    "SendCommand",
    "StepDefinition",
    "StepFailed",
    "StepKind",
    "StepSucceeded",
    "Timer",
    "TimerFired",
    "TimerKind",
    "decide",
    "idempotency_key",
    "next_deadline",
    "timer_token",
]
