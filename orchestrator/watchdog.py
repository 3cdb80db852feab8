"""The loop's watchdog: a replica whose loop stops turning exits, so a supervisor restarts it.

Why it exists: every Kafka call of the loop has a timeout, but librdkafka does not always honour
it. The fault suite caught ``send_offsets_to_transaction(..., 30)`` blocking for minutes after a
replica's network link was cut and mended (librdkafka #5456: the coordinator-request timeout is
never checked; #5511: a cached, decommissioned coordinator is never re-looked-up). A replica stuck
inside such a call still holds its partitions, and the group's next rebalance waits for it, so
*every* replica stalls. Nothing can interrupt a blocked C call from Python, so the watchdog does
what a Kubernetes liveness probe would, only sooner and without needing one: it ends the process
with ``EXIT_FATAL``. That is a crash like kill -9, which the loop is built to survive (the open
transaction is aborted by the broker or fenced by the successor's ``init_transactions``; nothing
after the last commit was acknowledged).

What it never does: touch Kafka or RocksDB, or fire while the loop makes progress (the loop beats
before every blocking call and on every restore chunk).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

import structlog

from orchestrator import clock

__all__ = ["LoopWatchdog"]

_log = structlog.get_logger("ksaga.watchdog")


class LoopWatchdog:
    """Check ``heartbeat()`` (a ``clock.monotonic()`` value) every ``interval_s``; exit if stale."""

    def __init__(
        self,
        heartbeat: Callable[[], float],
        limit_s: float,
        exit_code: int,
        *,
        interval_s: float = 1.0,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        if limit_s <= 0:
            raise ValueError(f"limit_s must be positive, got {limit_s}")
        self._heartbeat = heartbeat
        self.limit_s = limit_s
        self._exit_code = exit_code
        self._interval_s = interval_s
        self._on_stall = on_stall or self._exit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ksaga-watchdog", daemon=True)

    def start(self) -> LoopWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval_s * 2 + 1)

    def _watch(self) -> None:
        while not self._stop.wait(self._interval_s):
            age = clock.monotonic() - self._heartbeat()
            if age > self.limit_s:
                self._on_stall(age)
                return

    def _exit(self, age: float) -> None:
        _log.error(
            "loop stalled; exiting for a restart (a Kafka call blocked past its timeout)",
            stalled_s=round(age, 1),
            limit_s=self.limit_s,
        )
        sys.stderr.flush()
        os._exit(self._exit_code)
