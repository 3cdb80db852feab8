"""The operators' transitions: resume a FAILED saga, cancel a RUNNING one (rules 10 and 11).

The rules are written with the others atop ``transitions``, whose table routes
``SagaResumed`` and ``SagaCancelled`` here. An operator's request is an inbox record like a
reply, so it is folded exactly once, in order with its saga's other inputs.
"""

from __future__ import annotations

from orchestrator.core.decision import Decision
from orchestrator.core.definition import SagaDefinition, StepKind
from orchestrator.core.effects import IgnoreReason
from orchestrator.core.inputs import SagaCancelled, SagaResumed
from orchestrator.core.moves import advance, cancel_pending, compensate, dispatch, ignore
from orchestrator.core.state import Failure, SagaState
from orchestrator.core.status import Action, SagaStatus

__all__ = ["cancel_running", "not_cancellable", "not_resumable", "resume"]


def resume(definition: SagaDefinition, state: SagaState, _: SagaResumed, now: int) -> Decision:
    """Rule 10: the command the saga gave up on, once more, as the next attempt."""
    status = SagaStatus.COMPENSATING if state.action is Action.UNDO else SagaStatus.RUNNING
    attempt = state.attempt + 1
    new = advance(state, now, status=status, attempt=attempt, first_attempt=attempt, timer=None)
    return dispatch(definition, new, now, cancel_pending(state))


def not_resumable(
    _definition: SagaDefinition, state: SagaState, _: SagaResumed, _now: int
) -> Decision:
    return ignore(
        state, IgnoreReason.NOT_RESUMABLE, f"saga is {state.status.value}; only FAILED resumes"
    )


def cancel_running(
    definition: SagaDefinition, state: SagaState, cancel: SagaCancelled, now: int
) -> Decision:
    """Rule 11: compensate now, the step in flight in doubt; never past a pivot."""
    steps = definition.steps
    current = steps[state.step]
    if any(steps[i].kind is StepKind.PIVOT for i in state.completed):
        return ignore(
            state, IgnoreReason.NOT_CANCELLABLE, "a pivot has completed: only forward is left"
        )
    if current.kind is StepKind.PIVOT:
        return ignore(
            state,
            IgnoreReason.NOT_CANCELLABLE,
            f"pivot {current.name!r} is in flight: its outcome decides",
        )
    why = f"cancelled by {cancel.requested_by}" + (f": {cancel.reason}" if cancel.reason else "")
    failure = Failure(current.name, state.action, "Cancelled", why)
    return compensate(definition, state, now, failure, undo_current=True)


def not_cancellable(
    _definition: SagaDefinition, state: SagaState, _: SagaCancelled, _now: int
) -> Decision:
    return ignore(
        state, IgnoreReason.NOT_CANCELLABLE, f"saga is {state.status.value}; only RUNNING cancels"
    )
