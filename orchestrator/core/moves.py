"""The moves every transition is made of: advance a state, send a command, finish, undo.

Shared by the table's handlers (``transitions``) and the operators' (``operators``) so both
build states and effects the same way. Pure like the rest of the core; none of these decides
*whether* to move (that is the table's job), only how.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orchestrator.core.decision import Decision
from orchestrator.core.definition import SagaDefinition, StepDefinition, StepKind
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
from orchestrator.core.keys import TimerKind, idempotency_key, timer_token
from orchestrator.core.retry import RetryPolicy
from orchestrator.core.state import Failure, SagaState, Timer
from orchestrator.core.status import Action, SagaStatus

__all__ = [
    "DefinitionRaised",
    "advance",
    "cancel_pending",
    "compensate",
    "dispatch",
    "finish",
    "ignore",
    "policy_for",
    "reject",
    "user_code",
]


class DefinitionRaised(Exception):
    """User code inside a definition raised; ``decide`` turns this into a Reject."""


def user_code(fn: Callable[..., bytes], *args: bytes) -> bytes:
    try:
        return fn(*args)
    except Exception as exc:
        raise DefinitionRaised(f"{type(exc).__name__}: {exc}") from exc


def advance(state: SagaState, now: int, **changes: Any) -> SagaState:
    return replace(state, version=state.version + 1, updated_ms=now, **changes)


def cancel_pending(state: SagaState) -> tuple[Effect, ...]:
    return (CancelTimer(state.saga_id, state.timer.token),) if state.timer else ()


def policy_for(step: StepDefinition, action: Action) -> RetryPolicy:
    if action is Action.DO:
        return step.retry
    assert step.compensation is not None
    return step.compensation.retry


def dispatch(
    definition: SagaDefinition, state: SagaState, now: int, before: tuple[Effect, ...]
) -> Decision:
    """Send the command ``state`` names and arm its reply timeout."""
    step = definition.steps[state.step]
    if state.action is Action.DO:
        topic, command_type, build, timeout = (
            step.command_topic,
            step.command_type,
            step.build_command,
            step.timeout_ms,
        )
    else:
        comp = step.compensation
        assert comp is not None
        topic, command_type, build, timeout = (
            comp.command_topic,
            comp.command_type,
            comp.build_command,
            comp.timeout_ms,
        )
    payload = user_code(build, state.data)
    timer = Timer(
        timer_token(step.name, state.action, state.attempt, TimerKind.TIMEOUT),
        now + timeout,
        TimerKind.TIMEOUT,
    )
    new = replace(state, timer=timer)
    command = SendCommand(
        saga_id=state.saga_id,
        saga_type=state.saga_type,
        step=step.name,
        action=state.action,
        attempt=state.attempt,
        idempotency_key=idempotency_key(state.saga_id, step.name, state.action),
        topic=topic,
        command_type=command_type,
        payload=payload,
    )
    return Decision(new, (*before, command, ArmTimer(state.saga_id, timer.token, timer.due_ms)))


def finish(state: SagaState, now: int, status: SagaStatus, **changes: Any) -> Decision:
    new = advance(state, now, status=status, timer=None, **changes)
    return Decision(new, (*cancel_pending(state), FinishSaga(state.saga_id, status)))


def ignore(state: SagaState | None, reason: IgnoreReason, detail: str) -> Decision:
    return Decision(state, (Ignore(reason, detail),))


def reject(state: SagaState | None, reason: RejectReason, detail: str) -> Decision:
    return Decision(state, (Reject(reason, detail),))


def compensate(
    definition: SagaDefinition, state: SagaState, now: int, failure: Failure, *, undo_current: bool
) -> Decision:
    """Begin undoing: completed compensable steps in reverse order, preceded by the current step
    when its outcome is unknown (``undo_current``) and it is compensable."""
    steps = definition.steps
    undo = [i for i in reversed(state.completed) if steps[i].kind is StepKind.COMPENSABLE]
    if undo_current and steps[state.step].kind is StepKind.COMPENSABLE:
        undo.insert(0, state.step)
    if not undo:
        return finish(state, now, SagaStatus.COMPENSATED, failure=failure)
    new = advance(
        state,
        now,
        status=SagaStatus.COMPENSATING,
        to_compensate=tuple(undo),
        step=undo[0],
        action=Action.UNDO,
        attempt=1,
        first_attempt=1,
        timer=None,
        failure=failure,
    )
    return dispatch(definition, new, now, cancel_pending(state))
