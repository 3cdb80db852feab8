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
   when the BACKOFF fires, attempt *n + 1* is sent with a new TIMEOUT.
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
   (rejecting only replies for steps that do not exist) and every repeated start.
9. **User code may raise.** If a payload builder or reply merger raises, the input is rejected
   (``DEFINITION_RAISED``) and the state is unchanged; the saga still waits on its timer, so a
   bad reply is eventually retried rather than stuck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeAlias

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
from orchestrator.core.inputs import Input, SagaTriggered, StepFailed, StepSucceeded, TimerFired
from orchestrator.core.keys import TimerKind, idempotency_key, timer_token
from orchestrator.core.retry import RetryPolicy
from orchestrator.core.state import Failure, SagaState, Timer
from orchestrator.core.status import Action, SagaStatus

__all__ = ["TABLE", "DefinitionRaised", "Handler"]

Handler: TypeAlias = Callable[[SagaDefinition, Any, Any, int], Decision]


class DefinitionRaised(Exception):
    """User code inside a definition raised; ``decide`` turns this into a Reject."""


def _user(fn: Callable[..., bytes], *args: bytes) -> bytes:
    try:
        return fn(*args)
    except Exception as exc:
        raise DefinitionRaised(f"{type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- helpers


def _advance(state: SagaState, now: int, **changes: Any) -> SagaState:
    return replace(state, version=state.version + 1, updated_ms=now, **changes)


def _cancel(state: SagaState) -> tuple[Effect, ...]:
    return (CancelTimer(state.saga_id, state.timer.token),) if state.timer else ()


def _policy(step: StepDefinition, action: Action) -> RetryPolicy:
    if action is Action.DO:
        return step.retry
    assert step.compensation is not None
    return step.compensation.retry


def _dispatch(
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
    payload = _user(build, state.data)
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


def _finish(state: SagaState, now: int, status: SagaStatus, **changes: Any) -> Decision:
    new = _advance(state, now, status=status, timer=None, **changes)
    return Decision(new, (*_cancel(state), FinishSaga(state.saga_id, status)))


def _ignore(state: SagaState | None, reason: IgnoreReason, detail: str) -> Decision:
    return Decision(state, (Ignore(reason, detail),))


def _reject(state: SagaState | None, reason: RejectReason, detail: str) -> Decision:
    return Decision(state, (Reject(reason, detail),))


def _awaited(
    definition: SagaDefinition, state: SagaState, reply: StepSucceeded | StepFailed
) -> Decision | None:
    """None if ``reply`` answers the command in flight; else the Decision that disposes of it."""
    index = definition.step_index(reply.step)
    if index is None:
        return _reject(
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
    return _ignore(
        state,
        IgnoreReason.STALE_REPLY,
        f"{reply.step}/{reply.action.value}#{reply.attempt} is not awaited",
    )


# --------------------------------------------------------------------------- handlers


def _start(definition: SagaDefinition, _: None, trigger: SagaTriggered, now: int) -> Decision:
    if trigger.saga_type != definition.name:
        return _reject(
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
    return _dispatch(definition, state, now, ())


def _duplicate_start(
    _definition: SagaDefinition, state: SagaState, _trigger: SagaTriggered, _now: int
) -> Decision:
    return _ignore(state, IgnoreReason.DUPLICATE_START, f"saga is already {state.status.value}")


def _unknown_saga(
    _definition: SagaDefinition, _state: None, reply: StepSucceeded | StepFailed, _now: int
) -> Decision:
    return _reject(None, RejectReason.UNKNOWN_SAGA, f"no saga {reply.saga_id!r}")


def _timer_without_saga(
    _definition: SagaDefinition, _state: None, timer: TimerFired, _now: int
) -> Decision:
    return _ignore(None, IgnoreReason.STALE_TIMER, f"no saga {timer.saga_id!r}")


def _succeeded(
    definition: SagaDefinition, state: SagaState, reply: StepSucceeded, now: int
) -> Decision:
    disposed = _awaited(definition, state, reply)
    if disposed is not None:
        return disposed
    if state.action is Action.UNDO:
        remaining = state.to_compensate[1:]
        if not remaining:
            return _finish(state, now, SagaStatus.COMPENSATED, to_compensate=())
        new = _advance(state, now, to_compensate=remaining, step=remaining[0], attempt=1)
        return _dispatch(definition, new, now, _cancel(state))
    step = definition.steps[state.step]
    data = _user(step.merge_reply, state.data, reply.payload)
    completed = (*state.completed, state.step)
    if state.step + 1 == len(definition.steps):
        return _finish(state, now, SagaStatus.COMPLETED, data=data, completed=completed)
    new = _advance(state, now, data=data, completed=completed, step=state.step + 1, attempt=1)
    return _dispatch(definition, new, now, _cancel(state))


def _failed(definition: SagaDefinition, state: SagaState, reply: StepFailed, now: int) -> Decision:
    disposed = _awaited(definition, state, reply)
    if disposed is not None:
        return disposed
    failure = Failure(reply.step, reply.action, reply.error_type, reply.message)
    policy = _policy(definition.steps[state.step], state.action)
    if reply.retryable and policy.retries(reply.error_type):
        return _retry_or_give_up(definition, state, now, failure, in_doubt=False)
    return _give_up(definition, state, now, failure, in_doubt=False)


def _timer(definition: SagaDefinition, state: SagaState, fired: TimerFired, now: int) -> Decision:
    if state.timer is None or fired.token != state.timer.token:
        return _ignore(state, IgnoreReason.STALE_TIMER, f"timer {fired.token!r} is not pending")
    if state.timer.kind is TimerKind.BACKOFF:
        new = _advance(state, now, timer=None)
        return _dispatch(definition, new, now, _cancel(state))
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
    return _ignore(state, IgnoreReason.STALE_TIMER, f"saga is {state.status.value}")


# --------------------------------------------------------------------------- retry / give up


def _retry_or_give_up(
    definition: SagaDefinition, state: SagaState, now: int, failure: Failure, *, in_doubt: bool
) -> Decision:
    step = definition.steps[state.step]
    policy = _policy(step, state.action)
    if not policy.allows_another_attempt(state.attempt):
        return _give_up(definition, state, now, failure, in_doubt=in_doubt)
    attempt = state.attempt + 1
    timer = Timer(
        timer_token(step.name, state.action, attempt, TimerKind.BACKOFF),
        now + policy.backoff_ms(state.attempt),
        TimerKind.BACKOFF,
    )
    new = _advance(state, now, attempt=attempt, timer=timer, failure=failure)
    return Decision(new, (*_cancel(state), ArmTimer(state.saga_id, timer.token, timer.due_ms)))


def _give_up(
    definition: SagaDefinition, state: SagaState, now: int, failure: Failure, *, in_doubt: bool
) -> Decision:
    """Rule 5 (a DO gives up) and rule 6 (an UNDO gives up)."""
    if state.action is Action.UNDO:
        return _finish(state, now, SagaStatus.FAILED, failure=failure)
    steps = definition.steps
    current = steps[state.step]
    if any(steps[i].kind is StepKind.PIVOT for i in state.completed):
        return _finish(state, now, SagaStatus.FAILED, failure=failure)
    if in_doubt and current.kind is StepKind.PIVOT:
        return _finish(state, now, SagaStatus.FAILED, failure=failure)
    undo = [i for i in reversed(state.completed) if steps[i].kind is StepKind.COMPENSABLE]
    if in_doubt and current.kind is StepKind.COMPENSABLE:
        undo.insert(0, state.step)
    if not undo:
        return _finish(state, now, SagaStatus.COMPENSATED, failure=failure)
    new = _advance(
        state,
        now,
        status=SagaStatus.COMPENSATING,
        to_compensate=tuple(undo),
        step=undo[0],
        action=Action.UNDO,
        attempt=1,
        timer=None,
        failure=failure,
    )
    return _dispatch(definition, new, now, _cancel(state))


# --------------------------------------------------------------------------- the table

_ACTIVE = (SagaStatus.RUNNING, SagaStatus.COMPENSATING)
_TERMINAL = (SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED)

TABLE: dict[tuple[SagaStatus | None, type[Input]], Handler] = {
    (None, SagaTriggered): _start,
    (None, StepSucceeded): _unknown_saga,
    (None, StepFailed): _unknown_saga,
    (None, TimerFired): _timer_without_saga,
    **{(s, SagaTriggered): _duplicate_start for s in (*_ACTIVE, *_TERMINAL)},
    **{(s, StepSucceeded): _succeeded for s in _ACTIVE},
    **{(s, StepFailed): _failed for s in _ACTIVE},
    **{(s, TimerFired): _timer for s in _ACTIVE},
    **{(s, StepSucceeded): _terminal_reply for s in _TERMINAL},
    **{(s, StepFailed): _terminal_reply for s in _TERMINAL},
    **{(s, TimerFired): _terminal_timer for s in _TERMINAL},
}
"""(status, or None for an absent saga; input type) -> handler. Complete by construction:
``tests/unit/test_transition_table.py`` checks every pair of the product is present."""
