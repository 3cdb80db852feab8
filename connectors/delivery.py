"""The participant's producer: produce records tied to the command that caused them, then
tell which of them failed and whether the failure can ever be fixed by trying again.

Its one job is delivery bookkeeping. It decides nothing about commands: the participant asks
:meth:`Outbox.flush` after a batch and gets back whether everything landed, and which commands'
replies can *never* be delivered (their topic or partition does not exist, the record is too
large); everything else is worth another try (seek back, do the batch again).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

__all__ = ["FlushResult", "Outbox"]

# A reply that fails with one of these can never be delivered: dead-letter its command.
UNDELIVERABLE = frozenset(
    {
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)


@dataclass(frozen=True, slots=True)
class FlushResult:
    """``retry``: some record may still land if the batch is done again (or is still queued).
    ``undeliverable``: commands whose reply can never be delivered, with the error."""

    retry: bool
    undeliverable: tuple[tuple[Message, KafkaError], ...]
    errors: tuple[KafkaError, ...]


class Outbox:
    """An idempotent producer plus the delivery errors of what it sent since the last flush."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer: Any = Producer(config)
        self._failed: list[tuple[Message, bool, KafkaError]] = []  # (source, is_reply, error)

    def produce(self, source: Message, *, is_reply: bool, **record: Any) -> None:
        """Queue ``record`` (``topic``, ``key``, ``value``, ...) caused by command ``source``."""
        callback = functools.partial(self._delivered, source, is_reply)
        while True:
            try:
                self._producer.produce(**record, on_delivery=callback)
                return
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused locally, e.g. a partition that is not there
                self._failed.append((source, is_reply, exc.args[0]))
                return

    def _delivered(self, source: Message, is_reply: bool, err: KafkaError | None, _: Any) -> None:
        if err is not None:
            self._failed.append((source, is_reply, err))

    def flush(self, timeout_s: float) -> FlushResult:
        remaining = self._producer.flush(timeout_s)
        failed, self._failed = self._failed, []
        undeliverable = tuple(
            (source, err)
            for source, is_reply, err in failed
            if is_reply and err.code() in UNDELIVERABLE
        )
        retry = bool(remaining) or len(undeliverable) < len(failed)
        return FlushResult(retry, undeliverable, tuple(err for _, _, err in failed))

    def close(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)
