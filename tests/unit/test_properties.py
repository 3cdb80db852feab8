"""Properties of the state machine over random definitions and random participant behaviour.

Two drivers: a scripted one (each command gets the next outcome from a drawn list: success,
failure, retryable failure, silence -> timeout, an operator's cancel or resume, with duplicates
and stale inputs mixed in; a FAILED saga may be resumed a drawn number of times) whose run must
end in a terminal state that matches the outcomes; and a Hypothesis ``RuleBasedStateMachine``
that interleaves any input, operators' included, in any order and checks invariants after every
step. Both run at least 500 examples in CI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from orchestrator.core import (
    Action,
    ArmTimer,
    CancelTimer,
    Decision,
    FinishSaga,
    Input,
    SagaCancelled,
    SagaDefinition,
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
from orchestrator.telemetry import ended_attempt
from tests.unit.machine_driver import Run, definitions

EXAMPLES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OUTCOMES = ("ok", "fail", "retry", "silence", "dup", "stale", "cancel", "resume")
# Success is the common case; biasing towards it lets runs get deep into a saga before failing.
scripts = st.lists(st.one_of(st.just("ok"), st.sampled_from(OUTCOMES)), max_size=60)


# --------------------------------------------------------------------------- shared checks


def sent_with_input(run: Run) -> list[tuple[Input, SendCommand]]:
    return [
        (event, effect)
        for (event, _), decision in zip(run.inputs, run.decisions, strict=True)
        for effect in decision.effects
        if isinstance(effect, SendCommand)
    ]


def check_commands(run: Run) -> None:
    """Keys are stable per (step, action); attempts count up from 1 without gaps or repeats,
    across resumes too; each retry budget (the first, and each one a resume opens) stays within
    the policy; no DO is sent once compensation has begun."""
    attempts: dict[tuple[str, Action], int] = {}
    budget_from: dict[tuple[str, Action], int] = {}
    undo_started = False
    for event, cmd in sent_with_input(run):
        assert cmd.idempotency_key == idempotency_key(cmd.saga_id, cmd.step, cmd.action)
        key = (cmd.step, cmd.action)
        assert cmd.attempt == attempts.get(key, 0) + 1, f"attempt gap/repeat at {cmd}"
        if isinstance(event, SagaResumed):
            budget_from[key] = cmd.attempt
        step = next(s for s in run.definition.steps if s.name == cmd.step)
        policy = step.retry if cmd.action is Action.DO else step.compensation.retry  # type: ignore[union-attr]
        in_budget = cmd.attempt - budget_from.get(key, 1) + 1
        assert policy.maximum_attempts == 0 or in_budget <= policy.maximum_attempts
        attempts[key] = cmd.attempt
        if cmd.action is Action.UNDO:
            undo_started = True
        assert not (undo_started and cmd.action is Action.DO), "DO after compensation began"


def check_timers(run: Run) -> None:
    """The arm/cancel effects alone reproduce the state's pending timer (I3 for the shell)."""
    pending: set[str] = set()
    for effect in run.effects:
        if isinstance(effect, ArmTimer):
            assert not pending, "a second timer armed while one is pending"
            pending.add(effect.token)
        elif isinstance(effect, CancelTimer):
            assert effect.token in pending
            pending.remove(effect.token)
    expected = {run.state.timer.token} if run.state and run.state.timer else set()
    assert pending == expected


def accepted(run: Run) -> list[tuple[Input, Decision]]:
    """Inputs that moved the saga (not ignored, not rejected)."""
    return [
        (event, d)
        for (event, _), d in zip(run.inputs, run.decisions, strict=True)
        if d.ignored is None and d.rejected is None
    ]


def check_outcome(run: Run) -> None:
    """The terminal state matches what the participants answered."""
    state = run.state
    assert state is not None
    steps = run.definition.steps
    do_ok = [
        steps.index(next(s for s in steps if s.name == e.step))
        for e, _ in accepted(run)
        if isinstance(e, StepSucceeded) and e.action is Action.DO
    ]
    undo_ok = [
        next(i for i, s in enumerate(steps) if s.name == e.step)
        for e, _ in accepted(run)
        if isinstance(e, StepSucceeded) and e.action is Action.UNDO
    ]
    assert do_ok == list(range(len(do_ok))), "steps complete in order"
    assert list(state.completed) == do_ok
    finishes = [e for e in run.effects if isinstance(e, FinishSaga)]
    # Only a resume leaves a terminal state, and only FAILED: every earlier finish was FAILED.
    resumes = sum(1 for e, _ in accepted(run) if isinstance(e, SagaResumed))
    failed = FinishSaga(state.saga_id, SagaStatus.FAILED)
    if state.status.terminal:
        assert finishes == [failed] * resumes + [FinishSaga(state.saga_id, state.status)]
    else:
        assert finishes == [failed] * resumes
    if state.status is SagaStatus.COMPLETED:
        assert do_ok == list(range(len(steps)))
        assert json.loads(state.data) == [s.name for s in steps]
        assert undo_ok == []
    if state.status in (SagaStatus.COMPENSATING, SagaStatus.COMPENSATED):
        assert not any(steps[i].kind is StepKind.PIVOT for i in do_ok)
        reverse = [i for i in reversed(do_ok) if steps[i].kind is StepKind.COMPENSABLE]
        failing = len(do_ok)  # the step that gave up
        plan = list(state.to_compensate) if state.status is SagaStatus.COMPENSATING else []
        # The failing step is undone first exactly when its last attempt timed out (its outcome
        # is unknown) and it is compensable; completed compensable steps follow in reverse.
        gave_up_by = next(
            e
            for (e, _), d in zip(run.inputs, run.decisions, strict=True)
            if d.state is not None
            and d.state.status in (SagaStatus.COMPENSATING, SagaStatus.COMPENSATED)
        )
        # A cancel leaves the step in flight in doubt, like a timeout (rule 11).
        in_doubt = isinstance(gave_up_by, TimerFired | SagaCancelled)
        assert not (in_doubt and steps[failing].kind is StepKind.PIVOT), "in-doubt pivot undone"
        expected = reverse
        if in_doubt and steps[failing].kind is StepKind.COMPENSABLE:
            expected = [failing, *reverse]
        assert undo_ok + plan == expected
    if state.status is SagaStatus.COMPENSATED:
        assert state.to_compensate == ()
    if state.status is SagaStatus.FAILED:
        assert state.failure is not None


# --------------------------------------------------------------------------- scripted driver


def awaited_reply(run: Run, outcome: str, error_type: str) -> Input:
    s = run.state
    assert s is not None
    name = run.definition.steps[s.step].name
    if outcome == "ok":
        return StepSucceeded(s.saga_id, name, s.action, s.attempt, b"{}")
    return StepFailed(s.saga_id, name, s.action, s.attempt, error_type, "x", outcome == "retry")


def operator(run: Run, outcome: str) -> Input:
    if outcome == "cancel":
        return SagaCancelled(run.saga_id, "ops", "customer asked")
    return SagaResumed(run.saga_id, "ops", "participant fixed")


@given(
    definition=definitions(),
    script=scripts,
    error_type=st.sampled_from(["Boom", "Fatal"]),
    resumes=st.integers(0, 2),
)
@EXAMPLES
def test_every_saga_reaches_a_terminal_state_matching_the_replies(
    definition: SagaDefinition, script: list[str], error_type: str, resumes: int
) -> None:
    run = Run(definition)
    run.start()
    outcomes = iter(script)
    bound = 1_000
    while run.state is not None:
        bound -= 1
        assert bound > 0, "saga did not terminate"
        if run.state.status.terminal:
            if run.state.status is not SagaStatus.FAILED or resumes == 0:
                break
            resumes -= 1  # the operator fixed the cause
            assert run.feed(operator(run, "resume")).ignored is None
            continue
        timer = run.state.timer
        assert timer is not None, "an active saga always waits on a timer"
        if timer.kind is TimerKind.BACKOFF:
            run.feed(TimerFired(run.saga_id, timer.token), now=timer.due_ms)
            continue
        outcome = next(outcomes, "silence")  # then the participant goes quiet for good
        if outcome == "silence":
            run.feed(TimerFired(run.saga_id, timer.token), now=timer.due_ms)
        elif outcome == "dup":
            if run.inputs:
                run.feed(run.inputs[-1][0])
        elif outcome == "stale":
            s = run.state
            name = run.definition.steps[s.step].name
            run.feed(StepSucceeded(s.saga_id, name, s.action, s.attempt + 7, b"{}"))
            run.feed(TimerFired(run.saga_id, f"{timer.token}-old"))
        elif outcome in ("cancel", "resume"):
            run.feed(operator(run, outcome))
        else:
            run.feed(awaited_reply(run, outcome, error_type))
    assert run.state is not None
    assert run.state.timer is None
    check_commands(run)
    check_timers(run)
    check_outcome(run)


@given(
    definition=definitions(),
    script=scripts,
)
@EXAMPLES
def test_folding_the_same_records_twice_gives_the_same_states_and_effects(
    definition: SagaDefinition, script: list[str]
) -> None:
    first = Run(definition)
    first.start()
    for outcome in script:
        s = first.state
        if s is None:
            break
        if outcome in ("cancel", "resume"):
            first.feed(operator(first, outcome))
            continue
        if s.status.terminal or s.timer is None:
            break
        if outcome in ("silence", "dup", "stale") or s.timer.kind is TimerKind.BACKOFF:
            first.feed(TimerFired(s.saga_id, s.timer.token), now=s.timer.due_ms)
        else:
            first.feed(awaited_reply(first, outcome, "Boom"))
    replay = Run(definition)
    for event, now in first.inputs:
        replay.feed(event, now=now)
    assert replay.decisions == first.decisions
    assert [d.state for d in replay.decisions] == [d.state for d in first.decisions]


# --------------------------------------------------------------------------- stateful test


@dataclass(frozen=True)
class Seen:
    event: Input
    now: int


class SagaLife(RuleBasedStateMachine):
    """Any input, in any order, at any time: the invariants hold after every one."""

    def __init__(self) -> None:
        super().__init__()
        self.run: Run | None = None
        self.history: list[Seen] = []
        self.sent: dict[tuple[str, str, int], int] = {}  # (step, action, attempt) -> now sent

    def remember_sends(self, decision: Decision) -> None:
        assert self.run is not None
        for effect in decision.effects:
            if isinstance(effect, SendCommand):
                self.sent[(effect.step, effect.action.value, effect.attempt)] = self.run.now

    @initialize(definition=definitions())
    def begin(self, definition: SagaDefinition) -> None:
        self.run = Run(definition)
        self.remember_sends(self.run.start())
        self.history.append(Seen(*self.run.inputs[-1]))

    def feed(self, event: Input, now: int | None = None) -> None:
        assert self.run is not None
        before = self.run.state
        decision = self.run.feed(event, now)
        again = decide(self.run.definition, before, event, self.run.now)
        assert again == decision, "decide is not deterministic"
        # The shell's step latency and spans rely on this: the attempt a fold ends, and the
        # time its command was sent, can be read from the state alone (orchestrator.telemetry).
        ended = ended_attempt(self.run.definition, before, event, decision.state)
        if ended is not None:
            assert before is not None
            assert before.timer is not None
            assert before.timer.kind is TimerKind.TIMEOUT
            awaited = (self.run.definition.steps[before.step].name, before.action.value)
            assert (ended.step, ended.action, ended.attempt) == (*awaited, before.attempt)
            assert ended.sent_ms == self.sent[(ended.step, ended.action, ended.attempt)]
        self.remember_sends(decision)
        if (
            isinstance(event, SagaResumed)
            and before is not None
            and before.status is SagaStatus.FAILED
        ):
            assert decision.state is not None
            assert decision.state.attempt == before.attempt + 1, "a resume sends the next attempt"
            assert (decision.state.step, decision.state.action) == (before.step, before.action)
        elif before is not None and before.status.terminal:
            assert decision.state is before, "terminal states absorb"
            assert not any(isinstance(e, SendCommand) for e in decision.effects)
        self.history.append(Seen(event, self.run.now))

    @property
    def active(self) -> bool:
        return (
            self.run is not None
            and self.run.state is not None
            and (not self.run.state.status.terminal)
        )

    @precondition(lambda self: self.active)
    @rule(outcome=st.sampled_from(["ok", "fail", "retry"]), error=st.sampled_from(["E", "Fatal"]))
    def reply_to_what_is_awaited(self, outcome: str, error: str) -> None:
        assert self.run is not None
        event = awaited_reply(self.run, outcome, error)
        self.feed(event)

    @precondition(lambda self: self.active)
    @rule()
    def time_passes_until_the_timer(self) -> None:
        assert self.run is not None
        assert self.run.state is not None
        timer = self.run.state.timer
        assert timer is not None
        event = TimerFired(self.run.saga_id, timer.token)
        self.feed(event, now=timer.due_ms)

    @precondition(lambda self: self.run is not None and bool(self.history))
    @rule(pick=st.integers(min_value=0))
    def an_old_input_is_delivered_again(self, pick: int) -> None:
        assert self.run is not None
        seen = self.history[pick % len(self.history)]
        self.feed(seen.event)

    @precondition(lambda self: self.run is not None)
    @rule(
        step=st.integers(0, 6),
        action=st.sampled_from(Action),
        attempt=st.integers(1, 5),
        success=st.booleans(),
    )
    def a_reply_arrives_for_any_step(
        self, step: int, action: Action, attempt: int, success: bool
    ) -> None:
        assert self.run is not None
        name = f"s{step}"
        event: Input = (
            StepSucceeded(self.run.saga_id, name, action, attempt, b"{}")
            if success
            else StepFailed(self.run.saga_id, name, action, attempt, "E", "x", True)
        )
        self.feed(event)

    @precondition(lambda self: self.run is not None)
    @rule(cancel=st.booleans())
    def an_operator_steps_in(self, cancel: bool) -> None:
        assert self.run is not None
        self.feed(operator(self.run, "cancel" if cancel else "resume"))

    @invariant()
    def commands_timers_and_outcome_are_consistent(self) -> None:
        if self.run is None:
            return
        check_commands(self.run)
        check_timers(self.run)
        check_outcome(self.run)

    @invariant()
    def a_waiting_saga_was_last_updated_when_its_command_was_sent(self) -> None:
        if self.run is None or self.run.state is None:
            return
        state = self.run.state
        if state.timer is not None and state.timer.kind is TimerKind.TIMEOUT:
            step = self.run.definition.steps[state.step].name
            assert state.updated_ms == self.sent[(step, state.action.value, state.attempt)]

    @invariant()
    def at_most_one_command_in_flight(self) -> None:
        if self.run is None or self.run.state is None:
            return
        state = self.run.state
        if state.status.terminal:
            assert state.timer is None
        else:
            assert state.timer is not None


SagaLife.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_saga_life = SagaLife.TestCase
