"""At most so many events in any sliding window: how often a replica may repair itself in-process.

A repair that comes back at once (a rejoin after a fatal Kafka error, a store rebuild after an
unreadable state) has a cause the repair cannot reach, and repeating it forever would hide that
behind a metric. Past the budget the replica exits instead, and the supervisor's restart count
shows it.
"""

from __future__ import annotations

from collections import deque

__all__ = ["WindowBudget"]


class WindowBudget:
    """At most ``limit`` takes within any ``window_s`` (times from ``clock.monotonic()``)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._taken: deque[float] = deque()

    def take(self, now: float) -> bool:
        """Record one at ``now`` and return True, or return False if the budget is spent."""
        while self._taken and now - self._taken[0] >= self.window_s:
            self._taken.popleft()
        if len(self._taken) >= self.limit:
            return False
        self._taken.append(now)
        return True
