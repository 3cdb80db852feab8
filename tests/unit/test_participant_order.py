"""The example order-saga participants: deterministic misbehaviour, predicted outcomes.

``expected_outcome`` is checked against the real order saga folded by the real state machine
(``SagaScenario``), with every command answered by the example handlers themselves, so the
prediction and the behaviour cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connectors.errors import HandlerError, NoReply
from connectors.order_participants import (
    ORDER_COMMAND_TOPICS,
    Behaviour,
    OrderServices,
    build_participant,
    expected_outcome,
)
from connectors.participant import CommandInfo, ParticipantConfig
from orchestrator.core import SagaStatus, SendCommand
from orchestrator.testing.harness import Answer, Fail, SagaScenario, Silence, Succeed
from sagas.order import (
    ChargePayment,
    OrderItem,
    OrderPlaced,
    OrderSaga,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
)


def routes(services: OrderServices) -> dict[str, tuple[type[BaseModel], Callable[..., Any]]]:
    return {
        "ReserveStock": (ReserveStock, services.reserve_stock),
        "ReleaseStock": (ReleaseStock, services.release_stock),
        "ChargePayment": (ChargePayment, services.charge_payment),
        "RefundPayment": (RefundPayment, services.refund_payment),
        "ShipOrder": (ShipOrder, services.ship_order),
    }


def answer_with(services: OrderServices) -> Callable[[SendCommand], Answer]:
    """Answer a command the way the participant would: handler result -> reply (or none)."""
    table = routes(services)

    def answer(cmd: SendCommand) -> Answer:
        model, handler = table[cmd.command_type]
        info = CommandInfo(
            saga_id=cmd.saga_id,
            saga_type=cmd.saga_type,
            step=cmd.step,
            action=cmd.action.name,
            attempt=cmd.attempt,
            idempotency_key=cmd.idempotency_key,
            command_type=cmd.command_type,
            reply_topic="inbox",
            reply_partition=0,
            sent_ms=0,
            topic=cmd.topic,
            partition=0,
            offset=0,
        )
        try:
            result = handler(info, model.model_validate_json(cmd.payload))
        except NoReply:
            return Silence()
        except HandlerError as exc:
            return Fail(exc.error_type, exc.message, retryable=exc.retryable)
        if isinstance(result, NoReply):
            return Silence()
        return Succeed(result)

    return answer


def run_saga(order_id: str, behaviour: Behaviour) -> SagaScenario[Any]:
    scenario = SagaScenario(OrderSaga)
    scenario.trigger(
        OrderPlaced(
            order_id=order_id,
            customer_id="c-1",
            items=[OrderItem(sku="sku-1", quantity=1)],
            amount_cents=1_000,
            address="1 Main St",
        )
    )
    scenario.run(answer_with(OrderServices(behaviour)))
    return scenario


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(),
        Behaviour(seed=7, decline_rate=0.3, silent_rate=0.3, flaky_rate=0.3),
        Behaviour(seed=1, decline_rate=0.0, silent_rate=1.0, flaky_rate=1.0),
        Behaviour(seed=2, decline_rate=1.0),
        Behaviour(
            seed=5, decline_rate=0.3, hung_rate=0.2, undo_failing_rate=0.4, shipping_lost_rate=0.2
        ),
    ],
    ids=["defaults", "mixed", "all-slow-never-declined", "all-declined", "needs-an-operator"],
)
def test_expected_outcome_matches_the_saga_driven_by_the_handlers(behaviour: Behaviour) -> None:
    outcomes: dict[str, int] = {}
    for i in range(150):
        order_id = f"o-{i}"
        scenario = run_saga(order_id, behaviour)
        assert scenario.status is not None
        assert scenario.status.name == expected_outcome(order_id, behaviour), order_id
        outcomes[scenario.status.name] = outcomes.get(scenario.status.name, 0) + 1
        data = scenario.data
        if scenario.status is SagaStatus.COMPLETED:
            assert data.reservation_id == f"res-{order_id}"
            assert data.payment_id == f"pay-{order_id}"
            assert data.tracking_number == f"trk-{order_id}"
    assert sum(outcomes.values()) == 150
    if behaviour.undo_failing_rate or behaviour.shipping_lost_rate:
        assert set(outcomes) == {"COMPLETED", "COMPENSATED", "FAILED"}


def test_each_misbehaviour_takes_the_path_it_promises() -> None:
    behaviour = Behaviour(seed=3, decline_rate=0.3, silent_rate=0.3, flaky_rate=0.3)
    seen = {"declined": 0, "silent": 0, "flaky": 0}
    for i in range(200):
        order_id = f"o-{i}"
        sent = run_saga(order_id, behaviour).sent()
        steps = [(step, action.name, attempt) for step, action, attempt in sent]
        if behaviour.silent(order_id):
            seen["silent"] += 1
            assert steps[:2] == [("reserve_stock", "DO", 1), ("reserve_stock", "DO", 2)]
        if behaviour.declines(order_id):
            seen["declined"] += 1
            assert steps[-2:] == [("charge_payment", "DO", 1), ("reserve_stock", "UNDO", 1)]
        elif behaviour.flaky(order_id):
            seen["flaky"] += 1
            assert ("charge_payment", "DO", 2) in steps
            assert ("charge_payment", "DO", 3) not in steps
        else:
            assert ("charge_payment", "DO", 2) not in steps
    for name, count in seen.items():  # 30% of 200, with a wide margin
        assert 30 <= count <= 90, (name, count)


def test_behaviour_is_a_pure_function_of_seed_and_order_id() -> None:
    a = Behaviour(seed=11, decline_rate=0.5)
    again = Behaviour(seed=11, decline_rate=0.5)
    other = Behaviour(seed=12, decline_rate=0.5)
    ids = [f"order-{i}" for i in range(300)]
    assert [a.declines(i) for i in ids] == [again.declines(i) for i in ids]
    assert [a.declines(i) for i in ids] != [other.declines(i) for i in ids]
    assert not any(Behaviour(decline_rate=0.0).declines(i) for i in ids)
    assert all(Behaviour(decline_rate=1.0).declines(i) for i in ids)
    # independent draws: declining does not imply being silent at the same rate
    both = Behaviour(seed=5, decline_rate=0.5, silent_rate=0.5)
    assert [both.declines(i) for i in ids] != [both.silent(i) for i in ids]


@pytest.mark.parametrize(
    "kwargs", [{"decline_rate": -0.1}, {"silent_rate": 1.5}, {"latency_ms": -1.0}]
)
def test_behaviour_rejects_impossible_rates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Behaviour(**kwargs)


def test_build_participant_handles_every_order_command(tmp_path: Path) -> None:
    config = ParticipantConfig(
        bootstrap_servers="localhost:1",
        group_id="g",
        topics=list(ORDER_COMMAND_TOPICS),
        state_dir=tmp_path / "state",
    )
    participant = build_participant(config, Behaviour())
    steps = OrderSaga.definition.steps
    commands = {s.command_type for s in steps} | {
        s.compensation.command_type for s in steps if s.compensation is not None
    }
    topics = {s.command_topic for s in steps} | {
        s.compensation.command_topic for s in steps if s.compensation is not None
    }
    assert set(participant.command_types) == commands == set(routes(OrderServices(Behaviour())))
    assert topics == set(ORDER_COMMAND_TOPICS)
    assert not (tmp_path / "state").exists()  # nothing opened before run
