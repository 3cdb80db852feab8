"""How a participant's handler says "this did not work" (or "do not answer").

A failure in a handler is a *business outcome*, not a crash: the participant turns it into a
``Reply`` and the orchestrator decides what happens next (retry with backoff, or compensate).
The handler picks the outcome by what it raises::

    Exception                       any other exception: retryable, error_type = its class name
    └── HandlerError                carries error_type (the saga's retry policy matches on it)
        ├── RetryableError          -> outcome FAILED_RETRYABLE; never cached, the next
        │                              attempt runs the handler again
        └── NonRetryableError       -> outcome FAILED; cached under the idempotency key, so
                                       every later attempt gets the same answer
    NoReply                         raised *or returned*: send nothing at all (the orchestrator's
                                    step timeout fires); never cached

``error_type`` is what a saga's ``RetryPolicy.non_retryable_error_types`` names (for example
``"CardDeclined"``); a retry policy can still stop retrying a ``RetryableError`` by listing its
type there, the orchestrator has the last word.
"""

from __future__ import annotations

__all__ = ["HandlerError", "NoReply", "NonRetryableError", "RetryableError"]


class HandlerError(Exception):
    """Base of the failures a handler raises on purpose; ``error_type`` names the failure."""

    retryable: bool = True

    def __init__(self, error_type: str, message: str = "") -> None:
        if not error_type:
            raise ValueError("error_type is required: the saga's retry policy matches on it")
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type
        self.message = message


class RetryableError(HandlerError):
    """A transient failure (a timeout, a gateway hiccup): worth another attempt."""

    retryable = True


class NonRetryableError(HandlerError):
    """A definitive failure (card declined, out of stock): retrying gives the same answer."""

    retryable = False


class NoReply(Exception):
    """Do not answer this command attempt; raise it or return an instance.

    Used to simulate a participant that never replies, so the orchestrator's timeout fires.
    Nothing is cached: the next attempt runs the handler again.
    """
