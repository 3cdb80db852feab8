"""Timeline tests of the state machine: explicit inputs, explicit ``now``, exact effects."""

from __future__ import annotations

import dataclasses
import json

import pytest

from orchestrator.core import (
    Action,
    ArmTimer,
    CancelTimer,
    FinishSaga,
    Ignore,
    IgnoreReason,
    Reject,
    RejectReason,
    RetryPolicy,
    SagaDefinition,
    SagaStatus,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepKind,
    StepSucceeded,
    TimerFired,
    TimerKind,
    decide,
    idempotency_key,
    next_deadline,
)
from tests.unit.machine_driver import Run, make_step

T0 = 1_000_000
C, P, R = StepKind.COMPENSABLE, StepKind.PIVOT, StepKind.READ_ONLY


def saga(*kinds: StepKind, retry: RetryPolicy | None = None) -> SagaDefinition:
    policy = retry or RetryPolicy(initial_interval_ms=100, maximum_attempts=3)
    steps = tuple(
        make_step(f"s{i}", k, retry=policy, undo_retry=policy, timeout_ms=1_000)
        for i, k in enumerate(kinds)
    )
    return SagaDefinition(name="t", steps=steps)


def ok(run: Run, payload: bytes = b"{}") -> None:
    s = run.state
    assert s is not None
    run.feed(
        StepSucceeded(run.saga_id, run.definition.steps[s.step].name, s.action, s.attempt, payload)
    )


def fail(run: Run, *, retryable: bool = False, error_type: str = "Boom") -> None:
    s = run.state
    assert s is not None
    run.feed(
        StepFailed(
            run.saga_id,
            run.definition.steps[s.step].name,
            s.action,
            s.attempt,
            error_type,
            "it broke",
            retryable,
        )
    )


def fire(run: Run) -> None:
    s = run.state
    assert s is not None
    assert s.timer is not None
    run.feed(TimerFired(run.saga_id, s.timer.token), now=s.timer.due_ms)


def status(run: Run) -> SagaStatus:
    assert run.state is not None
    return run.state.status


def sent(run: Run) -> list[tuple[str, Action, int]]:
    return [(c.step, c.action, c.attempt) for c in run.commands]


def test_start_sends_first_do_and_arms_its_timeout() -> None:
    run = Run(saga(C, C, P), now=T0)
    decision = run.start()
    assert decision.state is not None
    assert decision.state.status is SagaStatus.RUNNING
    assert decision.effects == (
        SendCommand(
            saga_id="saga-1",
            saga_type="t",
            step="s0",
            action=Action.DO,
            attempt=1,
            idempotency_key=idempotency_key("saga-1", "s0", Action.DO),
            topic="s0.commands",
            command_type="Dos0",
            payload=b'{"step": "s0", "action": "DO", "data": []}',
        ),
        ArmTimer("saga-1", "s0|DO|1|timeout", T0 + 1_000),
    )
    assert next_deadline(decision.state) == T0 + 1_000


def test_happy_path_completes_and_merges_every_reply() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    for _ in range(3):
        ok(run)
    assert run.state is not None
    assert status(run) is SagaStatus.COMPLETED
    assert json.loads(run.state.data) == ["s0", "s1", "s2"]
    assert run.state.timer is None
    assert next_deadline(run.state) is None
    assert sent(run) == [("s0", Action.DO, 1), ("s1", Action.DO, 1), ("s2", Action.DO, 1)]
    assert run.decisions[-1].effects[-1] == FinishSaga("saga-1", SagaStatus.COMPLETED)


def test_duplicate_start_changes_nothing_in_any_status() -> None:
    run = Run(saga(C, P), now=T0)
    run.start()
    before = run.state
    decision = run.start()
    assert decision.state is before
    assert decision.effects == (Ignore(IgnoreReason.DUPLICATE_START, "saga is already RUNNING"),)
    ok(run)
    ok(run)
    assert run.start().ignored is not None


def test_non_retryable_failure_compensates_completed_steps_in_reverse_order() -> None:
    run = Run(saga(C, R, C, C, P), now=T0)
    run.start()
    ok(run)  # s0, s1 (read-only), s2 completed
    ok(run)
    ok(run)
    fail(run, retryable=False)  # s3 fails for good
    assert run.state is not None
    assert status(run) is SagaStatus.COMPENSATING
    assert run.state.to_compensate == (2, 0)  # read-only s1 has nothing to undo
    ok(run)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    assert sent(run)[4:] == [("s2", Action.UNDO, 1), ("s0", Action.UNDO, 1)]
    assert run.state.failure is not None
    assert run.state.failure.step == "s3"


def test_failure_of_the_first_step_has_nothing_to_undo() -> None:
    run = Run(saga(C, P), now=T0)
    run.start()
    fail(run)
    assert run.state is not None
    assert status(run) is SagaStatus.COMPENSATED
    assert sent(run) == [("s0", Action.DO, 1)]


def test_retryable_failure_backs_off_then_sends_the_next_attempt() -> None:
    policy = RetryPolicy(initial_interval_ms=100, backoff_coefficient=3.0, maximum_attempts=3)
    run = Run(saga(C, P, retry=policy), now=T0)
    run.start()
    fail(run, retryable=True)
    assert run.state is not None
    assert run.state.timer is not None
    assert run.state.timer.kind is TimerKind.BACKOFF
    assert run.state.timer.due_ms == T0 + 100
    assert run.commands[-1].attempt == 1  # nothing sent during the backoff
    fire(run)
    assert sent(run)[-1] == ("s0", Action.DO, 2)
    fail(run, retryable=True)
    assert run.state.timer is not None
    assert run.state.timer.due_ms == T0 + 100 + 300
    fire(run)
    fail(run, retryable=True)  # third attempt fails: exhausted
    assert status(run) is SagaStatus.COMPENSATED
    keys = {c.idempotency_key for c in run.commands}
    assert keys == {idempotency_key("saga-1", "s0", Action.DO)}  # stable across attempts


def test_non_retryable_error_type_is_not_retried_even_if_flagged_retryable() -> None:
    policy = RetryPolicy(maximum_attempts=5, non_retryable_error_types=("CardDeclined",))
    run = Run(saga(C, P, retry=policy), now=T0)
    run.start()
    fail(run, retryable=True, error_type="CardDeclined")
    assert run.state is not None
    assert status(run) is SagaStatus.COMPENSATED


def test_timeouts_retry_and_an_in_doubt_compensable_step_is_undone_too() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    ok(run)  # s0 done
    for _ in range(3):  # s1 times out three times: outcome unknown
        fire(run)  # timeout
        if run.state is not None and run.state.status is SagaStatus.RUNNING:
            fire(run)  # backoff
    assert run.state is not None
    assert status(run) is SagaStatus.COMPENSATING
    assert run.state.to_compensate == (1, 0)
    ok(run)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    assert sent(run)[-2:] == [("s1", Action.UNDO, 1), ("s0", Action.UNDO, 1)]


def test_a_timed_out_pivot_parks_the_saga_as_failed() -> None:
    run = Run(saga(C, P, retry=RetryPolicy(maximum_attempts=1)), now=T0)
    run.start()
    ok(run)
    fire(run)  # pivot's only attempt times out: shipped or not, nobody knows
    assert run.state is not None
    assert status(run) is SagaStatus.FAILED
    assert all(c.action is Action.DO for c in run.commands)


def test_failure_after_a_completed_pivot_is_failed_not_compensated() -> None:
    run = Run(saga(C, P, R), now=T0)
    run.start()
    ok(run)
    ok(run)
    fail(run)
    assert run.state is not None
    assert status(run) is SagaStatus.FAILED
    assert all(c.action is Action.DO for c in run.commands)


def test_a_compensation_that_gives_up_parks_the_saga_as_failed() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    ok(run)
    ok(run)
    fail(run)  # pivot fails: undo s1 then s0
    fail(run, retryable=True)
    fire(run)
    fail(run)  # s1's UNDO fails for good
    assert run.state is not None
    assert status(run) is SagaStatus.FAILED
    assert run.state.failure is not None
    assert run.state.failure.action is Action.UNDO
    assert ("s0", Action.UNDO, 1) not in sent(run)  # strict reverse order: s0 waits


def test_stale_and_duplicate_replies_are_ignored() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    fail(run, retryable=True)
    during_backoff = run.state
    late = StepSucceeded("saga-1", "s0", Action.DO, 1, b"{}")
    assert run.feed(late).ignored is not None
    assert run.state is during_backoff
    fire(run)
    assert run.feed(late).ignored is not None  # attempt 1 is not the one in flight
    ok(run)
    again = StepSucceeded("saga-1", "s0", Action.DO, 2, b"{}")
    assert run.feed(again).effects == (Ignore(IgnoreReason.STALE_REPLY, "s0/DO#2 is not awaited"),)
    assert run.feed(StepSucceeded("saga-1", "s1", Action.UNDO, 1, b"{}")).ignored is not None


def test_stale_and_repeated_timer_tokens_are_ignored() -> None:
    run = Run(saga(C, P), now=T0)
    run.start()
    assert run.state is not None
    assert run.state.timer is not None
    token = run.state.timer.token
    ok(run)
    decision = run.feed(TimerFired("saga-1", token), now=T0 + 5_000)
    assert decision.effects == (
        Ignore(IgnoreReason.STALE_TIMER, f"timer {token!r} is not pending"),
    )
    fire(run)
    repeated = run.inputs[-1][0]
    assert run.feed(repeated).ignored is not None


def test_replies_for_unknown_sagas_and_steps_are_rejected() -> None:
    definition = saga(C, P)
    decision = decide(definition, None, StepSucceeded("nope", "s0", Action.DO, 1, b""), T0)
    assert decision.state is None
    assert decision.rejected == Reject(RejectReason.UNKNOWN_SAGA, "no saga 'nope'")
    run = Run(definition, now=T0)
    run.start()
    before = run.state
    bad = run.feed(StepFailed("saga-1", "teleport", Action.DO, 1, "X", "", False))
    assert bad.rejected is not None
    assert bad.rejected.reason is RejectReason.UNKNOWN_STEP
    assert bad.state is before
    timer = decide(definition, None, TimerFired("gone", "s0|DO|1|timeout"), T0)
    assert timer.ignored is not None
    assert timer.state is None


def test_start_for_another_saga_type_is_rejected() -> None:
    decision = decide(saga(C, P), None, SagaTriggered("x", "other", b"[]"), T0)
    assert decision.rejected is not None
    assert decision.rejected.reason is RejectReason.WRONG_SAGA_TYPE


def test_user_code_raising_rejects_the_input_and_keeps_the_state() -> None:
    def explode(data: bytes, payload: bytes) -> bytes:
        raise ValueError("bad reply")

    definition = saga(C, P)
    first = dataclasses.replace(definition.steps[0], merge_reply=explode)
    broken = SagaDefinition(name="t", steps=(first, definition.steps[1]))
    run = Run(broken, now=T0)
    run.start()
    before = run.state
    ok(run)
    assert run.decisions[-1].rejected == Reject(
        RejectReason.DEFINITION_RAISED, "ValueError: bad reply"
    )
    assert run.state is before  # still waiting: its timeout will retry the step
    fire(run)
    assert run.state is not None
    assert run.state.attempt == 2


def test_every_timer_that_stops_pending_is_cancelled() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    fail(run, retryable=True)
    fire(run)
    ok(run)
    fail(run)
    ok(run)
    armed = [e.token for e in run.effects if isinstance(e, ArmTimer)]
    cancelled = [e.token for e in run.effects if isinstance(e, CancelTimer)]
    assert armed == cancelled  # COMPENSATED: nothing left pending, each cancelled once, in order


def test_deciding_against_another_saga_is_a_programming_error() -> None:
    run = Run(saga(C, P), now=T0)
    run.start()
    with pytest.raises(ValueError, match="decided against"):
        decide(run.definition, run.state, TimerFired("other", "x"), T0)


def test_retry_policy_backoff_is_capped_and_validated() -> None:
    policy = RetryPolicy()
    assert [policy.backoff_ms(n) for n in (1, 2, 3, 7, 8, 50)] == [
        1_000,
        2_000,
        4_000,
        64_000,
        100_000,
        100_000,
    ]
    assert policy.allows_another_attempt(10_000)  # unlimited by default, as in Temporal
    assert not RetryPolicy(maximum_attempts=2).allows_another_attempt(2)
    with pytest.raises(ValueError, match="backoff_coefficient"):
        RetryPolicy(backoff_coefficient=0.5)
    with pytest.raises(ValueError, match="maximum_interval_ms"):
        RetryPolicy(initial_interval_ms=5_000, maximum_interval_ms=1_000)
