"""Timeline tests of the operators' inputs: resume a FAILED saga, cancel a RUNNING one.

One test per row of rules 10 and 11 (``orchestrator/core/transitions.py``), with explicit
inputs, explicit ``now`` and exact effects, including the late replies and timers that arrive
after an operator stepped in.
"""

from __future__ import annotations

from orchestrator.core import (
    Action,
    ArmTimer,
    CancelTimer,
    FinishSaga,
    Ignore,
    IgnoreReason,
    RejectReason,
    RetryPolicy,
    SagaCancelled,
    SagaResumed,
    SagaStatus,
    SendCommand,
    StepFailed,
    StepKind,
    StepSucceeded,
    TimerFired,
    TimerKind,
    decide,
    idempotency_key,
)
from tests.unit.machine_driver import Run
from tests.unit.test_machine import T0, fail, fire, ok, saga, sent, status

C, P, R = StepKind.COMPENSABLE, StepKind.PIVOT, StepKind.READ_ONLY
RESUME = SagaResumed("saga-1", "alice", "inventory fixed")
CANCEL = SagaCancelled("saga-1", "bob", "customer called")


def state_of(run: Run):  # type: ignore[no-untyped-def]
    assert run.state is not None
    return run.state


def undo_gives_up(run: Run) -> None:
    """Three retryable failures of the UNDO in flight: its budget of 3 is spent, FAILED."""
    for _ in range(2):
        fail(run, retryable=True)
        fire(run)
    fail(run, retryable=True)
    assert status(run) is SagaStatus.FAILED


# --------------------------------------------------------------------------- resume (rule 10)


def test_resume_of_a_compensation_that_gave_up_sends_the_next_attempt_with_a_fresh_budget() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    ok(run)
    ok(run)
    fail(run)  # the pivot fails for good: undo s1, then s0
    undo_gives_up(run)  # s1's UNDO, attempts 1..3
    parked = state_of(run)
    assert parked.to_compensate == (1, 0)

    decision = run.feed(RESUME, now=T0 + 60_000)
    new = state_of(run)
    assert new.status is SagaStatus.COMPENSATING
    assert (new.step, new.action, new.attempt, new.first_attempt) == (1, Action.UNDO, 4, 4)
    assert new.to_compensate == (1, 0)
    assert new.completed == parked.completed
    assert new.data == parked.data
    assert new.failure == parked.failure  # kept for the record until something replaces it
    assert new.version == parked.version + 1
    command = SendCommand(
        saga_id="saga-1",
        saga_type="t",
        step="s1",
        action=Action.UNDO,
        attempt=4,
        idempotency_key=idempotency_key("saga-1", "s1", Action.UNDO),  # unchanged
        topic="s1.commands",
        command_type="Undos1",
        payload=b'{"step": "s1", "action": "UNDO", "data": ["s0", "s1"]}',
    )
    token = "s1|UNDO|4|timeout"
    assert decision.effects == (command, ArmTimer("saga-1", token, T0 + 60_000 + 1_000))

    # A fresh budget: the first failure after the resume backs off by the initial interval,
    # and three more attempts (4, 5, 6) are allowed before it parks again.
    fail(run, retryable=True)
    timer = state_of(run).timer
    assert timer is not None
    assert timer.kind is TimerKind.BACKOFF
    assert timer.due_ms == T0 + 60_000 + 100
    fire(run)
    fail(run, retryable=True)
    fire(run)
    fail(run, retryable=True)
    assert status(run) is SagaStatus.FAILED
    assert [a for s, act, a in sent(run) if (s, act) == ("s1", Action.UNDO)] == [1, 2, 3, 4, 5, 6]

    run.feed(RESUME)  # fixed for real this time
    ok(run)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    assert sent(run)[-2:] == [("s1", Action.UNDO, 7), ("s0", Action.UNDO, 1)]
    finishes = [e.outcome for e in run.effects if isinstance(e, FinishSaga)]
    assert finishes == [SagaStatus.FAILED, SagaStatus.FAILED, SagaStatus.COMPENSATED]


def test_resume_of_an_in_doubt_pivot_sends_its_do_again_and_its_answer_settles_it() -> None:
    run = Run(saga(C, P, retry=RetryPolicy(maximum_attempts=1)), now=T0)
    run.start()
    ok(run)
    fire(run)  # the pivot's only attempt times out: FAILED, nothing undone
    assert status(run) is SagaStatus.FAILED
    run.feed(RESUME)
    assert status(run) is SagaStatus.RUNNING
    assert sent(run)[-1] == ("s1", Action.DO, 2)
    ok(run)  # the participant answers (from its store if it had shipped after all)
    assert status(run) is SagaStatus.COMPLETED
    assert all(c.action is Action.DO for c in run.commands)


def test_a_resumed_pivot_that_fails_for_good_compensates_the_earlier_steps() -> None:
    run = Run(saga(C, P, retry=RetryPolicy(maximum_attempts=1)), now=T0)
    run.start()
    ok(run)
    fire(run)
    run.feed(RESUME)
    fail(run)  # now we know: it did not ship; the doubt is gone, so undo s0 (not the pivot)
    assert status(run) is SagaStatus.COMPENSATING
    assert state_of(run).to_compensate == (0,)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    assert sent(run)[-1] == ("s0", Action.UNDO, 1)


def test_resume_past_a_completed_pivot_goes_forward() -> None:
    run = Run(saga(C, P, R), now=T0)
    run.start()
    ok(run)
    ok(run)  # the pivot is done
    fail(run)  # the read-only step after it fails for good: FAILED
    assert status(run) is SagaStatus.FAILED
    run.feed(RESUME)
    assert status(run) is SagaStatus.RUNNING
    assert sent(run)[-1] == ("s2", Action.DO, 2)
    ok(run)
    assert status(run) is SagaStatus.COMPLETED


def test_resume_is_ignored_unless_the_saga_is_failed() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    for expected in (SagaStatus.RUNNING, SagaStatus.COMPENSATING, SagaStatus.COMPENSATED):
        before = run.state
        decision = run.feed(RESUME)
        assert decision.state is before
        assert decision.effects == (
            Ignore(IgnoreReason.NOT_RESUMABLE, f"saga is {expected.value}; only FAILED resumes"),
        )
        if expected is SagaStatus.RUNNING:
            ok(run)
            fail(run)
        else:
            ok(run)
            ok(run)
    done = Run(saga(C), now=T0)
    done.start()
    ok(done)
    assert done.feed(RESUME).ignored == Ignore(
        IgnoreReason.NOT_RESUMABLE, "saga is COMPLETED; only FAILED resumes"
    )


def test_a_repeated_resume_sends_nothing_more() -> None:
    run = Run(saga(C, P, retry=RetryPolicy(maximum_attempts=1)), now=T0)
    run.start()
    ok(run)
    fire(run)
    run.feed(RESUME)
    resumed = run.state
    again = run.feed(RESUME)  # the operator ran the command twice
    assert again.state is resumed
    assert again.ignored is not None
    assert again.ignored.reason is IgnoreReason.NOT_RESUMABLE
    assert sent(run).count(("s1", Action.DO, 2)) == 1


def test_late_replies_and_timers_from_before_the_resume_are_stale() -> None:
    run = Run(saga(C, P, retry=RetryPolicy(maximum_attempts=1)), now=T0)
    run.start()
    ok(run)
    old_timer = state_of(run).timer
    assert old_timer is not None
    fire(run)  # FAILED; attempt 1's reply is late
    late = StepSucceeded("saga-1", "s1", Action.DO, 1, b"{}")
    assert run.feed(late).ignored is not None  # still FAILED: absorbed
    run.feed(RESUME)
    resumed = run.state
    for stale in (late, StepFailed("saga-1", "s1", Action.DO, 1, "E", "", False)):
        decision = run.feed(stale)
        assert decision.effects == (Ignore(IgnoreReason.STALE_REPLY, "s1/DO#1 is not awaited"),)
        assert run.state is resumed
    assert run.feed(TimerFired("saga-1", old_timer.token)).ignored is not None
    run.feed(StepSucceeded("saga-1", "s1", Action.DO, 2, b"{}"))
    assert status(run) is SagaStatus.COMPLETED


def test_resume_of_an_absent_saga_is_rejected() -> None:
    decision = decide(saga(C, P), None, RESUME, T0)
    assert decision.state is None
    assert decision.rejected is not None
    assert decision.rejected.reason is RejectReason.UNKNOWN_SAGA


# --------------------------------------------------------------------------- cancel (rule 11)


def test_cancel_undoes_the_step_in_flight_first_then_completed_steps_in_reverse() -> None:
    run = Run(saga(C, R, C, C, P), now=T0)
    run.start()
    ok(run)
    ok(run)  # s1 is read-only
    ok(run)
    running = state_of(run)
    assert running.timer is not None
    decision = run.feed(CANCEL, now=T0 + 500)
    cancelled = state_of(run)
    assert cancelled.status is SagaStatus.COMPENSATING
    assert cancelled.to_compensate == (3, 2, 0)  # s3 was in flight: in doubt, undone first
    assert (cancelled.step, cancelled.action, cancelled.attempt) == (3, Action.UNDO, 1)
    assert cancelled.failure is not None
    assert cancelled.failure.error_type == "Cancelled"
    assert cancelled.failure.step == "s3"
    assert cancelled.failure.message == "cancelled by bob: customer called"
    assert decision.effects[0] == CancelTimer("saga-1", running.timer.token)
    assert sent(run)[-1] == ("s3", Action.UNDO, 1)
    for _ in range(3):
        ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    undos = [(s, a) for s, act, a in sent(run) if act is Action.UNDO]
    assert undos == [("s3", 1), ("s2", 1), ("s0", 1)]


def test_cancel_during_a_backoff_undoes_the_step_and_its_backoff_timer_goes_stale() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    fail(run, retryable=True)
    backoff = state_of(run).timer
    assert backoff is not None
    assert backoff.kind is TimerKind.BACKOFF
    decision = run.feed(CANCEL)
    assert CancelTimer("saga-1", backoff.token) in decision.effects
    assert state_of(run).to_compensate == (0,)
    assert run.feed(TimerFired("saga-1", backoff.token), now=backoff.due_ms).ignored is not None
    assert ("s0", Action.DO, 2) not in sent(run)  # the retry never goes out
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED


def test_cancel_at_a_read_only_step_undoes_only_the_completed_steps() -> None:
    run = Run(saga(C, R, P), now=T0)
    run.start()
    ok(run)
    run.feed(CANCEL)
    assert state_of(run).to_compensate == (0,)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED


def test_cancel_with_nothing_to_undo_is_compensated_at_once() -> None:
    run = Run(saga(R, P), now=T0)
    run.start()
    timer = state_of(run).timer
    assert timer is not None
    decision = run.feed(CANCEL)
    assert status(run) is SagaStatus.COMPENSATED
    assert state_of(run).timer is None
    assert decision.effects == (
        CancelTimer("saga-1", timer.token),
        FinishSaga("saga-1", SagaStatus.COMPENSATED),
    )


def test_cancel_is_refused_while_a_pivot_is_in_flight_and_the_saga_goes_on() -> None:
    run = Run(saga(C, P), now=T0)
    run.start()
    ok(run)
    before = run.state
    decision = run.feed(CANCEL)
    assert decision.state is before
    assert decision.effects == (
        Ignore(IgnoreReason.NOT_CANCELLABLE, "pivot 's1' is in flight: its outcome decides"),
    )
    ok(run)
    assert status(run) is SagaStatus.COMPLETED


def test_cancel_is_refused_once_a_pivot_has_completed() -> None:
    run = Run(saga(C, P, R), now=T0)
    run.start()
    ok(run)
    ok(run)
    before = run.state
    decision = run.feed(CANCEL)
    assert decision.state is before
    assert decision.effects == (
        Ignore(IgnoreReason.NOT_CANCELLABLE, "a pivot has completed: only forward is left"),
    )


def test_cancel_is_ignored_when_compensating_or_terminal() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    ok(run)
    run.feed(CANCEL)  # compensating now
    for expected in (SagaStatus.COMPENSATING, SagaStatus.COMPENSATED):
        if expected is SagaStatus.COMPENSATED:
            ok(run)
            ok(run)
        before = run.state
        decision = run.feed(CANCEL)  # a repeated cancel, then one after the end
        assert decision.state is before
        assert decision.effects == (
            Ignore(IgnoreReason.NOT_CANCELLABLE, f"saga is {expected.value}; only RUNNING cancels"),
        )
    assert [s for s, act, _ in sent(run) if act is Action.UNDO] == ["s1", "s0"]


def test_late_do_replies_and_timers_after_a_cancel_are_stale() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    ok(run)
    timeout = state_of(run).timer
    assert timeout is not None
    run.feed(CANCEL)
    compensating = run.state
    for late in (
        StepSucceeded("saga-1", "s1", Action.DO, 1, b"{}"),
        StepFailed("saga-1", "s1", Action.DO, 1, "E", "", True),
        TimerFired("saga-1", timeout.token),
    ):
        decision = run.feed(late, now=timeout.due_ms)
        assert decision.ignored is not None
        assert run.state is compensating
    ok(run)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    assert not any(c.action is Action.DO and c.step == "s2" for c in run.commands)


def test_a_cancelled_saga_whose_undo_gives_up_can_be_resumed() -> None:
    run = Run(saga(C, C, P), now=T0)
    run.start()
    ok(run)
    run.feed(CANCEL)  # undo s1 (in flight), then s0
    undo_gives_up(run)
    run.feed(RESUME)
    ok(run)
    ok(run)
    assert status(run) is SagaStatus.COMPENSATED
    undos = [(s, a) for s, act, a in sent(run) if act is Action.UNDO]
    assert undos == [("s1", 1), ("s1", 2), ("s1", 3), ("s1", 4), ("s0", 1)]


def test_cancel_of_an_absent_saga_is_rejected() -> None:
    decision = decide(saga(C, P), None, CANCEL, T0)
    assert decision.state is None
    assert decision.rejected is not None
    assert decision.rejected.reason is RejectReason.UNKNOWN_SAGA
