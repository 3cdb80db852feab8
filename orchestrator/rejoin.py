"""How often a replica may rejoin in-process after a fatal Kafka error before it exits instead.

A fenced producer or an expelled consumer is a fact about one membership, not about the process:
Kafka Streams answers it by closing the clients without committing and joining again. A rejoin
here does exactly what a restart would (new clients, restore from the state topic) but keeps
RocksDB open and skips the supervisor's back-off. What it must not do is loop: a cause that comes
back at once (a broken broker, a credential revoked mid-run) is the supervisor's to see, as an exit
with ``EXIT_FATAL`` and a restart count in ``kubectl get pods``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RejoinBudget"]


class RejoinBudget:
    """At most ``limit`` rejoins within any ``window_s`` (times from ``clock.monotonic()``)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._taken: deque[float] = deque()

    def take(self, now: float) -> bool:
        """Record a rejoin at ``now`` and return True, or return False if the budget is spent."""
        while self._taken and now - self._taken[0] >= self.window_s:
            self._taken.popleft()
        if len(self._taken) >= self.limit:
            return False
        self._taken.append(now)
        return True
