"""``ksaga stories``: the order saga's happy and failing paths, told by the state machine.

No Kafka: each story folds the example order saga through ``decide`` on a simulated clock with
scripted participants and prints every transition, so a reader sees what the orchestrator will
do with each reply, timeout and retry before running the real thing (``ksaga demo``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click

from orchestrator.core import (
    Action,
    ArmTimer,
    CancelTimer,
    Effect,
    FinishSaga,
    Ignore,
    Input,
    Reject,
    SagaCancelled,
    SagaResumed,
    SagaStatus,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from orchestrator.testing.harness import Answer, Fail, SagaScenario, Silence, Succeed
from sagas.order import (
    OrderItem,
    OrderPlaced,
    OrderSaga,
    OrderShipped,
    PaymentCharged,
    StockReserved,
)

__all__ = ["SCENARIOS", "run_stories"]

_COLOURS = {
    SagaStatus.COMPLETED: "green",
    SagaStatus.COMPENSATED: "yellow",
    SagaStatus.FAILED: "red",
}


@dataclass(frozen=True)
class Story:
    title: str
    participants: Callable[[SendCommand], Answer]


def _happy(cmd: SendCommand) -> Answer:
    if cmd.action is Action.UNDO:
        return Succeed()
    replies = {
        "reserve_stock": StockReserved(reservation_id=f"res-{cmd.saga_id[-3:]}"),
        "charge_payment": PaymentCharged(payment_id=f"pay-{cmd.saga_id[-3:]}"),
        "ship_order": OrderShipped(tracking_number=f"trk-{cmd.saga_id[-3:]}"),
    }
    return Succeed(replies[cmd.step])


def _card_declined(cmd: SendCommand) -> Answer:
    if cmd.step == "charge_payment" and cmd.action is Action.DO:
        return Fail("CardDeclined", "the bank said no")
    return _happy(cmd)


def _flaky_then_unshippable(cmd: SendCommand) -> Answer:
    if cmd.step == "charge_payment" and cmd.action is Action.DO and cmd.attempt == 1:
        return Fail("GatewayTimeout", "try again", retryable=True)
    if cmd.step == "ship_order":
        return Fail("AddressUnknown", "no such street")
    return _happy(cmd)


def _silent_inventory(cmd: SendCommand) -> Answer:
    if cmd.step == "reserve_stock" and cmd.action is Action.DO:
        return Silence()
    return _happy(cmd)


def _refund_keeps_failing(cmd: SendCommand) -> Answer:
    if cmd.step == "charge_payment" and cmd.action is Action.UNDO:
        return Fail("LedgerLocked", "refund refused", retryable=True)
    if cmd.step == "ship_order":
        return Fail("AddressUnknown", "no such street")
    return _happy(cmd)


SCENARIOS = (
    Story("happy path", _happy),
    Story("card declined -> release stock", _card_declined),
    Story("payment retried, shipping fails -> refund, release", _flaky_then_unshippable),
    Story("inventory silent -> 3 timeouts -> release (in doubt)", _silent_inventory),
    Story("refund keeps failing -> FAILED, parked for an operator", _refund_keeps_failing),
)


def _describe_input(event: Input) -> str:
    match event:
        case SagaTriggered():
            return "StartSaga"
        case StepSucceeded():
            return f"{event.step}/{event.action.value}#{event.attempt} succeeded"
        case StepFailed():
            kind = "retryable" if event.retryable else "final"
            where = f"{event.step}/{event.action.value}#{event.attempt}"
            return f"{where} failed ({kind} {event.error_type})"
        case TimerFired():
            return f"timer {event.token}"
        case SagaResumed():
            return f"resumed by {event.requested_by}"
        case SagaCancelled():
            return f"cancelled by {event.requested_by}"


def _describe_effect(effect: Effect) -> str | None:
    match effect:
        case SendCommand():
            return f"send {effect.command_type}#{effect.attempt} -> {effect.topic}"
        case ArmTimer():
            return f"timer +{effect.token.rsplit('|', 1)[-1]}"
        case FinishSaga():
            return f"finish {effect.outcome.value}"
        case Reject():
            return f"dead-letter ({effect.reason.value})"
        case Ignore():
            return f"ignore ({effect.reason.value})"
        case CancelTimer():
            return None


def run_story(number: int, story: Story) -> SagaStatus:
    order = OrderPlaced(
        order_id=f"{number:03d}",
        customer_id="c-42",
        items=[OrderItem(sku="kafka-book", quantity=1)],
        amount_cents=3_999,
        address="1 Log Street",
    )
    scenario = SagaScenario(OrderSaga, start_ms=0)
    scenario.trigger(order)
    scenario.run(story.participants)
    status = scenario.status
    assert status is not None
    click.secho(f"\n[{number}] {story.title}", bold=True)
    for t in scenario.timeline:
        effects = [d for d in map(_describe_effect, t.decision.effects) if d]
        after = t.decision.state.status.value if t.decision.state else "-"
        click.echo(
            f"  t={t.at_ms / 1000:7.3f}s  {_describe_input(t.input):<52} {after:<12} "
            + ", ".join(effects)
        )
    click.secho(
        f"  => {scenario.state.saga_id if scenario.state else ''} {status.value}",
        fg=_COLOURS.get(status),
        bold=True,
    )
    return status


def run_stories() -> dict[SagaStatus, int]:
    click.secho("The order saga's stories, folded through the pure state machine", bold=True)
    click.echo("(simulated clock, no Kafka: what `decide` does with each reply, timeout and retry)")
    outcomes = _run_stories()
    summary = ", ".join(f"{s.value}={n}" for s, n in outcomes.items())
    click.secho(f"\n{len(SCENARIOS)} sagas: {summary}", bold=True)
    return outcomes


def _run_stories() -> dict[SagaStatus, int]:
    outcomes: dict[SagaStatus, int] = {}
    for number, story in enumerate(SCENARIOS, start=1):
        status = run_story(number, story)
        outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes
