"""Test helpers for the pure core: random saga definitions and a tiny driver.

Definitions are generated with byte-level callbacks (no pydantic), so the properties exercise the
state machine alone. Data is a JSON list of the steps whose DO succeeded, in order, which lets a
test see exactly what the fold merged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from orchestrator.core import (
    Action,
    CompensationDefinition,
    Decision,
    Effect,
    Input,
    RetryPolicy,
    SagaDefinition,
    SagaState,
    SagaTriggered,
    SendCommand,
    StepDefinition,
    StepKind,
    decide,
)


def _build(step: str, action: Action) -> Callable[[bytes], bytes]:
    def build(data: bytes) -> bytes:
        return json.dumps({"step": step, "action": action.value, "data": json.loads(data)}).encode()

    return build


def _merge(step: str) -> Callable[[bytes, bytes], bytes]:
    def merge(data: bytes, payload: bytes) -> bytes:
        return json.dumps([*json.loads(data), step]).encode()

    return merge


THREE_ATTEMPTS = RetryPolicy(maximum_attempts=3)


def make_step(
    name: str,
    kind: StepKind,
    retry: RetryPolicy = THREE_ATTEMPTS,
    undo_retry: RetryPolicy = THREE_ATTEMPTS,
    timeout_ms: int = 1_000,
) -> StepDefinition:
    compensation = None
    if kind is StepKind.COMPENSABLE:
        compensation = CompensationDefinition(
            command_topic=f"{name}.commands",
            command_type=f"Undo{name}",
            build_command=_build(name, Action.UNDO),
            retry=undo_retry,
            timeout_ms=timeout_ms,
        )
    return StepDefinition(
        name=name,
        kind=kind,
        command_topic=f"{name}.commands",
        command_type=f"Do{name}",
        build_command=_build(name, Action.DO),
        merge_reply=_merge(name),
        retry=retry,
        timeout_ms=timeout_ms,
        compensation=compensation,
    )


retry_policies = st.builds(
    RetryPolicy,
    initial_interval_ms=st.integers(1, 5_000),
    backoff_coefficient=st.floats(1.0, 4.0, allow_nan=False),
    maximum_interval_ms=st.just(0),
    maximum_attempts=st.integers(1, 4),
    non_retryable_error_types=st.sampled_from([(), ("Fatal",)]),
)


@st.composite
def definitions(draw: st.DrawFn) -> SagaDefinition:
    """Random definitions obeying the DSL's rule: no compensable step after a pivot."""
    n = draw(st.integers(1, 5))
    steps = []
    pivot_seen = False
    for i in range(n):
        kinds = [StepKind.PIVOT, StepKind.READ_ONLY]
        if not pivot_seen:
            kinds.insert(0, StepKind.COMPENSABLE)
        kind = draw(st.sampled_from(kinds))
        pivot_seen = pivot_seen or kind is StepKind.PIVOT
        steps.append(
            make_step(
                f"s{i}",
                kind,
                retry=draw(retry_policies),
                undo_retry=draw(retry_policies),
                timeout_ms=draw(st.integers(1, 60_000)),
            )
        )
    return SagaDefinition(name="generated", steps=tuple(steps))


@dataclass
class Run:
    """Folds inputs one by one, keeping everything a property may want to look at."""

    definition: SagaDefinition
    saga_id: str = "saga-1"
    now: int = 1_000_000
    state: SagaState | None = None
    inputs: list[tuple[Input, int]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def feed(self, event: Input, now: int | None = None) -> Decision:
        if now is not None:
            self.now = max(self.now, now)
        decision = decide(self.definition, self.state, event, self.now)
        self.inputs.append((event, self.now))
        self.decisions.append(decision)
        self.state = decision.state
        return decision

    def start(self) -> Decision:
        return self.feed(SagaTriggered(self.saga_id, self.definition.name, b"[]"))

    @property
    def effects(self) -> list[Effect]:
        return [e for d in self.decisions for e in d.effects]

    @property
    def commands(self) -> list[SendCommand]:
        return [e for e in self.effects if isinstance(e, SendCommand)]
