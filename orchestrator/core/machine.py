"""``decide``: the one entry point of the saga state machine.

Pure by contract, enforced by configuration (import-linter forbids I/O and Kafka modules here,
ruff bans the clock, uuid and random): the same definition, state, input and ``now`` always give
an equal ``Decision``. That is what makes a Kafka transaction that aborted safe to redo, and a
saga's history replayable.
"""

from __future__ import annotations

from orchestrator.core.decision import Decision
from orchestrator.core.definition import SagaDefinition
from orchestrator.core.effects import Reject, RejectReason
from orchestrator.core.inputs import Input
from orchestrator.core.state import SagaState
from orchestrator.core.transitions import TABLE, DefinitionRaised

__all__ = ["decide", "next_deadline"]


def decide(definition: SagaDefinition, state: SagaState | None, event: Input, now: int) -> Decision:
    """Fold one input into a saga.

    ``state`` is the saga's current state or None if it does not exist; ``now`` is epoch
    milliseconds taken from the input record, never from a clock. Bad input never raises: it
    comes back as a ``Reject`` effect with the state unchanged. Calling this wrongly (a state of
    another saga or type) is a programming error and raises ``ValueError``.
    """
    if state is not None:
        if state.saga_id != event.saga_id:
            raise ValueError(f"input for {event.saga_id!r} decided against {state.saga_id!r}")
        if state.saga_type != definition.name:
            raise ValueError(f"state of {state.saga_type!r} decided with {definition.name!r}")
    handler = TABLE[(state.status if state else None, type(event))]
    try:
        return handler(definition, state, event, now)
    except DefinitionRaised as exc:
        return Decision(state, (Reject(RejectReason.DEFINITION_RAISED, str(exc)),))


def next_deadline(state: SagaState | None) -> int | None:
    """When the shell must call back with ``TimerFired`` (epoch ms), or None if never."""
    return state.timer.due_ms if state is not None and state.timer is not None else None
