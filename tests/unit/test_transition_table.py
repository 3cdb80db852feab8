"""The full product of status x input type: every pair is in the table and does what the rules say.

The expectations below are written from the rules (the prose atop ``transitions.py``), not read
from the table, so a pair wired to the wrong handler fails here.
"""

from __future__ import annotations

import itertools

import pytest

from orchestrator.core import (
    Action,
    Input,
    SagaCancelled,
    SagaDefinition,
    SagaResumed,
    SagaState,
    SagaStatus,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepKind,
    StepSucceeded,
    TimerFired,
    decide,
)
from orchestrator.core.transitions import TABLE
from tests.unit.machine_driver import Run, make_step

DEFINITION = SagaDefinition(
    "t", (make_step("s0", StepKind.COMPENSABLE), make_step("s1", StepKind.COMPENSABLE))
)
STATUSES: list[SagaStatus | None] = [None, *SagaStatus]
INPUTS = [SagaTriggered, StepSucceeded, StepFailed, TimerFired, SagaResumed, SagaCancelled]
REPLIES_AND_TIMERS = [StepSucceeded, StepFailed, TimerFired]


def state_in(status: SagaStatus | None) -> SagaState | None:
    run = Run(DEFINITION)
    if status is None:
        return None
    run.start()

    def reply(ok: bool) -> None:
        s = run.state
        assert s is not None
        name = DEFINITION.steps[s.step].name
        run.feed(
            StepSucceeded(s.saga_id, name, s.action, s.attempt, b"{}")
            if ok
            else StepFailed(s.saga_id, name, s.action, s.attempt, "E", "", False)
        )

    script = {
        SagaStatus.RUNNING: [],
        SagaStatus.COMPENSATING: [True, False],
        SagaStatus.COMPLETED: [True, True],
        SagaStatus.COMPENSATED: [True, False, True],
        SagaStatus.FAILED: [True, False, False],
    }[status]
    for ok in script:
        reply(ok)
    assert run.state is not None
    assert run.state.status is status
    return run.state


def awaited(state: SagaState | None, kind: type[Input]) -> Input:
    """The input of ``kind`` that would matter most to ``state``."""
    saga_id = state.saga_id if state else "saga-1"
    if kind is SagaTriggered:
        return SagaTriggered(saga_id, "t", b"[]")
    if kind is SagaResumed:
        return SagaResumed(saga_id, "ops", "fixed")
    if kind is SagaCancelled:
        return SagaCancelled(saga_id, "ops", "customer called")
    if kind is TimerFired:
        token = state.timer.token if state and state.timer else "s0|DO|1|timeout"
        return TimerFired(saga_id, token)
    step = DEFINITION.steps[state.step].name if state else "s0"
    action = state.action if state else Action.DO
    attempt = state.attempt if state else 1
    if kind is StepSucceeded:
        return StepSucceeded(saga_id, step, action, attempt, b"{}")
    return StepFailed(saga_id, step, action, attempt, "E", "", False)


EXPECTED: dict[tuple[SagaStatus | None, type[Input]], str] = {
    (None, SagaTriggered): "moves",
    (None, StepSucceeded): "rejects",
    (None, StepFailed): "rejects",
    (None, TimerFired): "ignores",
    (None, SagaResumed): "rejects",
    (None, SagaCancelled): "rejects",
    **{(s, SagaTriggered): "ignores" for s in SagaStatus},
    **{
        (s, k): "moves"
        for s in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)
        for k in REPLIES_AND_TIMERS
    },
    **{
        (s, k): "ignores"
        for s in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED)
        for k in REPLIES_AND_TIMERS
    },
    # Rule 10: only a FAILED saga resumes. Rule 11: only a RUNNING saga (here at a compensable
    # step, before any pivot) cancels.
    **{(s, SagaResumed): "ignores" for s in SagaStatus if s is not SagaStatus.FAILED},
    (SagaStatus.FAILED, SagaResumed): "moves",
    **{(s, SagaCancelled): "ignores" for s in SagaStatus if s is not SagaStatus.RUNNING},
    (SagaStatus.RUNNING, SagaCancelled): "moves",
}


def test_the_table_covers_the_whole_product() -> None:
    assert set(TABLE) == set(itertools.product(STATUSES, INPUTS))
    assert set(EXPECTED) == set(TABLE)


@pytest.mark.parametrize(
    ("status", "kind"),
    list(itertools.product(STATUSES, INPUTS)),
    ids=lambda v: getattr(v, "name", None) or getattr(v, "__name__", str(v)),
)
def test_each_pair_does_what_the_rules_say(status: SagaStatus | None, kind: type[Input]) -> None:
    state = state_in(status)
    decision = decide(DEFINITION, state, awaited(state, kind), 2_000_000)
    outcome = EXPECTED[(status, kind)]
    if outcome == "rejects":
        assert decision.rejected is not None
        assert decision.state is state
    elif outcome == "ignores":
        assert decision.ignored is not None
        assert decision.state is state
        assert decision.effects == (decision.ignored,)
    else:
        assert decision.rejected is None
        assert decision.ignored is None
        assert decision.state is not None
        assert decision.state != state
        assert decision.state.version == (state.version + 1 if state else 1)
    if status is not None and status.terminal and kind is not SagaResumed:
        assert not any(isinstance(e, SendCommand) for e in decision.effects)
