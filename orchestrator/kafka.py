"""The orchestrator's only door to confluent-kafka: client settings and librdkafka error classes.

Every librdkafka error the loop handles maps to exactly one ``ErrorClass`` here (see
``exactly-once.md``): RETRIABLE (call the same thing again), ABORT (abort the transaction, rewind
to the committed offsets, redo the batch) or FATAL (no store write, close, exit non-zero so the
supervisor restarts the replica). librdkafka's flags decide, in that order of precedence: fatal,
then txn_requires_abort, then retriable; an error with none of them is fatal, because the
producer's transactional state is then unknown (this includes ``_FENCED``: a newer instance with
our ``transactional.id`` exists, or our transaction outlived ``transaction.timeout.ms``).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as _TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as _OffsetSpec  # type: ignore[attr-defined]

from orchestrator import clock
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.kafka_config import KafkaClientConfig, env_name

__all__ = [
    "ErrorClass",
    "build_client",
    "classify",
    "consumer_config",
    "new_admin",
    "new_consumer",
    "new_producer",
    "new_restore_consumer",
    "poll_batch",
    "produce_when_room",
    "producer_config",
    "watermarks",
]

_SPEC: Any = _OffsetSpec  # untyped in confluent-kafka's stubs
# librdkafka names the property it refuses either in quotes or, for a file it cannot load
# ("ssl.key.location failed: ... bad decrypt"), as the subject of "failed".
_PROPERTY = re.compile(r'property:? "([^"]+)"|\b((?:ssl|https)\.[a-z.]+\.location) failed')
# A key file that does not load may be fine but locked with another password.
_PASSWORD_OF = {
    "ssl.key.location": "ssl.key.password",
    "ssl.keystore.location": "ssl.keystore.password",
}
C = TypeVar("C")


class ErrorClass(Enum):
    RETRIABLE = "retriable"
    ABORT = "abort"
    FATAL = "fatal"


def classify(error: KafkaException | KafkaError) -> ErrorClass:
    """The one outcome for a transactional-API error (librdkafka's flags, fatal first)."""
    err: Any = error.args[0] if isinstance(error, KafkaException) else error
    if not isinstance(err, KafkaError) or err.fatal():
        return ErrorClass.FATAL
    if err.txn_requires_abort():
        return ErrorClass.ABORT
    if err.retriable():
        return ErrorClass.RETRIABLE
    return ErrorClass.FATAL


def build_client(
    factory: Callable[[dict[str, Any]], C], config: dict[str, Any], kafka: KafkaClientConfig
) -> C:
    """``factory(config)``, with librdkafka's refusal of a setting turned into a ConfigError.

    librdkafka checks every property when a client is built (unknown names, bad values, missing
    OIDC pieces, unreadable certificates); the message names the variable to fix and never
    shows a secret.
    """
    try:
        return factory(config)
    except KafkaException as exc:
        err: Any = exc.args[0]
        text = kafka.redact(err.str() if isinstance(err, KafkaError) else str(exc))
        match = _PROPERTY.search(text)
        where = "the KSAGA_KAFKA__* settings"
        if match:
            prop = match.group(1) or match.group(2)
            where = f"{env_name(prop)} (or its key in KSAGA_KAFKA)"
            if prop in _PASSWORD_OF:
                where += f" and {env_name(_PASSWORD_OF[prop])}"
        raise ConfigError(
            f"librdkafka refused the client settings: {text}; check {where}"
        ) from None


def _common(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, **settings.kafka.client_settings()}


def _refuse_bad_credentials(err: KafkaError) -> None:
    if err.code() == KafkaError._AUTHENTICATION:
        raise ConfigError(
            f"Kafka refused our credentials ({err.str()}): check KSAGA_KAFKA__SASL_USERNAME and"
            " KSAGA_KAFKA__SASL_PASSWORD (or the client certificate, or the OAUTHBEARER"
            " settings) and KSAGA_KAFKA__SECURITY_PROTOCOL"
        )
    # A certificate the other side rejects is as final as a wrong password (the broker's "alert
    # bad certificate" reaches TLS 1.3 clients as a transport error); waiting cannot fix it.
    if err.code() in (KafkaError._SSL, KafkaError._TRANSPORT) and "certificate" in err.str():
        raise ConfigError(
            f"the TLS handshake with Kafka failed over a certificate ({err.str()}): check"
            " KSAGA_KAFKA__SSL_CERTIFICATE_LOCATION and KSAGA_KAFKA__SSL_KEY_LOCATION (a client"
            " certificate signed by a CA the broker trusts, if it requires one) and"
            " KSAGA_KAFKA__SSL_CA_LOCATION (the CA that signed the broker's certificate)"
        )


def new_admin(settings: Settings) -> AdminClient:
    """The admin client. Its ``poll()`` raises a ConfigError if authentication failed meanwhile
    (its error callback does): the start-up checks call it to name the cause of a failure."""
    config = {**_common(settings), "error_cb": _refuse_bad_credentials}
    return build_client(AdminClient, config, settings.kafka)


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        "client.id": f"ksaga-{settings.replica_id}",  # the passthrough may rename it (quotas)
        **_common(settings),
        "group.id": settings.group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **_group_protocol(settings),
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        **({"group.instance.id": settings.replica_id} if settings.static_membership else {}),
    }


def _group_protocol(settings: Settings) -> dict[str, Any]:
    """How partitions are shared out. The loop handles both protocols alike: its rebalance
    callbacks are incremental, which KIP-848 requires (and its assignors are all sticky)."""
    if settings.group_protocol == "consumer":
        # range, not the broker's default uniform: uniform balances counts over all topics as
        # cooperative-sticky does, and can leave a replica only trigger partitions to route.
        return {"group.protocol": "consumer", "group.remote.assignor": "range"}
    return {
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.session_timeout_ms,
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    return {
        "client.id": f"ksaga-{settings.replica_id}",
        **_common(settings),
        "transactional.id": f"{settings.group_id}-{settings.replica_id}",
        "transaction.timeout.ms": settings.transaction_timeout_ms,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        # Java-compatible placement for the topics ksaga does not place itself (commands).
        "partitioner": "murmur2_random",
    }


def new_consumer(settings: Settings) -> Consumer:
    return build_client(Consumer, consumer_config(settings), settings.kafka)


def new_producer(settings: Settings) -> Producer:
    return build_client(Producer, producer_config(settings), settings.kafka)


def new_restore_consumer(settings: Settings) -> Consumer:
    """Assign-only, read_committed, never commits: reads ``ksaga.state`` during restore.

    It reads one partition at a time from its checkpoint to a known end, as fast as the store
    takes the records, so its fetch settings differ from librdkafka's defaults (measured with
    ``ksaga bench --restore``): fetches of up to 4 MiB, at most 16 MiB queued ahead (a quarter of
    the default: this is resident memory of the replica), a full queue retried after 5 ms
    instead of 1 s (the default left the fetcher idle while the restore drained the queue), and
    an empty fetch answered after 20 ms instead of 500 (restore knows its target; waiting for
    more records only delays the end of each partition). ``check.crcs``: restore stores values
    without decoding them, so librdkafka verifies each record batch's CRC-32C.
    """
    config = {
        "client.id": f"ksaga-{settings.replica_id}-restore",
        **_common(settings),
        "group.id": f"{settings.group_id}-restore-{settings.replica_id}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "max.partition.fetch.bytes": 4 << 20,
        "queued.max.messages.kbytes": 16 << 10,
        "fetch.queue.backoff.ms": 5,
        "fetch.wait.max.ms": 20,
        "check.crcs": True,
    }
    return build_client(Consumer, config, settings.kafka)


def watermarks(
    admin: AdminClient,
    partitions: Iterable[tuple[str, int]],
    *,
    earliest: bool = False,
    timeout: float = 30.0,
) -> dict[tuple[str, int], int]:
    """High watermarks (read_uncommitted: past the commit markers) or earliest offsets.

    The high watermark, not the LSO, is the target of a restore or a read-to-the-end: the tail
    of a transactional partition is commit markers, which read_committed readers pass over.
    """
    spec = _SPEC.earliest() if earliest else _SPEC.latest()
    request = {_TopicPartition(t, p): spec for t, p in partitions}
    if not request:
        return {}
    deadline = clock.monotonic() + timeout
    for attempt in itertools.count():
        futures = admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=timeout
        )
        try:
            return {
                (t.topic, t.partition): int(f.result(timeout).offset) for t, f in futures.items()
            }
        except KafkaException as exc:
            # Right after a topic is created (or a leader moved) the broker answers
            # NOT_LEADER_FOR_PARTITION until metadata settles: ask again, within ``timeout``.
            error = exc.args[0] if exc.args else None
            transient = isinstance(error, KafkaError) and (
                error.retriable() or error.code() in _TRANSIENT_LIST_OFFSETS
            )
            pause = min(0.05 * 2**attempt, 1.0)
            if not transient or clock.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


_TRANSIENT_LIST_OFFSETS = frozenset(
    {
        KafkaError._NOENT,  # "no leaders found": the client's metadata has not caught up yet
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


def poll_batch(
    consumer: Consumer, max_records: int, timeout_s: float, linger_s: float
) -> list[Message]:
    """Up to ``max_records`` records: wait at most ``timeout_s`` for the first, then at most
    ``linger_s`` more for the rest.

    ``Consumer.consume(n, timeout)`` returns when it has ``n`` records *or* the timeout expired,
    so a fixed window made every record under light load wait the whole window (20 ms in the
    orchestrator, the participants' 0.5 s poll timeout). The window now opens with the first
    record and lasts ``linger_s``. Measured with ``ksaga bench --rate`` (orchestrator and
    participants): 0 gave p50 341 and 629 ms at 100 and 300 sagas/s, 5 ms gave 370-381 and
    1,279-1,575 ms. The loop's default is nevertheless 20 ms (``KSAGA_BATCH_LINGER_MS``): with
    0 a busy loop spends nearly all its time inside transactions, and a replica paused there
    past ``transaction.timeout.ms`` (the zombie test's SIGSTOP) wakes up fenced and exits, which
    the zombie test failed on in 2 of 3 CI runs; 20 ms keeps the old share of time between
    transactions. The participants use 0.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    if max_records <= 1:
        return [first]
    return [first, *consumer.consume(max_records - 1, linger_s)]


def produce_when_room(producer: Producer, topic: str, *, poll_s: float, **record: Any) -> None:
    """Queue ``record`` (``key``, ``value``, ``partition``...) for ``topic``; while librdkafka's
    local queue is full (``BufferError``), serve delivery reports for ``poll_s`` and try again.

    For bulk writers that must not drop a record and have nothing better to do meanwhile (the
    bench's producers, tests). The loop and the participants handle a full queue themselves:
    they bound the wait or record a refusal.
    """
    while True:
        try:
            producer.produce(topic, **record)
            return
        except BufferError:
            producer.poll(poll_s)
