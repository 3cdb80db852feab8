"""Telemetry without Kafka: which attempt a fold ends, what a commit publishes (and an abort
does not), spans with the ids the command headers carry, the log context, the exporter choice."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator import traceids
from orchestrator.core import (
    Action,
    Input,
    SagaDefinition,
    SagaState,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepKind,
    StepSucceeded,
    TimerFired,
    decide,
)
from orchestrator.errors import ConfigError
from orchestrator.logs import RecordContext, add_record_context, handling
from orchestrator.metrics import Metrics
from orchestrator.records import Source, command_out
from orchestrator.telemetry import AttemptEnded, Telemetry, ended_attempt
from orchestrator.tracing import SagaTracer, extract_context, span_processor
from schemas import headers
from tests.unit.machine_driver import make_step

DEFINITION = SagaDefinition(
    name="trip",
    steps=(make_step("book", StepKind.COMPENSABLE), make_step("pay", StepKind.PIVOT)),
)
SAGA = "trip/1"
SOURCE = Source("ksaga.inbox", 0, 41)


class Saga:
    """Folds inputs through ``decide`` and hands each fold to a Telemetry, as the loop does."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self.state: SagaState | None = None
        self.telemetry = telemetry
        self.sent: list[SendCommand] = []

    def fold(self, event: Input, now: int) -> AttemptEnded | None:
        before = self.state
        decision = decide(DEFINITION, before, event, now)
        ended = ended_attempt(DEFINITION, before, event, decision.state)
        self.sent += [e for e in decision.effects if isinstance(e, SendCommand)]
        if decision.state is not None and decision.state is not before:
            if self.telemetry is not None:
                self.telemetry.folded(
                    DEFINITION, SOURCE, before=before, event=event, after=decision.state,
                    effects=decision.effects,
                )  # fmt: skip
            self.state = decision.state
        return ended

    @property
    def timer_token(self) -> str:
        assert self.state is not None
        assert self.state.timer is not None
        return self.state.timer.token


def start(saga: Saga, now: int = 1_000) -> None:
    assert saga.fold(SagaTriggered(SAGA, "trip", b"[]"), now) is None


def test_a_reply_or_a_timeout_ends_the_attempt_in_flight_sent_at_updated_ms() -> None:
    saga = Saga()
    start(saga)
    ended = saga.fold(StepSucceeded(SAGA, "book", Action.DO, 1, b"{}"), 1_500)
    assert ended == AttemptEnded(SAGA, "trip", "book", "DO", 1, "succeeded", 1_000)
    # stale: a reply for an attempt not in flight, a second copy of the one just folded
    assert saga.fold(StepSucceeded(SAGA, "book", Action.DO, 1, b"{}"), 1_600) is None
    assert saga.fold(StepSucceeded(SAGA, "pay", Action.DO, 2, b"{}"), 1_600) is None
    assert saga.fold(TimerFired(SAGA, "pay|DO|1|backoff"), 1_600) is None
    # pay attempt 1 (sent at 1500) fails retryably; the backoff firing sends attempt 2 (no end)
    retry = StepFailed(SAGA, "pay", Action.DO, 1, "Busy", "later", retryable=True)
    assert saga.fold(retry, 1_700) == AttemptEnded(
        SAGA, "trip", "pay", "DO", 1, "failed_retryable", 1_500
    )
    assert saga.fold(TimerFired(SAGA, saga.timer_token), 3_000) is None
    # attempt 2, sent when the backoff fired, times out
    ended = saga.fold(TimerFired(SAGA, saga.timer_token), 9_000)
    assert ended == AttemptEnded(SAGA, "trip", "pay", "DO", 2, "timed_out", 3_000)


def test_a_rejected_reply_ends_nothing() -> None:
    saga = Saga()
    start(saga)
    assert saga.fold(StepSucceeded(SAGA, "teleport", Action.DO, 1, b"{}"), 1_100) is None
    failed = StepFailed(SAGA, "book", Action.DO, 1, "Full", "no room", retryable=False)
    assert saga.fold(failed, 1_200) == AttemptEnded(SAGA, "trip", "book", "DO", 1, "failed", 1_000)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.value(name, labels)


def test_commit_publishes_once_abort_drops_and_spans_carry_the_command_ids() -> None:
    exporter = InMemorySpanExporter()
    metrics = Metrics()
    telemetry = Telemetry(metrics, SagaTracer(SimpleSpanProcessor(exporter)))
    telemetry.partition_restored(0, 5)
    assert value(metrics, "ksaga_timers_pending") == 5

    aborted = Saga(telemetry)
    start(aborted)
    aborted.fold(StepSucceeded(SAGA, "book", Action.DO, 1, b"{}"), 1_500)
    assert value(metrics, "ksaga_sagas_started_total", saga_type="trip") == 0  # not committed
    telemetry.aborted()
    telemetry.committed()  # the redone batch's commit: the aborted folds are gone
    assert value(metrics, "ksaga_sagas_started_total", saga_type="trip") == 0
    assert exporter.get_finished_spans() == ()

    saga = Saga(telemetry)
    start(saga)
    saga.fold(StepSucceeded(SAGA, "book", Action.DO, 1, b"{}"), 1_500)
    telemetry.committed()
    assert value(metrics, "ksaga_sagas_started_total", saga_type="trip") == 1
    assert value(metrics, "ksaga_commands_sent_total", action="DO") == 2
    assert value(metrics, "ksaga_timers_pending") == 6  # the saga waits on one timer
    latency = {"saga_type": "trip", "step": "book", "action": "DO", "outcome": "succeeded"}
    assert value(metrics, "ksaga_step_latency_seconds_count", **latency) == 1
    (span,) = exporter.get_finished_spans()
    book = saga.sent[0]
    trace_id, span_id = _ids(command_out(book, "ksaga.inbox", 0, 1_000).headers)
    assert (span.context.trace_id, span.context.span_id) == (trace_id, span_id)
    assert span.context.trace_id == traceids.trace_id(SAGA)
    assert span.parent is not None
    assert span.parent.span_id == traceids.saga_span_id(SAGA)
    assert span.start_time == 1_000 * 1_000_000  # the send, not the fold
    assert span.end_time is not None
    assert span.end_time >= span.start_time
    assert span.attributes == {
        "ksaga.saga_id": SAGA, "ksaga.saga_type": "trip", "ksaga.step": "book",
        "ksaga.action": "DO", "ksaga.attempt": 1, "ksaga.outcome": "succeeded",
    }  # fmt: skip

    saga.fold(StepFailed(SAGA, "pay", Action.DO, 1, "Declined", "no", retryable=False), 2_000)
    saga.fold(StepSucceeded(SAGA, "book", Action.UNDO, 1, b"{}"), 2_500)
    telemetry.committed()
    assert value(metrics, "ksaga_sagas_finished_total", saga_type="trip", status="COMPENSATED") == 1
    duration = {"saga_type": "trip", "status": "COMPENSATED"}
    assert value(metrics, "ksaga_saga_duration_seconds_count", **duration) == 1
    assert value(metrics, "ksaga_timers_pending") == 5  # terminal: no timer any more
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"trip book DO", "trip pay DO", "trip book UNDO", "saga trip"}
    assert spans["trip pay DO"].status.status_code is StatusCode.ERROR
    root = spans["saga trip"]
    assert root.parent is None
    assert root.context.span_id == traceids.saga_span_id(SAGA)
    assert root.start_time == 1_000 * 1_000_000
    assert root.attributes is not None
    assert root.attributes["ksaga.status"] == "COMPENSATED"

    telemetry.lag(0, 7)
    assert value(metrics, "ksaga_consumer_lag", partition="0") == 7
    telemetry.partition_dropped(0)
    assert value(metrics, "ksaga_timers_pending") == 0
    assert metrics.registry.get_sample_value("ksaga_consumer_lag", {"partition": "0"}) is None


def _ids(record_headers: list[tuple[str, bytes | None]]) -> tuple[int, int]:
    value = headers.last_header(record_headers, headers.TRACEPARENT)
    assert value is not None
    version, trace, span, flags = value.decode().split("-")
    assert (version, flags, len(trace), len(span)) == ("00", "01", 32, 16)
    return int(trace, 16), int(span, 16)


def test_the_participant_reads_the_command_traceparent_as_its_parent() -> None:
    command = SendCommand(SAGA, "trip", "book", Action.UNDO, 3, "k", "t", "UndoBook", b"{}")
    record = command_out(command, "ksaga.inbox", 0, 1)
    from opentelemetry import trace  # noqa: PLC0415

    parent = trace.get_current_span(extract_context(record.headers)).get_span_context()
    assert parent.is_remote
    assert parent.trace_id == traceids.trace_id(SAGA)
    assert parent.span_id == traceids.step_span_id(SAGA, "book", "UNDO", 3)
    assert not trace.get_current_span(extract_context([])).get_span_context().is_valid


def test_log_lines_carry_the_record_context_under_explicit_fields() -> None:
    def render(**fields: Any) -> MutableMapping[str, Any]:
        return add_record_context(None, "info", {"event": "x", **fields})

    assert render() == {"event": "x"}
    context = RecordContext("ksaga.inbox", 3, 99)
    handling(context)
    try:
        context.saga_id, context.step, context.attempt = SAGA, "book", 2
        assert render(step="explicit") == {
            "event": "x", "saga_id": SAGA, "step": "explicit", "attempt": 2,
            "topic": "ksaga.inbox", "partition": 3, "offset": 99,
        }  # fmt: skip
    finally:
        handling(None)
    assert render() == {"event": "x"}


def test_exporter_choice_fails_fast_with_the_fix() -> None:
    assert span_processor("none") is None
    console = span_processor("console")
    assert console is not None
    console.shutdown()
    with pytest.raises(ConfigError, match="use one of none, console, otlp"):
        span_processor("jaeger")
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401, PLC0415
    except ImportError:  # the extra is not installed (the suite does not need it)
        with pytest.raises(ConfigError, match=r"pip install 'ksaga\[otlp\]'"):
            span_processor("otlp")
    else:
        otlp = span_processor("otlp")
        assert otlp is not None
        otlp.shutdown()


def test_record_counters_are_published_on_commit_and_dropped_on_abort() -> None:
    metrics = Metrics()
    telemetry = Telemetry(metrics)

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    def observe() -> None:  # what one batch reports while its transaction is open
        telemetry.ignored("stale-timer")
        telemetry.dead_lettered("bad-marker")
        telemetry.routed(3)
        telemetry.timers_fired(2)

    observe()
    telemetry.aborted()  # the batch is redone ...
    observe()
    assert value("ksaga_triggers_routed_total") == 0  # nothing counted before the commit
    telemetry.committed()  # ... and counts once
    assert value("ksaga_inputs_ignored_total", reason="stale-timer") == 1
    assert value("ksaga_dead_letters_total", reason="bad-marker") == 1
    assert value("ksaga_triggers_routed_total") == 3
    assert value("ksaga_timers_fired_total") == 2
