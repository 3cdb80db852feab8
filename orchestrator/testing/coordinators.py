"""Which broker coordinates a consumer group or a transactional id: the fault tests kill it.

A group's coordinator is what the broker says it is (``describe_consumer_groups``). A
transactional id's coordinator has no admin call in confluent-kafka, so it is computed the way
the broker assigns it: the leader of partition ``abs(javaHash(id)) % N`` of
``__transaction_state`` (``TransactionStateManager.partitionFor``), where ``N`` is
``transaction.state.log.num.partitions``. The integration test checks the formula against the
broker's own log line.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

__all__ = [
    "TRANSACTION_STATE",
    "group_coordinator",
    "java_string_hash",
    "transaction_coordinator",
    "transaction_partition",
]

TRANSACTION_STATE = "__transaction_state"
_INT_MIN = -(2**31)


def java_string_hash(text: str) -> int:
    """``String.hashCode()`` of Java: 32-bit signed, over UTF-16 code units."""
    value = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        value = (31 * value + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def transaction_partition(transactional_id: str, partitions: int) -> int:
    """The ``__transaction_state`` partition of ``transactional_id`` (Kafka's ``Utils.abs``)."""
    value = java_string_hash(transactional_id)
    return (0 if value == _INT_MIN else abs(value)) % partitions


def transaction_coordinator(admin: AdminClient, transactional_id: str, timeout: float = 10) -> int:
    """The broker id leading the transaction-state partition of ``transactional_id``; -1 if none."""
    meta = admin.list_topics(TRANSACTION_STATE, timeout=timeout).topics.get(TRANSACTION_STATE)
    if meta is None or meta.error is not None or not meta.partitions:
        return -1
    partition = transaction_partition(transactional_id, len(meta.partitions))
    leader: int = meta.partitions[partition].leader
    return leader


def group_coordinator(admin: AdminClient, group_id: str, timeout: float = 10) -> int:
    """The broker id coordinating ``group_id``, as the broker reports it."""
    future = admin.describe_consumer_groups([group_id], request_timeout=timeout)[group_id]
    broker: int = future.result(timeout).coordinator.id
    return broker
