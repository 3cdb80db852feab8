"""Which definition folds an inbox input, or why none does.

Shared by the loop and the log checker, so the checker replays exactly the routing the loop
applies rather than a copy of it that could drift. Pure: no Kafka, no store access (the caller
passes the saga's current state).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core import Input, SagaDefinition, SagaState, SagaTriggered, TimerFired
from orchestrator.partitioning import partition_for
from orchestrator.registry import Registry

__all__ = ["Unroutable", "definition_for"]


@dataclass(frozen=True, slots=True)
class Unroutable:
    """No definition folds the input: dead-letter it with ``reason``, or just ignore it."""

    reason: str
    detail: str
    dead_letter: bool


def definition_for(
    registry: Registry, partitions: int, partition: int, event: Input, state: SagaState | None
) -> SagaDefinition | Unroutable:
    saga_id = event.saga_id
    home = partition_for(saga_id, partitions)
    if home != partition:
        return Unroutable("wrong-partition", f"saga {saga_id!r} lives in partition {home}", True)
    if state is not None:
        saga_type = state.saga_type
    elif isinstance(event, SagaTriggered):
        saga_type = event.saga_type
    elif isinstance(event, TimerFired):  # a timer of a saga that is gone: nothing to do
        return Unroutable("stale-timer", f"no saga {saga_id!r}", False)
    else:  # a reply, or an operator's resume or cancel, for a saga that does not exist
        return Unroutable("unknown-saga", f"no saga {saga_id!r}", True)
    definition = registry.definition(saga_type)
    if definition is None:
        return Unroutable("unknown-saga-type", f"no saga type {saga_type!r} here", True)
    return definition
