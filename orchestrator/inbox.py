"""How one inbox record folds: which definition takes it, and what ``decide`` makes of it.

Shared by the loop, the log checker and ``ksaga replay``, so the checker and the replay fold
exactly what the loop folds rather than a copy of it that could drift. Pure: no Kafka, no
store access (the caller passes the saga's current state, or a lookup of it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.core import (
    Decision,
    Input,
    SagaDefinition,
    SagaState,
    SagaTriggered,
    TimerFired,
    decide,
)
from orchestrator.errors import DecodeError
from orchestrator.partitioning import partition_for
from orchestrator.registry import Registry
from orchestrator.wire import decode_input

__all__ = ["DeadLetter", "Folded", "Refold", "Unroutable", "definition_for", "fold_record"]


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


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a record goes to the dead-letter topic (its ``ksaga.dlq.*`` reason headers)."""

    reason: str
    error_class: str
    detail: str


@dataclass(frozen=True, slots=True)
class Folded:
    """What one inbox record does.

    ``decision`` is set when ``decide`` ran. ``changed`` is the saga's new state when the
    record made a transition (a state record, a history record and the decision's commands
    follow); ``dead_letter`` says why the record is parked; ``ignored`` names why a record
    changes nothing by design (a duplicate start, a stale reply or timer). A rejected decision
    has ``dead_letter`` set and no ``changed``. ``error`` is what ``decide`` raised (a bug).
    """

    event: Input | None
    before: SagaState | None
    decision: Decision | None = None
    definition: SagaDefinition | None = None  # the saga's steps, once the record was routed
    dead_letter: DeadLetter | None = None
    ignored: str | None = None
    error: Exception | None = None

    @property
    def changed(self) -> SagaState | None:
        decision = self.decision
        if decision is None or decision.ignored is not None:
            return None
        state = decision.state
        return None if state is None or state is self.before else state


def fold_record(
    registry: Registry,
    partitions: int,
    partition: int,
    value: bytes | None,
    *,
    state_of: Callable[[str], SagaState | None],
    now: int,
) -> Folded:
    """Decode, route and decide one inbox record of ``partition`` at time ``now``.

    Never raises for bad input or a definition's bug: both come back as ``dead_letter``, as the
    loop needs to go on. ``state_of`` is asked once, for the record's saga.
    """
    try:
        event = decode_input(value)
    except DecodeError as exc:
        return Folded(None, None, dead_letter=DeadLetter(exc.reason, "DecodeError", str(exc)))
    state = state_of(event.saga_id)
    target = definition_for(registry, partitions, partition, event, state)
    if isinstance(target, Unroutable):
        if target.dead_letter:
            letter = DeadLetter(target.reason, "Reject", target.detail)
            return Folded(event, state, dead_letter=letter)
        return Folded(event, state, ignored=target.reason)
    try:
        decision = decide(target, state, event, now)
    except Exception as exc:  # a bug must not stop the loop: park the record
        letter = DeadLetter("internal-error", type(exc).__name__, str(exc))
        return Folded(event, state, dead_letter=letter, error=exc, definition=target)
    if decision.ignored is not None:
        reason = decision.ignored.reason.value
        return Folded(event, state, decision, ignored=reason, definition=target)
    reject = decision.rejected
    if reject is not None:
        letter = DeadLetter(reject.reason.value, "Reject", reject.detail)
        return Folded(event, state, decision, dead_letter=letter, definition=target)
    return Folded(event, state, decision, definition=target)


class Refold:
    """The loop's fold replayed in memory: committed inbox records in, per-saga states kept.

    Feed it each partition's records in offset order (sagas never span partitions). ``states``
    may be seeded, e.g. with the states recorded just before a replay's starting point; a saga
    absent from it folds from nothing, as on its first record.
    """

    def __init__(
        self,
        registry: Registry,
        partitions: int,
        states: dict[str, SagaState | None] | None = None,
    ) -> None:
        self.registry = registry
        self.partitions = partitions
        self.states: dict[str, SagaState | None] = dict(states or {})

    def feed(self, partition: int, value: bytes | None, now: int) -> Folded:
        folded = fold_record(
            self.registry, self.partitions, partition, value, state_of=self.states.get, now=now
        )
        changed = folded.changed
        if changed is not None:
            self.states[changed.saga_id] = changed
        return folded
