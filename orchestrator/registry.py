"""Name -> saga class, built from the explicit list in ``sagas/``.

The runtime looks a saga's definition up by the saga type stored in its state or start record,
and routes triggers by topic. Several saga types may share a trigger topic. Building the
registry is where duplicate saga types are caught, at start, not per record.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from orchestrator.core import SagaDefinition
from orchestrator.dsl import Saga
from orchestrator.errors import ConfigError

__all__ = ["Registry", "load_registry"]


class Registry:
    def __init__(self, sagas: Iterable[type[Saga[Any]]]) -> None:
        by_name: dict[str, type[Saga[Any]]] = {}
        by_topic: dict[str, list[type[Saga[Any]]]] = {}
        for saga in sagas:
            if not (isinstance(saga, type) and issubclass(saga, Saga)):
                raise ConfigError(f"{saga!r} in the saga list is not a Saga subclass")
            if saga.name in by_name:
                raise ConfigError(
                    f"saga type {saga.name!r} is defined twice ({by_name[saga.name].__qualname__}"
                    f" and {saga.__qualname__}); saga types must be unique"
                )
            by_name[saga.name] = saga
            by_topic.setdefault(saga.trigger.topic, []).append(saga)
        if not by_name:
            raise ConfigError("the saga list is empty: add your Saga classes to sagas.SAGAS")
        self._by_name = MappingProxyType(by_name)
        self._by_topic = MappingProxyType({t: tuple(s) for t, s in by_topic.items()})

    @property
    def sagas(self) -> Mapping[str, type[Saga[Any]]]:
        return self._by_name

    def definition(self, saga_type: str) -> SagaDefinition | None:
        saga = self._by_name.get(saga_type)
        return saga.definition if saga is not None else None

    def for_trigger_topic(self, topic: str) -> tuple[type[Saga[Any]], ...]:
        return self._by_topic.get(topic, ())

    @property
    def trigger_topics(self) -> frozenset[str]:
        return frozenset(self._by_topic)

    @property
    def command_topics(self) -> frozenset[str]:
        topics: set[str] = set()
        for saga in self._by_name.values():
            for step in saga.definition.steps:
                topics.add(step.command_topic)
                if step.compensation is not None:
                    topics.add(step.compensation.command_topic)
        return frozenset(topics)


def load_registry(module: str) -> Registry:
    """The registry of the ``SAGAS`` tuple in ``module``, or a ConfigError saying what to fix."""
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"saga module {module!r} not found ({exc}); set KSAGA_SAGAS_MODULE (or --sagas) to a"
            " module with a SAGAS tuple"
        ) from exc
    sagas = getattr(loaded, "SAGAS", None)
    if sagas is None:
        raise ConfigError(f"module {module!r} has no SAGAS tuple listing the sagas to run")
    return Registry(sagas)
