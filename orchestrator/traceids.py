"""Deterministic W3C trace ids for sagas: one trace per saga, one span id per command attempt.

Its one job is to name spans from what the log already holds, never from a random source. A
command's ``traceparent`` is written inside a Kafka transaction that may abort and be redone, and
the span it names is only created later, when the reply is folded, possibly by another replica
after a restart or a partition move (:mod:`orchestrator.tracing`). Both sides can only agree on
the ids if they are a function of (saga id, step, action, attempt): a redone batch writes
byte-identical headers (I5) and the replica that folds the reply recreates the very span id the
participant saw as its parent.

Ids are SHA-256 prefixes (128 bits for the trace, 64 for spans); the all-zero id W3C forbids
is mapped away (a probability of 2**-64, but cheaper to rule out than to reason about).
"""

from __future__ import annotations

import hashlib

__all__ = ["saga_span_id", "step_span_id", "trace_id", "traceparent"]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def trace_id(saga_id: str) -> int:
    """The saga's trace: every span of one saga, on every replica and participant, shares it."""
    return int.from_bytes(_digest(saga_id)[:16]) or 1


def step_span_id(saga_id: str, step: str, action: str, attempt: int) -> int:
    """The span of one command attempt (``action`` is ``DO`` or ``UNDO``)."""
    return int.from_bytes(_digest(f"{saga_id}|{step}|{action}|{attempt}")[:8]) or 1


def saga_span_id(saga_id: str) -> int:
    """The saga's root span (its key ends in ``saga``, a step span's in an attempt number)."""
    return int.from_bytes(_digest(f"{saga_id}|saga")[:8]) or 1


def traceparent(trace: int, span: int) -> bytes:
    """The W3C ``traceparent`` header value (version 00, sampled)."""
    return b"00-%032x-%016x-01" % (trace, span)
