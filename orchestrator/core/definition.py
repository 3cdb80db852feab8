"""The compiled form of a saga definition, as the state machine sees it.

Users never build these by hand: ``orchestrator.dsl`` compiles a ``Saga`` class into a
``SagaDefinition`` and validates it there, with fix-it messages. The core only needs names,
topics, policies and three kinds of callback over opaque JSON bytes (the saga's data, a command
payload, a reply payload). Keeping payloads opaque is what lets this package stay free of
pydantic: the DSL wraps the user's typed functions into byte-level ones.

A callback may raise (user code does): ``decide`` turns that into a ``Reject`` of the input,
never into a half-applied transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from orchestrator.core.retry import RetryPolicy

__all__ = [
    "BuildPayload",
    "CompensationDefinition",
    "MergeReply",
    "SagaDefinition",
    "StepDefinition",
    "StepKind",
]

BuildPayload = Callable[[bytes], bytes]
"""saga data (JSON) -> command payload (JSON)"""

MergeReply = Callable[[bytes, bytes], bytes]
"""(saga data, success reply payload) -> new saga data (all JSON)"""


class StepKind(Enum):
    """What undoing a step means.

    COMPENSABLE steps have a compensation. A PIVOT is the point of no return: once it has
    succeeded a later failure cannot be rolled back and parks the saga as FAILED. A READ_ONLY
    step changes nothing, so there is nothing to undo.
    """

    COMPENSABLE = "compensable"
    PIVOT = "pivot"
    READ_ONLY = "read_only"


@dataclass(frozen=True, slots=True)
class CompensationDefinition:
    command_topic: str
    command_type: str
    build_command: BuildPayload
    retry: RetryPolicy
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class StepDefinition:
    name: str
    kind: StepKind
    command_topic: str
    command_type: str
    build_command: BuildPayload
    merge_reply: MergeReply
    retry: RetryPolicy
    timeout_ms: int
    compensation: CompensationDefinition | None = None

    def __post_init__(self) -> None:
        if (self.kind is StepKind.COMPENSABLE) != (self.compensation is not None):
            raise ValueError(f"step {self.name!r}: only a COMPENSABLE step has a compensation")
        if self.timeout_ms <= 0:
            raise ValueError(f"step {self.name!r}: timeout_ms must be positive")


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    name: str
    steps: tuple[StepDefinition, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"saga {self.name!r} has no steps")
        index = {step.name: i for i, step in enumerate(self.steps)}
        if len(index) != len(self.steps):
            raise ValueError(f"saga {self.name!r} has duplicate step names")
        object.__setattr__(self, "_index", index)

    def step_index(self, name: str) -> int | None:
        return self._index.get(name)
