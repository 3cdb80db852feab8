"""An operator's request to one saga, resume or cancel, written as a record into its inbox.

Its one job is to put a ``Signal`` record where the saga's owner folds it: ``ksaga.inbox``,
partition ``murmur2(saga id) % P``, key = the saga id, with an idempotent producer (acks=all; a
send retried after a lost acknowledgement is not written twice), and to say where it landed.

It decides nothing and reads no state. Whether the saga resumes or cancels is the fold's call
(rules 10 and 11 atop ``orchestrator/core/transitions.py``), made by the replica that owns the
partition, exactly once, in order with the saga's replies and timers, in the transaction that
commits the record's offset. So there is no race with a reply arriving at the same moment, and
running the command twice is harmless: the second record folds to nothing (a resumed saga is no
longer FAILED, a cancelled one no longer RUNNING) and is counted in ``ksaga_inputs_ignored``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from orchestrator.config import Settings
from orchestrator.core import SagaCancelled, SagaResumed
from orchestrator.errors import OperationError
from orchestrator.partitioning import partition_for
from orchestrator.topics import check_topics
from orchestrator.wire import encode_signal
from schemas import headers
from schemas.codec import RecordType

__all__ = ["Signal", "SignalWritten", "send_signal"]

Signal = SagaResumed | SagaCancelled


@dataclass(frozen=True, slots=True)
class SignalWritten:
    """Where the request landed: the owner of ``topic[partition]`` folds it."""

    saga_id: str
    kind: str
    topic: str
    partition: int
    offset: int

    def describe(self) -> str:
        return (
            f"{self.kind} of {self.saga_id} written to {self.topic}"
            f" partition {self.partition} offset {self.offset}"
        )

    def outlook(self) -> str:
        """What the owner will do with it: the operator cannot see the fold from here."""
        if self.kind == "RESUME":
            return (
                "the saga's owner folds it: a FAILED saga sends again the command it gave up on;"
                " any other status ignores it (ksaga_inputs_ignored{reason=not-resumable})"
            )
        return (
            "the saga's owner folds it: a RUNNING saga before its pivot compensates now; at or"
            " past its pivot, or not RUNNING, it is ignored"
            " (ksaga_inputs_ignored{reason=not-cancellable})"
        )


def _client_config(settings: Settings) -> dict[str, Any]:
    # librdkafka's own log lines (connection refused, every 50 ms) would bury the one message
    # this command prints; failures reach us as errors and are reported once, with the fix.
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "log_level": 0,
        **settings.kafka.client_settings(),
    }


def _producer_config(settings: Settings) -> dict[str, Any]:
    return {
        **_client_config(settings),
        "client.id": "ksaga-ops",
        "enable.idempotence": True,
        "acks": "all",
    }


def send_signal(
    settings: Settings, signal: Signal, *, requested_ms: int, timeout_s: float = 30.0
) -> SignalWritten:
    """Write ``signal`` to the saga's inbox partition and wait for the broker's acknowledgement.

    Raises ``ConfigError`` when the topics are missing or disagree (with the command to fix
    it) and ``OperationError`` when the record is not acknowledged within ``timeout_s``.
    """
    if not signal.saga_id:
        raise OperationError("a saga id is required")
    admin = AdminClient(_client_config(settings))
    partitions = check_topics(admin, settings, required=())
    topic = settings.topics.inbox
    partition = partition_for(signal.saga_id, partitions)
    value = encode_signal(signal, requested_ms=requested_ms)
    delivered: list[Message] = []
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            failed.append(error)
        else:
            delivered.append(msg)

    producer = Producer(_producer_config(settings))
    producer.produce(
        topic,
        key=signal.saga_id.encode(),
        value=value,
        partition=partition,
        headers=[
            (headers.RECORD_TYPE, RecordType.SIGNAL.value.encode()),
            (headers.SAGA_ID, signal.saga_id.encode()),
        ],
        on_delivery=on_delivery,
    )
    left = producer.flush(timeout_s)
    if failed:
        raise OperationError(f"{topic} partition {partition} refused the record: {failed[0]}")
    if left or not delivered:
        raise OperationError(
            f"the record was not acknowledged within {timeout_s:g} s (is Kafka at"
            f" {settings.bootstrap_servers} reachable?); running the command again is safe"
        )
    msg = delivered[0]
    offset = msg.offset()
    assert offset is not None
    kind = "RESUME" if isinstance(signal, SagaResumed) else "CANCEL"
    return SignalWritten(signal.saga_id, kind, topic, partition, offset)
