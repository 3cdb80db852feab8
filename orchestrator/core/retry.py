"""Retry policies: how often and how far apart a step's command is sent again.

The shape and defaults are Temporal's (``temporalio.common.RetryPolicy``): 1 s initial interval,
coefficient 2.0, maximum interval 100 x the initial one, unlimited attempts unless capped, and a
list of error types that are never retried. Intervals are integer milliseconds so that deciding
the same input twice gives the same due time to the millisecond (I5).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to send a step's command again after a retryable failure or a timeout.

    ``maximum_attempts`` counts every attempt including the first; 0 means unlimited (as in
    Temporal). ``maximum_interval_ms`` 0 means 100 x ``initial_interval_ms``.
    """

    initial_interval_ms: int = 1_000
    backoff_coefficient: float = 2.0
    maximum_interval_ms: int = 0
    maximum_attempts: int = 0
    non_retryable_error_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.initial_interval_ms <= 0:
            raise ValueError("initial_interval_ms must be positive")
        if self.backoff_coefficient < 1.0:
            raise ValueError("backoff_coefficient must be at least 1.0")
        if self.maximum_interval_ms < 0:
            raise ValueError("maximum_interval_ms must be 0 (100 x initial) or positive")
        if 0 < self.maximum_interval_ms < self.initial_interval_ms:
            raise ValueError("maximum_interval_ms must not be below initial_interval_ms")
        if self.maximum_attempts < 0:
            raise ValueError("maximum_attempts must be 0 (unlimited) or positive")

    @property
    def effective_maximum_interval_ms(self) -> int:
        return self.maximum_interval_ms or 100 * self.initial_interval_ms

    def backoff_ms(self, failed_attempt: int) -> int:
        """Delay before the attempt that follows ``failed_attempt`` (1-based)."""
        if failed_attempt < 1:
            raise ValueError("attempts are 1-based")
        cap = self.effective_maximum_interval_ms
        delay = float(self.initial_interval_ms)
        for _ in range(failed_attempt - 1):
            delay *= self.backoff_coefficient
            if delay >= cap:
                return cap
        return min(int(delay), cap)

    def allows_another_attempt(self, failed_attempt: int) -> bool:
        return self.maximum_attempts == 0 or failed_attempt < self.maximum_attempts

    def retries(self, error_type: str) -> bool:
        return error_type not in self.non_retryable_error_types
