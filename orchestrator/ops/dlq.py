"""``ksaga dlq list|show|redrive``: read dead letters and send them back where they came from.

A dead letter keeps the original key and value bytes untouched, with why and whence in
``ksaga.dlq.*`` headers (``schemas.deadletter``). Redrive re-produces exactly those bytes and
key, with the original headers (the ``ksaga.dlq.*`` ones dropped) plus
``ksaga-redriven-from: <dlq partition>:<offset>``, into the topic named by the source header:
the inbox for records the orchestrator parked, a trigger topic for triggers, a command topic for
commands a participant parked. An inbox record goes to its saga's home partition
(``murmur2(saga id) % P``, so a ``wrong-partition`` letter lands right), anything else to its
source partition.

How a redrive is remembered (so running it twice sends nothing twice): one marker record per
redriven dead letter, keyed ``<partition>:<offset>``, in ``ksaga.redriven``, written **in the
same Kafka transaction** as the redriven records. Either both become visible or neither, so
the markers are exactly the set of dead letters whose copy is committed; a redrive reads them
(read_committed) and skips what they name. The alternatives fall short: a consumer-group
offset remembers only a prefix of the DLQ, not an arbitrary selection (``--offset``,
``--reason``); scanning the target topics for ``ksaga-redriven-from`` headers means reading
every source topic in full, and forgets a redrive once the inbox's retention (7 days) drops
the copy while the dead letter (30 days) is still there to be sent again.

Two operators redriving at once cannot both send a record: the transactional id is fixed
(``<group>-redrive``), and the markers are read only after ``init_transactions``, which fences
an earlier redrive still open (its commit fails) and waits for one that is committing (its
markers are then visible to the read).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from orchestrator import clock
from orchestrator.errors import ConfigError, DecodeError, KsagaError
from orchestrator.kafka import producer_config
from orchestrator.ops.params import Position
from orchestrator.ops.reader import Cluster, headers_of, scan
from orchestrator.ops.render import iso, text_or_hex
from orchestrator.partitioning import partition_for
from orchestrator.wire import decode_input
from schemas import deadletter
from schemas.codec import default_catalog

__all__ = [
    "REDRIVEN_FROM",
    "DeadLetterRecord",
    "RedriveOutcome",
    "decode_payload",
    "list_dead_letters",
    "read_dead_letters",
    "read_markers",
    "redrive",
    "show_dead_letter",
]

REDRIVEN_FROM = "ksaga-redriven-from"
"""Header on a redriven record: the dead letter it was copied from, ``<partition>:<offset>``."""

Headers = list[tuple[str, bytes | None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    info: deadletter.DeadLetterInfo | None
    problem: str | None = None
    """Why ``info`` is None: the dead-letter headers are missing or unreadable."""

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def redriven_from(self) -> str | None:
        found = None
        for name, value in self.headers:
            if name == REDRIVEN_FROM and value is not None:
                found = value.decode(errors="replace")
        return found

    def row(self, marker: Mapping[str, Any] | None = None) -> dict[str, Any]:
        info = self.info
        return {
            "position": self.position,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": iso(self.timestamp_ms),
            "reason": info.reason if info else "?",
            "error_class": info.error_class if info else None,
            "error": info.message if info else self.problem,
            "source": (
                f"{info.source_topic}[{info.source_partition}]@{info.source_offset}"
                if info
                else None
            ),
            "source_topic": info.source_topic if info else None,
            "source_partition": info.source_partition if info else None,
            "source_offset": info.source_offset if info else None,
            "first_seen": iso(info.first_seen_ms) if info else None,
            "key": text_or_hex(self.key),
            "redriven_from": self.redriven_from,
            "redriven": _marker_text(marker),
        }


def _marker_text(marker: Mapping[str, Any] | None) -> str | None:
    if marker is None:
        return None
    return f"{marker['target_topic']}[{marker['target_partition']}] at {iso(marker['at_ms'])}"


def _record(msg: Message) -> DeadLetterRecord:
    headers = headers_of(msg)
    info: deadletter.DeadLetterInfo | None
    try:
        info, problem = deadletter.from_headers(headers), None
    except DecodeError as exc:
        info, problem = None, str(exc)
    partition, offset = msg.partition(), msg.offset()
    assert partition is not None
    assert offset is not None
    return DeadLetterRecord(
        partition, offset, msg.timestamp()[1], msg.key(), msg.value(), headers, info, problem
    )


def read_dead_letters(cluster: Cluster) -> list[DeadLetterRecord]:
    """Every committed dead letter, oldest first."""
    records = [_record(m) for m in cluster.read(cluster.settings.topics.dlq)]
    return sorted(records, key=lambda r: (r.timestamp_ms, r.partition, r.offset))


def read_markers(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Committed redrive markers by dead-letter position; none when the topic is missing."""
    topic = cluster.settings.topics.redriven
    if topic not in cluster.partition_counts():
        return {}
    markers: dict[str, dict[str, Any]] = {}
    for msg in cluster.read(topic):
        key, value = msg.key(), msg.value()
        if key is not None and value is not None:
            markers[key.decode()] = json.loads(value)
    return markers


def list_dead_letters(
    cluster: Cluster, *, reason: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    markers = read_markers(cluster)
    rows = [
        r.row(markers.get(r.position))
        for r in read_dead_letters(cluster)
        if reason is None or (r.info.reason if r.info else "?") == reason
    ]
    return rows[:limit] if limit is not None else rows


# --------------------------------------------------------------------------- show


def _jsonable(value: Any) -> Any:
    """Avro values for JSON: payload bytes (UTF-8 JSON in ksaga) parsed, other bytes as text."""
    if isinstance(value, bytes):
        try:
            return json.loads(value)
        except ValueError:
            return text_or_hex(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def decode_payload(value: bytes | None) -> dict[str, Any]:
    """A ksaga envelope decoded, else JSON (a trigger), else the bytes in hex."""
    try:
        record = default_catalog().decode(value)
    except DecodeError as exc:
        if value:
            try:
                return {"format": "json", "value": json.loads(value)}
            except ValueError:
                pass
        return {"format": "undecodable", "error": str(exc), "hex": (value or b"").hex()}
    return {"format": f"avro {record.record_type}", "value": _jsonable(record.value)}


def _fetch(cluster: Cluster, position: Position) -> DeadLetterRecord | None:
    partition, offset = position
    topic = cluster.settings.topics.dlq
    if not 0 <= partition < cluster.count(topic):
        return None
    if not offset < cluster.ends([(topic, partition)])[(topic, partition)]:
        return None
    for msg in scan(cluster.config, {(topic, partition): offset}, {(topic, partition): offset + 1}):
        if msg.offset() == offset:
            return _record(msg)
    return None


def show_dead_letter(cluster: Cluster, position: Position) -> dict[str, Any]:
    record = _fetch(cluster, position)
    if record is None:
        raise KsagaError(
            f"no dead letter at {position[0]}:{position[1]} of {cluster.settings.topics.dlq}"
            " (see `ksaga dlq list`)"
        )
    marker = read_markers(cluster).get(record.position)
    return {
        **record.row(marker),
        "headers": [[k, text_or_hex(v)] for k, v in record.headers],
        "payload": decode_payload(record.value),
    }


# --------------------------------------------------------------------------- redrive


@dataclass
class RedriveOutcome:
    """What one redrive did, per selected dead letter."""

    redriven: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return sorted(self.redriven + self.skipped, key=lambda r: (r["partition"], r["offset"]))


def _target_partition(
    cluster: Cluster, record: DeadLetterRecord, info: deadletter.DeadLetterInfo
) -> int | None:
    """The inbox: the saga's home partition when the value decodes; else the source one."""
    if info.source_topic == cluster.settings.topics.inbox:
        try:
            return partition_for(decode_input(record.value).saga_id, cluster.partitions)
        except DecodeError:
            return info.source_partition
    count = cluster.partition_counts().get(info.source_topic)
    if count is None:
        return None
    return info.source_partition if info.source_partition < count else None


def _select(
    records: Iterable[DeadLetterRecord],
    positions: Sequence[Position],
    reason: str | None,
    everything: bool,
) -> tuple[list[DeadLetterRecord], list[str]]:
    by_position = {(r.partition, r.offset): r for r in records}
    if positions:
        missing = [f"{p}:{o}" for p, o in positions if (p, o) not in by_position]
        return [by_position[p] for p in dict.fromkeys(positions) if p in by_position], missing
    chosen = [
        r
        for r in by_position.values()
        if everything or (r.info is not None and r.info.reason == reason)
    ]
    return sorted(chosen, key=lambda r: (r.timestamp_ms, r.partition, r.offset)), []


def redrive(
    cluster: Cluster,
    *,
    positions: Sequence[Position] = (),
    reason: str | None = None,
    everything: bool = False,
) -> RedriveOutcome:
    """Re-produce the selected dead letters, with their markers, in one transaction."""
    topics = cluster.settings.topics
    if topics.redriven not in cluster.partition_counts():
        cluster.count(topics.redriven)  # raises the ConfigError that says how to create it
    settings = cluster.settings
    producer = Producer(
        {
            **producer_config(settings),
            "transactional.id": f"{settings.group_id}-redrive",
            "client.id": "ksaga-redrive",
        }
    )
    _call(lambda: producer.init_transactions(30))
    markers = read_markers(cluster)  # after init: an earlier redrive is fenced or committed
    chosen, missing = _select(read_dead_letters(cluster), positions, reason, everything)
    if missing:
        raise ConfigError(f"no dead letter at {', '.join(missing)} (see `ksaga dlq list`)")
    outcome = RedriveOutcome()
    todo: list[tuple[DeadLetterRecord, deadletter.DeadLetterInfo, int | None]] = []
    for record in chosen:
        marker = markers.get(record.position)
        if marker is not None:
            outcome.skipped.append(
                {
                    **record.row(marker),
                    "outcome": f"skipped: already redriven to {_marker_text(marker)}",
                }
            )
        elif record.info is None:
            outcome.skipped.append(
                {**record.row(), "outcome": f"skipped: unreadable dlq headers ({record.problem})"}
            )
        else:
            todo.append((record, record.info, _target_partition(cluster, record, record.info)))
    if todo:
        outcome.redriven = _produce(producer, topics.redriven, todo)
    return outcome


def _produce(
    producer: Producer,
    marker_topic: str,
    todo: list[tuple[DeadLetterRecord, deadletter.DeadLetterInfo, int | None]],
) -> list[dict[str, Any]]:
    delivered: dict[str, str] = {}
    errors: list[KafkaError] = []
    now = clock.wall_ms()

    def report(position: str) -> Any:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered[position] = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"

        return on_delivery

    _call(producer.begin_transaction)
    try:
        for record, info, partition in todo:
            headers: list[tuple[str, str | bytes | None]] = [
                *deadletter.without_dead_letter_headers(record.headers),
                (REDRIVEN_FROM, record.position.encode()),
            ]
            extra: dict[str, Any] = {} if partition is None else {"partition": partition}
            producer.produce(
                info.source_topic, key=record.key, value=record.value, headers=headers,
                on_delivery=report(record.position), **extra,
            )  # fmt: skip
            marker = {
                "dlq": record.position,
                "reason": info.reason,
                "target_topic": info.source_topic,
                "target_partition": partition,
                "at_ms": now,
            }
            producer.produce(marker_topic, key=record.position.encode(), value=json.dumps(marker))
        if producer.flush(30) or errors:
            raise KsagaError(f"redrive not delivered: {errors[0] if errors else 'timed out'}")
        _call(lambda: producer.commit_transaction(30))
    except (KafkaException, KsagaError) as exc:
        with contextlib.suppress(KafkaException):  # fenced or broken: the broker aborts it
            producer.abort_transaction(30)
        raise KsagaError(
            f"redrive failed ({exc}): its transaction was aborted, or its outcome is unknown if"
            " the commit itself failed. The markers commit with the copies, so running the"
            " same redrive again is safe: what was sent is skipped"
        ) from exc
    return [
        {**record.row(), "outcome": f"redriven to {delivered.get(record.position, '?')}"}
        for record, _info, _partition in todo
    ]


def _call(fn: Callable[[], T]) -> T:
    """A transactional call, retried while librdkafka says it is retriable."""
    for attempt in range(10):
        try:
            return fn()
        except KafkaException as exc:
            err = exc.args[0]
            if not (isinstance(err, KafkaError) and err.retriable()) or attempt == 9:
                raise KsagaError(f"redrive failed: {exc}") from exc
    raise AssertionError("unreachable")
