"""Given / when / then for saga authors: run a saga class through the state machine, no Kafka.

A ``SagaScenario`` holds one saga's state and a simulated clock. Tests (and the demo) trigger
it, answer the command in flight with typed replies or silence, let time pass so timers fire,
and then look at the status, the typed data and every command sent::

    s = SagaScenario(OrderSaga)
    s.trigger(OrderPlaced(...))
    s.succeed(StockReserved(reservation_id="r-1"))
    s.fail("CardDeclined")
    assert s.status is SagaStatus.COMPENSATED
    assert s.sent() == [("reserve_stock", DO, 1), ("charge_payment", DO, 1),
                        ("reserve_stock", UNDO, 1)]

``resume()`` and ``cancel()`` fold an operator's request, as ``ksaga saga resume/cancel`` do.

It folds through the very ``decide`` the orchestrator runs, so what passes here is what the
runtime will do with the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from orchestrator.core import (
    Action,
    Decision,
    Effect,
    Input,
    SagaCancelled,
    SagaResumed,
    SagaState,
    SagaStatus,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepSucceeded,
    TimerFired,
    TimerKind,
    decide,
)
from orchestrator.dsl import Saga

__all__ = ["Answer", "Fail", "SagaScenario", "Silence", "Succeed", "Transition"]

D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Transition:
    """One folded input: when, what came in, what the machine decided."""

    at_ms: int
    input: Input
    before: SagaStatus | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class Succeed:
    payload: BaseModel | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    error_type: str
    message: str = ""
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Silence:
    """The participant never answers: the step's timeout will fire."""


Answer = Succeed | Fail | Silence


class SagaScenario(Generic[D]):
    def __init__(self, saga: type[Saga[D]], *, start_ms: int = 0) -> None:
        self.saga = saga
        self.definition = saga.definition
        self.now_ms = start_ms
        self.state: SagaState | None = None
        self.timeline: list[Transition] = []

    # ------------------------------------------------------------------ when

    def trigger(self, event: BaseModel) -> Decision:
        saga_id, data = self.saga.route(event.model_dump_json().encode())
        return self.fold(SagaTriggered(saga_id, self.saga.name, data))

    def succeed(self, payload: BaseModel | None = None) -> Decision:
        command = self._in_flight()
        body = payload.model_dump_json().encode() if payload is not None else b"{}"
        return self.fold(
            StepSucceeded(command.saga_id, command.step, command.action, command.attempt, body)
        )

    def fail(self, error_type: str, message: str = "", *, retryable: bool = False) -> Decision:
        command = self._in_flight()
        return self.fold(
            StepFailed(
                command.saga_id,
                command.step,
                command.action,
                command.attempt,
                error_type,
                message or error_type,
                retryable,
            )
        )

    def resume(self, by: str = "operator", reason: str = "") -> Decision:
        """An operator resumes the saga (``ksaga saga resume``): folded like any input."""
        assert self.state is not None, "no saga yet: call trigger() first"
        return self.fold(SagaResumed(self.state.saga_id, by, reason))

    def cancel(self, by: str = "operator", reason: str = "") -> Decision:
        """An operator cancels the saga (``ksaga saga cancel``): folded like any input."""
        assert self.state is not None, "no saga yet: call trigger() first"
        return self.fold(SagaCancelled(self.state.saga_id, by, reason))

    def time_passes(self, ms: int) -> list[Decision]:
        """Advance the clock, firing every timer that falls due on the way, in order."""
        until = self.now_ms + ms
        fired = []
        while self.state is not None and self.state.timer and self.state.timer.due_ms <= until:
            timer = self.state.timer
            self.now_ms = max(self.now_ms, timer.due_ms)
            fired.append(self.fold(TimerFired(self.state.saga_id, timer.token)))
        self.now_ms = until
        return fired

    def fold(self, event: Input) -> Decision:
        before = self.state.status if self.state else None
        decision = decide(self.definition, self.state, event, self.now_ms)
        self.timeline.append(Transition(self.now_ms, event, before, decision))
        self.state = decision.state
        return decision

    def run(
        self, participants: Callable[[SendCommand], Answer], *, max_inputs: int = 1_000
    ) -> None:
        """Drive the saga to a terminal state, asking ``participants`` for each command's answer.

        Backoffs elapse and silent participants time out on the simulated clock.
        """
        for _ in range(max_inputs):
            state = self.state
            if state is None or state.status.terminal:
                return
            timer = state.timer
            assert timer is not None, "an active saga always waits on a timer"
            if timer.kind is TimerKind.BACKOFF:
                self.time_passes(timer.due_ms - self.now_ms)
                continue
            answer = participants(self._in_flight())
            if isinstance(answer, Succeed):
                self.succeed(answer.payload)
            elif isinstance(answer, Fail):
                self.fail(answer.error_type, answer.message, retryable=answer.retryable)
            else:
                self.time_passes(timer.due_ms - self.now_ms)
        raise AssertionError(f"saga not terminal after {max_inputs} inputs")

    # ------------------------------------------------------------------ then

    @property
    def status(self) -> SagaStatus | None:
        return self.state.status if self.state else None

    @property
    def data(self) -> D:
        assert self.state is not None, "no saga yet: call trigger() first"
        model: Any = self.saga.data
        parsed: D = model.model_validate_json(self.state.data)
        return parsed

    @property
    def effects(self) -> list[Effect]:
        return [e for t in self.timeline for e in t.decision.effects]

    @property
    def commands(self) -> list[SendCommand]:
        return [e for e in self.effects if isinstance(e, SendCommand)]

    def sent(self) -> list[tuple[str, Action, int]]:
        return [(c.step, c.action, c.attempt) for c in self.commands]

    def _in_flight(self) -> SendCommand:
        state = self.state
        if state is None or state.status.terminal:
            raise AssertionError(f"no command in flight: saga is {self.status}")
        if state.timer is None or state.timer.kind is not TimerKind.TIMEOUT:
            raise AssertionError("the saga is backing off: let time pass before answering")
        return self.commands[-1]
