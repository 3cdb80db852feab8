"""The transition table: every (status, input) pair and what it does.

The rules, in prose (the table below is their only implementation):

1. **Start is idempotent.** ``SagaTriggered`` for an absent saga creates it RUNNING at step 0
   and sends that step's DO, attempt 1, with a timeout timer. For a saga that exists, in any
   status, it is ignored: a duplicate trigger maps to the same saga id by construction.
2. **One command in flight.** A RUNNING or COMPENSATING saga waits on exactly one
   (step, action, attempt), either for its reply (a TIMEOUT timer is armed) or before sending it
   (a BACKOFF timer is armed). Only a reply naming exactly that step, action and attempt while
   waiting for a reply moves the saga; any other reply for a known step is stale and ignored.
   A reply naming a step the definition does not have is rejected (dead-lettered).
3. **Forward.** A DO success merges the reply into the saga's data and sends the next step's
   DO; after the last step the saga is COMPLETED.
4. **Retry.** A retryable failure, or a TIMEOUT, of attempt *n* arms a BACKOFF timer for
   attempt *n + 1* if the policy allows another attempt (and the error type is retryable);
   when the BACKOFF fires, attempt *n + 1* is sent with a new TIMEOUT. The policy counts the
   attempts of the current budget (``SagaState.budget_attempt``): every new (step, action)
   starts one, and so does an operator's resume (rule 10).
5. **Give up forward.** A non-retryable failure or exhausted attempts of a DO:
   - if a PIVOT step has completed, nothing can be rolled back: FAILED;
   - if the failing step is a PIVOT whose last attempt timed out, its outcome is unknown and
     undoing the earlier steps could be wrong: FAILED;
   - otherwise compensate, in reverse order of completion, every completed COMPENSABLE step,
     plus the failing step itself when its last attempt timed out (the participant may have
     done the work; its UNDO must cope with "nothing to undo"). Nothing to undo: COMPENSATED.
   Once compensation has begun no DO is ever sent again.
6. **Backward.** An UNDO success pops the head of ``to_compensate`` and sends the next UNDO;
   when none is left the saga is COMPENSATED. An UNDO gives up (non-retryable or exhausted):
   FAILED, parked for an operator with the failure recorded; remaining UNDOs are not sent,
   because compensations run strictly in reverse order.
7. **Timers are tokens.** ``TimerFired`` acts only if its token is the saga's pending timer;
   a repeated or stale one (a zombie's, a crash's second firing) is ignored. Every timer that
   stops being pending (fired, replaced or cleared) is named in a ``CancelTimer`` effect, so the
   shell's due-time index can follow the effects alone.
8. **Terminal states absorb.** COMPLETED, COMPENSATED and FAILED ignore every reply and timer
   (rejecting only replies for steps that do not exist), every repeated start and every
   cancel. The one way out is rule 10: an operator's resume of a FAILED saga.
9. **User code may raise.** If a payload builder or reply merger raises, the input is rejected
   (``DEFINITION_RAISED``) and the state is unchanged; the saga still waits on its timer, so a
   bad reply is eventually retried rather than stuck.
10. **Resume (operator).** ``SagaResumed`` of a FAILED saga sends again exactly the command it
   gave up on, as attempt *n + 1* (attempt numbers of one step and action only grow; the
   idempotency key is unchanged, so a participant that did the work answers from its store)
   with a fresh retry budget and a new TIMEOUT:
   - an UNDO that gave up: the saga is COMPENSATING again, on the same ``to_compensate``;
   - a DO that gave up past a completed pivot: RUNNING again, forward (nothing can be undone);
   - a pivot whose outcome is unknown: RUNNING, its DO sent again; its answer settles the
     doubt (success goes on, a failure compensates the earlier steps as rule 5 says).
   Nothing else changes: the data, the completed steps and the recorded failure stay. A resume
   of a saga that is not FAILED is ignored (``NOT_RESUMABLE``); of an absent saga, rejected.
   A participant that stored a *final* failure under the key answers the resumed attempt with
   it again: resume helps when the cause was transient or has been fixed at the participant.
11. **Cancel (operator).** ``SagaCancelled`` of a RUNNING saga stops it going forward: the
   completed compensable steps are undone in reverse order, preceded by the step in flight if
   it is compensable. That step's DO was sent (it is sent on entering the step) and its outcome
   is unknown, so it is in doubt exactly like a timed-out step (rule 5); a read-only step in
   flight needs no undo. Nothing to undo: COMPENSATED at once. The failure recorded is
   ``Cancelled`` with who asked and why. Cancel is refused (ignored, ``NOT_CANCELLABLE``) when
   it cannot be honoured safely: once a pivot has completed, or while a pivot is in flight
   (its DO was sent, so it may already have happened; the saga goes on and its outcome
   decides, as if no cancel had come). A COMPENSATING or terminal saga ignores a cancel too;
   an absent one rejects it. Replies to the DO in flight that arrive after the cancel are stale
   (they name DO, the saga awaits an UNDO) and are ignored, as are its timers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from orchestrator.core.decision import Decision
from orchestrator.core.definition import SagaDefinition, StepKind
from orchestrator.core.effects import ArmTimer, IgnoreReason, RejectReason
from orchestrator.core.inputs import (
    Input,
    SagaCancelled,
    SagaResumed,
    SagaTriggered,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from orchestrator.core.keys import TimerKind, timer_token
from orchestrator.core.moves import (
    DefinitionRaised,
    advance,
    cancel_pending,
    compensate,
    dispatch,
    finish,
    ignore,
    policy_for,
    reject,
    user_code,
)
from orchestrator.core.operators import cancel_running, not_cancellable, not_resumable, resume
from orchestrator.core.state import Failure, SagaState, Timer
from orchestrator.core.status import Action, SagaStatus

__all__ = ["TABLE", "DefinitionRaised", "Handler"]

Handler: TypeAlias = Callable[[SagaDefinition, Any, Any, int], Decision]


def _awaited(
    definition: SagaDefinition, state: SagaState, reply: StepSucceeded | StepFailed
) -> Decision | None:
    """None if ``reply`` answers the command in flight; else the Decision that disposes of it."""
    index = definition.step_index(reply.step)
    if index is None:
        return reject(
            state,
            RejectReason.UNKNOWN_STEP,
            f"saga type {state.saga_type!r} has no step {reply.step!r}",
        )
    waiting = (
        not state.status.terminal
        and state.timer is not None
        and state.timer.kind is TimerKind.TIMEOUT
        and (index, reply.action, reply.attempt) == (state.step, state.action, state.attempt)
    )
    if waiting:
        return None
    return ignore(
        state,
        IgnoreReason.STALE_REPLY,
        f"{reply.step}/{reply.action.value}#{reply.attempt} is not awaited",
    )


# --------------------------------------------------------------------------- handlers


def _start(definition: SagaDefinition, _: None, trigger: SagaTriggered, now: int) -> Decision:
    if trigger.saga_type != definition.name:
        return reject(
            None,
            RejectReason.WRONG_SAGA_TYPE,
            f"start for {trigger.saga_type!r} decided with definition {definition.name!r}",
        )
    state = SagaState(
        saga_id=trigger.saga_id,
        saga_type=trigger.saga_type,
        status=SagaStatus.RUNNING,
        data=trigger.data,
        step=0,
        action=Action.DO,
        attempt=1,
        timer=None,
        completed=(),
        to_compensate=(),
        failure=None,
        version=1,
        started_ms=now,
        updated_ms=now,
    )
    return dispatch(definition, state, now, ())


def _duplicate_start(
    _definition: SagaDefinition, state: SagaState, _trigger: SagaTriggered, _now: int
) -> Decision:
    return ignore(state, IgnoreReason.DUPLICATE_START, f"saga is already {state.status.value}")


def _unknown_saga(
    _definition: SagaDefinition,
    _state: None,
    event: StepSucceeded | StepFailed | SagaResumed | SagaCancelled,
    _now: int,
) -> Decision:
    return reject(None, RejectReason.UNKNOWN_SAGA, f"no saga {event.saga_id!r}")


def _timer_without_saga(
    _definition: SagaDefinition, _state: None, timer: TimerFired, _now: int
) -> Decision:
    return ignore(None, IgnoreReason.STALE_TIMER, f"no saga {timer.saga_id!r}")


def _succeeded(
    definition: SagaDefinition, state: SagaState, reply: StepSucceeded, now: int
) -> Decision:
    disposed = _awaited(definition, state, reply)
    if disposed is not None:
        return disposed
    if state.action is Action.UNDO:
        remaining = state.to_compensate[1:]
        if not remaining:
            return finish(state, now, SagaStatus.COMPENSATED, to_compensate=())
        new = advance(
            state, now, to_compensate=remaining, step=remaining[0], attempt=1, first_attempt=1
        )
        return dispatch(definition, new, now, cancel_pending(state))
    step = definition.steps[state.step]
    data = user_code(step.merge_reply, state.data, reply.payload)
    completed = (*state.completed, state.step)
    if state.step + 1 == len(definition.steps):
        return finish(state, now, SagaStatus.COMPLETED, data=data, completed=completed)
    new = advance(
        state,
        now,
        data=data,
        completed=completed,
        step=state.step + 1,
        attempt=1,
        first_attempt=1,
    )
    return dispatch(definition, new, now, cancel_pending(state))


def _failed(definition: SagaDefinition, state: SagaState, reply: StepFailed, now: int) -> Decision:
    disposed = _awaited(definition, state, reply)
    if disposed is not None:
        return disposed
    failure = Failure(reply.step, reply.action, reply.error_type, reply.message)
    policy = policy_for(definition.steps[state.step], state.action)
    if reply.retryable and policy.retries(reply.error_type):
        return _retry_or_give_up(definition, state, now, failure, in_doubt=False)
    return _give_up(definition, state, now, failure, in_doubt=False)


def _timer(definition: SagaDefinition, state: SagaState, fired: TimerFired, now: int) -> Decision:
    if state.timer is None or fired.token != state.timer.token:
        return ignore(state, IgnoreReason.STALE_TIMER, f"timer {fired.token!r} is not pending")
    if state.timer.kind is TimerKind.BACKOFF:
        new = advance(state, now, timer=None)
        return dispatch(definition, new, now, cancel_pending(state))
    step = definition.steps[state.step]
    failure = Failure(step.name, state.action, "timeout", f"no reply to attempt {state.attempt}")
    return _retry_or_give_up(definition, state, now, failure, in_doubt=True)


def _terminal_reply(
    definition: SagaDefinition, state: SagaState, reply: StepSucceeded | StepFailed, _now: int
) -> Decision:
    disposed = _awaited(definition, state, reply)
    assert disposed is not None, "a terminal saga awaits nothing"
    return disposed


def _terminal_timer(
    _definition: SagaDefinition, state: SagaState, fired: TimerFired, _now: int
) -> Decision:
    return ignore(state, IgnoreReason.STALE_TIMER, f"saga is {state.status.value}")


# --------------------------------------------------------------------------- retry / give up


def _retry_or_give_up(
    definition: SagaDefinition, state: SagaState, now: int, failure: Failure, *, in_doubt: bool
) -> Decision:
    step = definition.steps[state.step]
    policy = policy_for(step, state.action)
    if not policy.allows_another_attempt(state.budget_attempt):
        return _give_up(definition, state, now, failure, in_doubt=in_doubt)
    attempt = state.attempt + 1
    timer = Timer(
        timer_token(step.name, state.action, attempt, TimerKind.BACKOFF),
        now + policy.backoff_ms(state.budget_attempt),
        TimerKind.BACKOFF,
    )
    new = advance(state, now, attempt=attempt, timer=timer, failure=failure)
    return Decision(
        new, (*cancel_pending(state), ArmTimer(state.saga_id, timer.token, timer.due_ms))
    )


def _give_up(
    definition: SagaDefinition, state: SagaState, now: int, failure: Failure, *, in_doubt: bool
) -> Decision:
    """Rule 5 (a DO gives up) and rule 6 (an UNDO gives up)."""
    if state.action is Action.UNDO:
        return finish(state, now, SagaStatus.FAILED, failure=failure)
    steps = definition.steps
    current = steps[state.step]
    if any(steps[i].kind is StepKind.PIVOT for i in state.completed):
        return finish(state, now, SagaStatus.FAILED, failure=failure)
    if in_doubt and current.kind is StepKind.PIVOT:
        return finish(state, now, SagaStatus.FAILED, failure=failure)
    return compensate(definition, state, now, failure, undo_current=in_doubt)


# --------------------------------------------------------------------------- the table

_ACTIVE = (SagaStatus.RUNNING, SagaStatus.COMPENSATING)
_TERMINAL = (SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED)

TABLE: dict[tuple[SagaStatus | None, type[Input]], Handler] = {
    (None, SagaTriggered): _start,
    (None, StepSucceeded): _unknown_saga,
    (None, StepFailed): _unknown_saga,
    (None, TimerFired): _timer_without_saga,
    (None, SagaResumed): _unknown_saga,
    (None, SagaCancelled): _unknown_saga,
    **{(s, SagaTriggered): _duplicate_start for s in (*_ACTIVE, *_TERMINAL)},
    **{(s, StepSucceeded): _succeeded for s in _ACTIVE},
    **{(s, StepFailed): _failed for s in _ACTIVE},
    **{(s, TimerFired): _timer for s in _ACTIVE},
    **{(s, StepSucceeded): _terminal_reply for s in _TERMINAL},
    **{(s, StepFailed): _terminal_reply for s in _TERMINAL},
    **{(s, TimerFired): _terminal_timer for s in _TERMINAL},
    (SagaStatus.FAILED, SagaResumed): resume,
    **{
        (s, SagaResumed): not_resumable
        for s in (*_ACTIVE, *_TERMINAL)
        if s is not SagaStatus.FAILED
    },
    (SagaStatus.RUNNING, SagaCancelled): cancel_running,
    **{(s, SagaCancelled): not_cancellable for s in (SagaStatus.COMPENSATING, *_TERMINAL)},
}
"""(status, or None for an absent saga; input type) -> handler. Complete by construction:
``tests/unit/test_transition_table.py`` checks every pair of the product is present."""
