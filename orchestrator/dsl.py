"""Sagas as Python classes: the public definition API, compiled into a core definition.

A saga is a subclass of ``Saga`` naming its type, its trigger, its data model, how the saga id
and the initial data derive from the trigger, and its ordered steps (class attributes holding
``Step`` values, in the order they are written)::

    class OrderSaga(Saga[OrderData]):
        name = "order"
        trigger = Trigger(topic="orders", event=OrderPlaced)
        data = OrderData

        @staticmethod
        def saga_id(event: OrderPlaced) -> str:
            return f"order/{event.order_id}"

        @staticmethod
        def start(event: OrderPlaced) -> OrderData: ...

        reserve_stock = Step(topic="inventory.commands", command=ReserveStock, build=...,
                             compensation=Compensation(command=ReleaseStock, build=...))
        ship_order = Step(topic="shipping.commands", command=ShipOrder, build=..., pivot=True)

The class is validated when it is created (``__init_subclass__``), so a broken definition fails
at import with a message naming the saga, the step and the fix; nothing is registered as a side
effect (``sagas/__init__.py`` lists the sagas the runtime runs). Payloads are pydantic v2 models
carried as JSON; the compiled ``SagaDefinition`` sees only bytes, which keeps the core free of
pydantic. The saga id must be a deterministic function of the trigger: a repeated trigger must
map to the same saga so that the start is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from pydantic.errors import PydanticUserError

from orchestrator.core import (
    CompensationDefinition,
    RetryPolicy,
    SagaDefinition,
    StepDefinition,
    StepKind,
)
from orchestrator.errors import DefinitionError

__all__ = ["Compensation", "RetryPolicy", "Saga", "Step", "Trigger"]

D = TypeVar("D", bound=BaseModel)
E = TypeVar("E", bound=BaseModel)
C = TypeVar("C", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

DEFAULT_TIMEOUT = timedelta(seconds=30)
DEFAULT_RETRY = RetryPolicy()
"""Temporal's defaults: 1 s, x2.0, at most 100 s apart, unlimited attempts."""
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SAGA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Trigger(Generic[E]):
    """The event that starts a saga and the topic services publish it to."""

    topic: str
    event: type[E]


@dataclass(frozen=True, slots=True)
class Compensation(Generic[D, C]):
    """The command that undoes a step. ``topic`` defaults to the step's command topic."""

    command: type[C]
    build: Callable[[D], C]
    topic: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: timedelta = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Step(Generic[D, C, R]):
    """One step: a command to a participant and what its success reply changes.

    Exactly one of ``compensation``, ``pivot=True`` (the point of no return) or
    ``read_only=True`` (nothing to undo) must be given: a step without compensation is allowed
    only when declared as such. ``reply`` validates the success payload; ``on_success`` merges it
    into the saga's data (default: data unchanged).
    """

    topic: str
    command: type[C]
    build: Callable[[D], C]
    reply: type[R] | None = None
    on_success: Callable[[D, R], D] | None = None
    compensation: Compensation[D, Any] | None = None
    pivot: bool = False
    read_only: bool = False
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: timedelta = DEFAULT_TIMEOUT
    name: str | None = None
    """Defaults to the attribute name; set it to keep a stable name across a rename."""


class Saga(Generic[D]):
    """Base class of saga definitions. Subclasses are validated and compiled on creation."""

    name: ClassVar[str]
    trigger: ClassVar[Trigger[Any]]
    data: ClassVar[type[BaseModel]]
    definition: ClassVar[SagaDefinition]
    """The compiled, validated definition the state machine runs (set on class creation)."""
    steps: ClassVar[tuple[tuple[str, Step[Any, Any, Any]], ...]]

    @staticmethod
    def saga_id(event: Any) -> str:
        raise NotImplementedError

    @staticmethod
    def start(event: Any) -> BaseModel:
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.steps = tuple(_collect_steps(cls))
        cls.definition = _compile(cls)

    @classmethod
    def route(cls, event_json: bytes) -> tuple[str, bytes]:
        """Trigger payload (JSON) -> (saga id, initial data JSON). Raises on a bad event."""
        event = cls.trigger.event.model_validate_json(event_json)
        saga_id = cls.saga_id(event)
        if not isinstance(saga_id, str) or not saga_id:
            raise ValueError(f"{cls.__name__}.saga_id returned {saga_id!r}, not a non-empty str")
        data = cls.start(event)
        if not isinstance(data, cls.data):
            raise TypeError(f"{cls.__name__}.start returned {type(data).__name__}, not data")
        return saga_id, data.model_dump_json().encode()


# --------------------------------------------------------------------------- validation


def _collect_steps(cls: type) -> list[tuple[str, Step[Any, Any, Any]]]:
    steps: dict[str, Step[Any, Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Step):
                steps.pop(attr, None)
                steps[attr] = value
    return [(step.name or attr, step) for attr, step in steps.items()]


def _compile(cls: type[Saga[Any]]) -> SagaDefinition:
    saga = getattr(cls, "name", None) or cls.__name__

    def fail(step: str | None, problem: str) -> DefinitionError:
        return DefinitionError(saga, step, problem)

    if not isinstance(getattr(cls, "name", None), str) or not _SAGA_NAME.match(cls.name):
        raise fail(
            None,
            'set `name = "..."` (letters, digits, . _ -): it is the saga type'
            " stored with every saga, so it must not change once sagas run",
        )
    trigger = getattr(cls, "trigger", None)
    if not isinstance(trigger, Trigger):
        raise fail(None, "set `trigger = Trigger(topic=..., event=<pydantic model>)`")
    _check_topic(fail, None, "trigger topic", trigger.topic)
    _check_model(fail, None, "trigger event", trigger.event)
    _check_model(fail, None, "`data`", getattr(cls, "data", None))
    for hook in ("saga_id", "start"):
        if getattr(cls, hook) is getattr(Saga, hook):
            raise fail(
                None,
                f"define `@staticmethod def {hook}(event)`"
                + (
                    ": a deterministic id from the trigger, so duplicates dedupe"
                    if hook == "saga_id"
                    else ": the initial saga data from the trigger"
                ),
            )
    if not cls.steps:
        raise fail(None, "declare at least one `Step(...)` as a class attribute")

    seen: set[str] = set()
    pivot: str | None = None
    compiled: list[StepDefinition] = []
    for name, step in cls.steps:
        if name in seen:
            raise fail(name, "duplicate step name; give each step a unique `name`")
        seen.add(name)
        compiled.append(_compile_step(fail, cls.data, name, step, pivot))
        if step.pivot:
            pivot = name
    return SagaDefinition(name=cls.name, steps=tuple(compiled))


def _compile_step(
    fail: Callable[[str | None, str], DefinitionError],
    data_model: type[BaseModel],
    name: str,
    step: Step[Any, Any, Any],
    pivot_before: str | None,
) -> StepDefinition:
    _check_topic(fail, name, "topic", step.topic)
    _check_model(fail, name, "command", step.command)
    if step.reply is not None:
        _check_model(fail, name, "reply", step.reply)
    if not callable(step.build):
        raise fail(name, "`build` must be a function from the saga data to the command")
    if step.on_success is not None and step.reply is None:
        raise fail(name, "`on_success` needs `reply=<pydantic model>` to parse the reply into")
    if step.pivot and step.read_only:
        raise fail(name, "a step is either `pivot=True` or `read_only=True`, not both")
    if step.compensation is not None and (step.pivot or step.read_only):
        raise fail(
            name,
            "a compensation on a step that cannot have one: a pivot or read-only"
            " step is never undone; remove the compensation or the flag",
        )
    if step.compensation is None and not (step.pivot or step.read_only):
        raise fail(
            name,
            "no compensation: add `compensation=Compensation(...)`, or declare the"
            " step `pivot=True` (point of no return) or `read_only=True`",
        )
    if step.compensation is not None and pivot_before is not None:
        raise fail(
            name,
            f"a compensation on a step that cannot have one: it comes after the pivot"
            f" {pivot_before!r}, past which the saga is never rolled back",
        )
    if not isinstance(step.retry, RetryPolicy):
        raise fail(name, "`retry` must be a RetryPolicy")
    timeout_ms = _timeout_ms(fail, name, step.timeout)

    compensation = None
    kind = StepKind.PIVOT if step.pivot else StepKind.READ_ONLY
    if step.compensation is not None:
        comp = step.compensation
        _check_model(fail, name, "compensation command", comp.command)
        if comp.topic is not None:
            _check_topic(fail, name, "compensation topic", comp.topic)
        if not isinstance(comp.retry, RetryPolicy):
            raise fail(name, "compensation `retry` must be a RetryPolicy")
        compensation = CompensationDefinition(
            command_topic=comp.topic or step.topic,
            command_type=comp.command.__name__,
            build_command=_builder(data_model, comp.command, comp.build),
            retry=comp.retry,
            timeout_ms=_timeout_ms(fail, name, comp.timeout),
        )
        kind = StepKind.COMPENSABLE
    return StepDefinition(
        name=name,
        kind=kind,
        command_topic=step.topic,
        command_type=step.command.__name__,
        build_command=_builder(data_model, step.command, step.build),
        merge_reply=_merger(data_model, step.reply, step.on_success),
        retry=step.retry,
        timeout_ms=timeout_ms,
        compensation=compensation,
    )


def _check_topic(
    fail: Callable[[str | None, str], DefinitionError], step: str | None, what: str, topic: Any
) -> None:
    if not isinstance(topic, str) or not _TOPIC.match(topic) or topic in {".", ".."}:
        raise fail(step, f"{what} {topic!r} is not a valid Kafka topic name")


def _check_model(
    fail: Callable[[str | None, str], DefinitionError], step: str | None, what: str, model: Any
) -> None:
    """Payloads travel as JSON: the model must be pydantic and JSON-serialisable."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise fail(step, f"{what} must be a pydantic BaseModel subclass, got {model!r}")
    try:
        model.model_json_schema(mode="serialization")
        model.model_json_schema(mode="validation")
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise fail(step, f"{what} {model.__name__} is not serialisable to JSON: {exc}") from exc


def _timeout_ms(fail: Callable[[str | None, str], DefinitionError], step: str, timeout: Any) -> int:
    if not isinstance(timeout, timedelta) or timeout <= timedelta(0):
        raise fail(step, f"timeout must be a positive timedelta, got {timeout!r}")
    return max(1, int(timeout.total_seconds() * 1000))


# --------------------------------------------------------------------------- byte adapters


def _builder(
    data_model: type[BaseModel], command: type[BaseModel], build: Callable[[Any], Any]
) -> Callable[[bytes], bytes]:
    def build_command(data: bytes) -> bytes:
        result = build(data_model.model_validate_json(data))
        if not isinstance(result, command):
            raise TypeError(f"builder returned {type(result).__name__}, not {command.__name__}")
        return result.model_dump_json().encode()

    return build_command


def _merger(
    data_model: type[BaseModel],
    reply: type[BaseModel] | None,
    on_success: Callable[[Any, Any], Any] | None,
) -> Callable[[bytes, bytes], bytes]:
    def merge_reply(data: bytes, payload: bytes) -> bytes:
        if reply is None:
            return data
        parsed = reply.model_validate_json(payload or b"{}")
        if on_success is None:
            return data
        result = on_success(data_model.model_validate_json(data), parsed)
        if not isinstance(result, data_model):
            raise TypeError(f"on_success returned {type(result).__name__}, not saga data")
        return result.model_dump_json().encode()

    return merge_reply
