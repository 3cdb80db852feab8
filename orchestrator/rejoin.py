"""Rejoining in-process after a fatal Kafka error, and how often that may happen before exiting.

A fenced producer or an expelled consumer is a fact about one membership, not about the process:
Kafka Streams answers it by closing the clients without committing and joining again. A rejoin
here does exactly what a restart would (new clients, restore from the state topic) but keeps
RocksDB open and skips the supervisor's back-off. What it must not do is loop: a cause that comes
back at once (a broken broker, a credential revoked mid-run) is the supervisor's to see, as an exit
with ``EXIT_FATAL`` and a restart count in ``kubectl get pods``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

import structlog
from confluent_kafka import KafkaException

from orchestrator import clock
from orchestrator.budget import WindowBudget
from orchestrator.errors import KsagaError
from orchestrator.heap import settle_heap
from orchestrator.loop import FatalError

__all__ = ["Member", "run_rejoining"]

_log = structlog.get_logger("ksaga.rejoin")


class Member(Protocol):
    """One membership of the group: a loop and the clients it owns."""

    def run(self, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


M = TypeVar("M", bound=Member)


def run_rejoining(
    member: M,
    join: Callable[[], M],
    stop: threading.Event,
    budget: WindowBudget,
    *,
    on_join: Callable[[M], None],
) -> str | None:
    """Run ``member``; after a ``FatalError`` close it and run ``join()``'s, within ``budget``.

    Returns None after a graceful stop, or the fatal error that ended the last membership (the
    budget was spent, ``stop`` was set meanwhile, or joining again failed): exit for a restart.
    """
    while True:
        try:
            error = _run(member, stop)
        finally:
            member.close()
        if error is None:
            return None
        if stop.is_set():  # a SIGTERM came: no new clients, no init_transactions to wait for
            return error
        if not budget.take(clock.monotonic()):
            return error
        _log.warning("fatal Kafka error; rejoining with new clients", error=error)
        try:
            member = join()
        except (KsagaError, KafkaException) as exc:
            return f"{error}; joining again failed: {exc}"
        on_join(member)
        settle_heap()  # the old member was frozen with the heap: free it now


def _run(member: Member, stop: threading.Event) -> str | None:
    """Only the error's text leaves: its traceback would keep the old member's frames (and with
    them the loop and its librdkafka handles) alive past the rejoin."""
    try:
        member.run(stop)
    except FatalError as exc:
        return str(exc)
    return None
