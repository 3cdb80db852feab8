"""The result of deciding one input: the saga's next state and the effects to perform."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.effects import Effect, Ignore, Reject
from orchestrator.core.state import SagaState

__all__ = ["Decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """``state`` is None only when there was no saga and the input did not create one."""

    state: SagaState | None
    effects: tuple[Effect, ...]

    @property
    def rejected(self) -> Reject | None:
        return next((e for e in self.effects if isinstance(e, Reject)), None)

    @property
    def ignored(self) -> Ignore | None:
        return next((e for e in self.effects if isinstance(e, Ignore)), None)
