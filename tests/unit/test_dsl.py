"""The saga DSL: classes compile into core definitions, and broken ones fail with fix-its."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from orchestrator.core import (
    Action,
    RetryPolicy,
    SagaStatus,
    SagaTriggered,
    StepKind,
    StepSucceeded,
    decide,
)
from orchestrator.dsl import Compensation, Saga, Step, Trigger
from orchestrator.errors import ConfigError, DefinitionError
from orchestrator.registry import Registry
from sagas import SAGAS
from sagas.order import OrderPlaced, OrderSaga


class Started(BaseModel):
    id: str


class Data(BaseModel):
    id: str
    seen: list[str] = []


class Cmd(BaseModel):
    id: str


class Ack(BaseModel):
    note: str = ""


def build(d: Data) -> Cmd:
    return Cmd(id=d.id)


def undo() -> Compensation[Data, Cmd]:
    return Compensation(command=Cmd, build=build)


def define(**steps: Step[Any, Any, Any]) -> type[Saga[Data]]:
    """Create a saga class the way a user writes one, with the given steps."""
    namespace: dict[str, Any] = {
        "name": "probe",
        "trigger": Trigger(topic="probes", event=Started),
        "data": Data,
        "saga_id": staticmethod(lambda e: f"probe/{e.id}"),
        "start": staticmethod(lambda e: Data(id=e.id)),
        **steps,
    }
    return type("Probe", (Saga,), namespace)


def compensable(**kw: Any) -> Step[Any, Any, Any]:
    fields: dict[str, Any] = {
        "topic": "a.commands",
        "command": Cmd,
        "build": build,
        "compensation": undo(),
        **kw,
    }
    return Step(**fields)


def rejects(match: str, make: Callable[[], object]) -> DefinitionError:
    with pytest.raises(DefinitionError, match=match) as info:
        make()
    return info.value


def test_the_order_saga_compiles_to_three_steps_with_the_declared_kinds() -> None:
    d = OrderSaga.definition
    assert d.name == "order"
    assert [(s.name, s.kind, s.command_topic, s.command_type) for s in d.steps] == [
        ("reserve_stock", StepKind.COMPENSABLE, "inventory.commands", "ReserveStock"),
        ("charge_payment", StepKind.COMPENSABLE, "payments.commands", "ChargePayment"),
        ("ship_order", StepKind.PIVOT, "shipping.commands", "ShipOrder"),
    ]
    comp = d.steps[0].compensation
    assert comp is not None
    assert (comp.command_type, comp.command_topic) == ("ReleaseStock", "inventory.commands")
    assert (OrderSaga,) == SAGAS


def test_route_derives_a_deterministic_saga_id_and_the_initial_data() -> None:
    event = OrderPlaced(
        order_id="o-1", customer_id="c", items=[{"sku": "x", "quantity": 2}], amount_cents=5,
        address="here",
    )  # fmt: skip
    first = OrderSaga.route(event.model_dump_json().encode())
    again = OrderSaga.route(event.model_dump_json().encode())
    assert first == again
    assert first[0] == "order/o-1"
    assert json.loads(first[1])["items"] == [{"sku": "x", "quantity": 2}]
    with pytest.raises(ValueError, match="validation error"):
        OrderSaga.route(b'{"order_id": 1}')


def test_compiled_callbacks_speak_json_bytes_and_merge_typed_replies() -> None:
    event = OrderPlaced(
        order_id="o-2", customer_id="c", items=[{"sku": "x", "quantity": 1}], amount_cents=9,
        address="there",
    )  # fmt: skip
    saga_id, data = OrderSaga.route(event.model_dump_json().encode())
    d = OrderSaga.definition
    started = decide(d, None, SagaTriggered(saga_id, "order", data), 0)
    assert started.state is not None
    reply = StepSucceeded(saga_id, "reserve_stock", Action.DO, 1, b'{"reservation_id": "r-9"}')
    after = decide(d, started.state, reply, 1)
    assert after.state is not None
    assert json.loads(after.state.data)["reservation_id"] == "r-9"
    charge = after.effects[1]
    assert json.loads(charge.payload) == {  # type: ignore[union-attr]
        "order_id": "o-2", "customer_id": "c", "amount_cents": 9,
    }  # fmt: skip
    bad = decide(d, started.state, StepSucceeded(saga_id, "reserve_stock", Action.DO, 1, b"{}"), 1)
    assert bad.rejected is not None  # reply failed validation: dead-lettered, state kept
    assert bad.state is started.state
    assert bad.state.status is SagaStatus.RUNNING


def test_a_step_without_compensation_must_be_declared_pivot_or_read_only() -> None:
    err = rejects("no compensation", lambda: define(a=Step(topic="t", command=Cmd, build=build)))
    assert (err.saga, err.step) == ("probe", "a")
    assert "pivot=True" in str(err)
    assert define(a=Step(topic="t", command=Cmd, build=build, read_only=True)).definition


def test_a_compensation_on_a_step_that_cannot_have_one_is_rejected() -> None:
    rejects(
        "cannot have one",
        lambda: define(
            a=Step(topic="t", command=Cmd, build=build, compensation=undo(), pivot=True)
        ),
    )
    err = rejects(
        "after the pivot 'a'",
        lambda: define(a=Step(topic="t", command=Cmd, build=build, pivot=True), b=compensable()),
    )
    assert err.step == "b"


def test_duplicate_step_names_are_rejected() -> None:
    err = rejects("duplicate step name", lambda: define(a=compensable(), b=compensable(name="a")))
    assert err.step == "a"


def test_missing_pieces_are_named() -> None:
    rejects("at least one", define)
    rejects("not a valid Kafka topic", lambda: define(a=compensable(topic="no spaces")))
    rejects("positive timedelta", lambda: define(a=compensable(timeout=timedelta(0))))
    rejects("must be a RetryPolicy", lambda: define(a=compensable(retry={"maximum_attempts": 3})))
    rejects(
        "needs `reply=",
        lambda: define(a=compensable(on_success=lambda d, r: d)),
    )

    def no_id() -> type:
        return type(
            "NoId",
            (Saga,),
            {"name": "x", "trigger": Trigger(topic="t", event=Started), "data": Data},
        )

    rejects("saga_id", no_id)
    rejects("`name", lambda: type("Nameless", (Saga,), {}))


def test_payload_types_must_be_json_serialisable_pydantic_models() -> None:
    class Opaque:
        pass

    class Weird(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        thing: Opaque

    err = rejects("not serialisable to JSON", lambda: define(a=compensable(command=Weird)))
    assert err.step == "a"
    rejects("pydantic BaseModel", lambda: define(a=compensable(command=dict)))


def test_retry_policy_defaults_are_temporals() -> None:
    step = define(a=compensable()).definition.steps[0]
    assert step.retry == RetryPolicy()
    assert (step.retry.initial_interval_ms, step.retry.backoff_coefficient) == (1_000, 2.0)
    assert step.retry.effective_maximum_interval_ms == 100_000
    assert step.timeout_ms == 30_000


def test_registry_routes_by_trigger_topic_and_refuses_duplicates() -> None:
    registry = Registry(SAGAS)
    assert registry.for_trigger_topic("orders") == (OrderSaga,)
    assert registry.definition("order") is OrderSaga.definition
    assert registry.definition("nope") is None
    assert registry.command_topics == {
        "inventory.commands", "payments.commands", "shipping.commands",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="defined twice"):
        Registry([OrderSaga, OrderSaga])
    with pytest.raises(ConfigError, match="empty"):
        Registry([])
