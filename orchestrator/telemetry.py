"""What a committed batch tells operators: saga counters, step latency, saga duration, pending
timers, the ``saga finished`` log line, and the spans of finished attempts and sagas.

The loop reports every fold here (:meth:`Telemetry.folded`) while its transaction is open; the
figures are published only when the transaction commits (:meth:`Telemetry.committed`) and
dropped when it aborts (:meth:`Telemetry.aborted`), so a batch that is redone counts once. It
only reads states and inputs the loop already holds and must never change what is produced or
stored. Cheap by construction: a few type checks per fold, one clock read per attempt or saga
that ends, and no span work at all when tracing is off.

Why latency needs no memory of its own: ``decide`` stamps ``updated_ms = now`` on every transition
that sends a command, and nothing else moves a saga that waits for a reply (stale and rejected
inputs leave it as it is). So while a saga waits, its ``updated_ms`` *is* the send time of the
command in flight (the ``sent_ms`` the command carries), and it is in ``ksaga.state``: the replica
that folds the reply after a restart or a partition move reads it from its restored store.
Likewise a saga's duration starts at the ``started_ms`` of its state.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from prometheus_client import Histogram

from orchestrator import clock
from orchestrator.core import (
    Effect,
    Input,
    SagaDefinition,
    SagaState,
    SendCommand,
    StepFailed,
    StepSucceeded,
    TimerFired,
    TimerKind,
)
from orchestrator.metrics import Metrics
from orchestrator.records import Source
from orchestrator.tracing import SagaTracer

__all__ = ["AttemptEnded", "Telemetry", "ended_attempt"]

_log = structlog.get_logger("ksaga.loop")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """A command attempt that a fold ended, with the time its command was sent."""

    saga_id: str
    saga_type: str
    step: str
    action: str  # "DO" or "UNDO"
    attempt: int
    outcome: str  # one of metrics.OUTCOMES
    sent_ms: int


def ended_attempt(
    definition: SagaDefinition, before: SagaState | None, event: Input, after: SagaState | None
) -> AttemptEnded | None:
    """The attempt this fold ended (its reply or its timeout moved the saga), if any. Pure.

    Only the reply ``decide`` awaited, or the pending TIMEOUT timer, can move a waiting saga;
    anything else comes back as the very same state object.
    """
    if before is None or after is None or after is before:
        return None
    timer = before.timer
    if timer is None or timer.kind is not TimerKind.TIMEOUT:
        return None
    if isinstance(event, StepSucceeded):
        outcome = "succeeded"
    elif isinstance(event, StepFailed):
        outcome = "failed_retryable" if event.retryable else "failed"
    elif isinstance(event, TimerFired) and event.token == timer.token:
        outcome = "timed_out"
    else:
        return None
    return AttemptEnded(
        saga_id=before.saga_id,
        saga_type=before.saga_type,
        step=definition.steps[before.step].name,
        action=before.action.value,
        attempt=before.attempt,
        outcome=outcome,
        sent_ms=before.updated_ms,
    )


@dataclass(frozen=True, slots=True)
class _Finished:
    state: SagaState
    source: Source  # the inbox record whose fold finished the saga
    step: str
    end_ns: int


@dataclass
class _Pending:
    """One open transaction's observations."""

    started: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    ended: list[tuple[AttemptEnded, int]] = field(default_factory=list)
    finished: list[_Finished] = field(default_factory=list)
    timers: Counter[int] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    routed: int = 0
    fired: int = 0


class Telemetry:
    """Per-batch observations of one replica, published on commit (see the module docstring)."""

    def __init__(self, metrics: Metrics, tracer: SagaTracer | None = None) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self._pending = _Pending()
        self._timers: dict[int, int] = {}  # restored partition -> armed timers (committed)
        # prometheus-client validates label values on every .labels() call (~3 µs); the
        # label sets are few (saga type x step x action x outcome), so keep their children.
        self._latency: dict[tuple[str, str, str, str], Histogram] = {}

    def folded(
        self,
        definition: SagaDefinition,
        source: Source,
        *,
        before: SagaState | None,
        event: Input,
        after: SagaState,
        effects: tuple[Effect, ...],
    ) -> None:
        """A fold that changed a saga (``after`` is not ``before``), inside the transaction."""
        pending = self._pending
        if before is None:
            pending.started[after.saga_type] += 1
        for effect in effects:
            if isinstance(effect, SendCommand):
                pending.commands[effect.action.value] += 1
        ended = ended_attempt(definition, before, event, after)
        if ended is not None:
            pending.ended.append((ended, clock.wall_ns()))
        if after.status.terminal and (before is None or not before.status.terminal):
            step = definition.steps[after.step].name
            pending.finished.append(_Finished(after, source, step, clock.wall_ns()))
        had = before is not None and before.timer is not None
        delta = (after.timer is not None) - had
        if delta:
            pending.timers[source.partition] += delta

    def ignored(self, reason: str) -> None:
        """A record that changes nothing by design (a duplicate start, a stale reply or timer)."""
        self._pending.ignored[reason] += 1

    def dead_lettered(self, reason: str) -> None:
        self._pending.dead_letters[reason] += 1

    def routed(self, triggers: int) -> None:
        self._pending.routed += triggers

    def timers_fired(self, timers: int) -> None:
        self._pending.fired += timers

    def aborted(self) -> None:
        self._pending = _Pending()

    def committed(self) -> None:
        pending, self._pending = self._pending, _Pending()
        m = self.metrics
        for saga_type, count in pending.started.items():
            m.started.labels(saga_type).inc(count)
        for action, count in pending.commands.items():
            m.commands.labels(action).inc(count)
        for reason, count in pending.ignored.items():
            m.ignored.labels(reason).inc(count)
        for reason, count in pending.dead_letters.items():
            m.dead_letters.labels(reason).inc(count)
        if pending.routed:
            m.triggers.inc(pending.routed)
        if pending.fired:
            m.timers_fired.inc(pending.fired)
        for ended, end_ns in pending.ended:
            seconds = max(0.0, end_ns / 1e9 - ended.sent_ms / 1e3)
            key = (ended.saga_type, ended.step, ended.action, ended.outcome)
            child = self._latency.get(key)
            if child is None:
                child = self._latency[key] = m.step_latency.labels(*key)
            child.observe(seconds)
            if self.tracer is not None:
                self._trace(self.tracer.attempt, ended, end_ns)
        for done in pending.finished:
            state = done.state
            seconds = max(0.0, done.end_ns / 1e9 - state.started_ms / 1e3)
            m.finished.labels(state.saga_type, state.status.value).inc()
            m.saga_duration.labels(state.saga_type, state.status.value).observe(seconds)
            _log.info(
                "saga finished",
                saga_id=state.saga_id,
                saga_type=state.saga_type,
                status=state.status.value,
                step=done.step,
                action=state.action.value,
                attempt=state.attempt,
                partition=done.source.partition,
                offset=done.source.offset,
                duration_ms=round(seconds * 1000, 1),
            )
            if self.tracer is not None:
                self._trace(self.tracer.saga, state, done.end_ns)
        if pending.timers:
            for partition, delta in pending.timers.items():
                if partition in self._timers:
                    self._timers[partition] += delta
            m.timers_pending.set(sum(self._timers.values()))

    def _trace(self, make: Callable[[T, int], None], what: T, end_ns: int) -> None:
        """Make a span; a tracing failure is logged, never allowed to stop the loop."""
        try:
            make(what, end_ns)
        except Exception as exc:
            _log.warning("span not recorded", error=f"{type(exc).__name__}: {exc}")

    def partition_restored(self, partition: int, armed_timers: int) -> None:
        """A partition became active with ``armed_timers`` timers in its restored store."""
        self._timers[partition] = armed_timers
        self.metrics.timers_pending.set(sum(self._timers.values()))

    def partition_dropped(self, partition: int) -> None:
        """A partition was revoked or lost: its timers and lag are another replica's now."""
        self._timers.pop(partition, None)
        self.metrics.timers_pending.set(sum(self._timers.values()))
        with contextlib.suppress(KeyError):  # never sampled
            self.metrics.consumer_lag.remove(str(partition))

    def lag(self, partition: int, records: int) -> None:
        self.metrics.consumer_lag.labels(str(partition)).set(records)

    def lags(self, lags: Mapping[int, int]) -> None:
        """Lag of each restored inbox partition (``admission.cached_lags``); the loop samples it
        every few seconds."""
        for partition, records in lags.items():
            self.lag(partition, records)
