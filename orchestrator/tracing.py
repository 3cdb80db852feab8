"""OpenTelemetry traces of sagas: one trace per saga, one span per command attempt, made after
the fact, with ids every replica and participant agrees on.

A step's span runs from its command's send to the fold of its reply (or of its timeout). It
cannot be an open span object: the reply may be folded seconds or hours later, by another
replica, after a restart or a partition move, and a span held in memory dies with its process.
So nothing is started at send time. The command only carries a W3C ``traceparent`` whose ids are
a function of (saga id, step, action, attempt) (:mod:`orchestrator.traceids`). When the reply is
folded and its transaction commits, the replica that folded it creates the span with exactly
that span id, in the saga's trace, with the explicit start time of the send (the waiting state's
``updated_ms``, which is also the command's ``sent_ms``) and ends it at the fold. The participant
extracted the same ``traceparent`` from the command and made its handling span a child of it, so
a trace reads saga -> step attempt -> participant, whichever replicas sent and folded. The saga's
root span (start to terminal fold) is made the same way when the saga finishes; until then the
step spans point at a parent that is not exported yet, which trace viewers show as incomplete.

The SDK draws ids from an ``IdGenerator``; :class:`_ChosenIds` hands it the ids decided here for
the one span being created, so the public API (``start_span(start_time=...)``,
``end(end_time=...)``) does the rest. Spans are created on the loop's thread only.

Exporters (``KSAGA_OTEL_EXPORTER``): ``none`` (the default: no provider and no span work at all),
``console`` (one JSON span per line on stdout) or ``otlp`` (OTLP over HTTP, configured by the
standard ``OTEL_EXPORTER_OTLP_*`` variables; needs ``pip install 'ksaga[otlp]'``).
``OTEL_SERVICE_NAME`` overrides the service name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator import traceids
from orchestrator.errors import ConfigError
from schemas import headers as h

if TYPE_CHECKING:
    from orchestrator.core import SagaState
    from orchestrator.telemetry import AttemptEnded

__all__ = [
    "EXPORTERS",
    "SagaTracer",
    "extract_context",
    "inject_headers",
    "span_processor",
    "tracer_provider",
]

Exporter = Literal["none", "console", "otlp"]
EXPORTERS: tuple[Exporter, ...] = ("none", "console", "otlp")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_W3C = TraceContextTextMapPropagator()
_FAILED = frozenset({"failed", "failed_retryable", "timed_out"})


def span_processor(exporter: str) -> SpanProcessor | None:
    """The processor for ``KSAGA_OTEL_EXPORTER``'s value; None for ``none``."""
    if exporter == "none":
        return None
    if exporter == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    if exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise ConfigError(
                "KSAGA_OTEL_EXPORTER=otlp needs the OTLP exporter: pip install 'ksaga[otlp]'"
                " (or set KSAGA_OTEL_EXPORTER=console or none)"
            ) from exc
        return BatchSpanProcessor(OTLPSpanExporter())
    raise ConfigError(f"KSAGA_OTEL_EXPORTER={exporter!r}: use one of {', '.join(EXPORTERS)}")


def tracer_provider(
    processor: SpanProcessor, service_name: str, id_generator: IdGenerator | None = None
) -> TracerProvider:
    """A provider of its own (not the global one): several in one process do not mix."""
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes), id_generator=id_generator)
    provider.add_span_processor(processor)
    return provider


class _ChosenIds(IdGenerator):
    """Random ids, except for the span being created right now by :class:`SagaTracer`."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._chosen = threading.local()

    def choose(self, trace_id: int, span_id: int) -> None:
        self._chosen.ids = (trace_id, span_id)

    def forget(self) -> None:
        self._chosen.ids = None

    def generate_trace_id(self) -> int:
        ids = getattr(self._chosen, "ids", None)
        return int(ids[0]) if ids else int(self._random.generate_trace_id())

    def generate_span_id(self) -> int:
        ids = getattr(self._chosen, "ids", None)
        return int(ids[1]) if ids else int(self._random.generate_span_id())


class SagaTracer:
    """The orchestrator's spans: step attempts and whole sagas, created when they end."""

    def __init__(self, processor: SpanProcessor, service_name: str = "ksaga-orchestrator") -> None:
        self._ids = _ChosenIds()
        self._provider = tracer_provider(processor, service_name, self._ids)
        self._tracer = self._provider.get_tracer("ksaga.orchestrator")

    def attempt(self, ended: AttemptEnded, end_ns: int) -> None:
        """The span of one command attempt: from its send to the fold of its reply or timeout."""
        trace_id = traceids.trace_id(ended.saga_id)
        parent = SpanContext(
            trace_id, traceids.saga_span_id(ended.saga_id), is_remote=False, trace_flags=_SAMPLED
        )
        self._span(
            f"{ended.saga_type} {ended.step} {ended.action}",
            trace_id,
            traceids.step_span_id(ended.saga_id, ended.step, ended.action, ended.attempt),
            parent,
            start_ns=ended.sent_ms * 1_000_000,
            end_ns=end_ns,
            kind=SpanKind.CLIENT,
            attributes={
                "ksaga.saga_id": ended.saga_id,
                "ksaga.saga_type": ended.saga_type,
                "ksaga.step": ended.step,
                "ksaga.action": ended.action,
                "ksaga.attempt": ended.attempt,
                "ksaga.outcome": ended.outcome,
            },
            error=ended.outcome if ended.outcome in _FAILED else None,
        )

    def saga(self, state: SagaState, end_ns: int) -> None:
        """The saga's root span: from its start to the fold that made it terminal."""
        status = state.status.value
        self._span(
            f"saga {state.saga_type}",
            traceids.trace_id(state.saga_id),
            traceids.saga_span_id(state.saga_id),
            None,
            start_ns=state.started_ms * 1_000_000,
            end_ns=end_ns,
            kind=SpanKind.INTERNAL,
            attributes={
                "ksaga.saga_id": state.saga_id,
                "ksaga.saga_type": state.saga_type,
                "ksaga.status": status,
            },
            error=None if status in ("COMPLETED", "COMPENSATED") else status,
        )

    def _span(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent: SpanContext | None,
        *,
        start_ns: int,
        end_ns: int,
        kind: SpanKind,
        attributes: dict[str, str | int],
        error: str | None,
    ) -> None:
        if parent is None:
            context = Context()  # a root span: never a child of whatever is current
        else:
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        self._ids.choose(trace_id, span_id)
        try:
            span = self._tracer.start_span(
                name, context=context, kind=kind, attributes=attributes, start_time=start_ns
            )
        finally:
            self._ids.forget()
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=max(end_ns, start_ns))

    def shutdown(self) -> None:
        """Export what is buffered (the batch processor) and stop."""
        self._provider.shutdown()


def extract_context(headers: Sequence[tuple[str, bytes | None]] | None) -> Context:
    """The W3C trace context carried in Kafka ``headers`` (an empty context when none is)."""
    carrier = {
        name: value.decode("ascii", "replace")
        for name, value in headers or ()
        if name in (h.TRACEPARENT, h.TRACESTATE) and value is not None
    }
    return _W3C.extract(carrier)


def inject_headers(span: trace.Span) -> list[tuple[str, bytes]]:
    """``span``'s W3C trace context as Kafka headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return [(name, value.encode("ascii")) for name, value in carrier.items()]
