"""Bounded read_committed scans of ksaga's topics, for the operator tools and the checker.

Its one job: read committed records from given offsets up to an end fixed when the scan starts,
the partition's high watermark (read_uncommitted ListOffsets: past the commit markers, which
read_committed readers step over), so a scan of a live topic terminates. read_committed stops
at the last stable offset, so a hanging transaction would stall a scan forever: after
``stall_s`` seconds without progress it raises, naming the partition, instead.

It never commits offsets and never joins a group (``assign`` only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from orchestrator import clock
from orchestrator.config import Settings
from orchestrator.errors import ConfigError, KsagaError
from orchestrator.kafka import watermarks

__all__ = ["Cluster", "headers_of", "read_to_end", "scan"]

_CHUNK = 5_000


def headers_of(msg: Message) -> list[tuple[str, bytes | None]]:
    """A record's headers as (name, bytes) pairs, in order (repeats kept)."""
    raw: Any = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]


def scan(
    config: Mapping[str, Any],
    starts: Mapping[tuple[str, int], int],
    ends: Mapping[tuple[str, int], int],
    *,
    stall_s: float = 60.0,
) -> Iterator[Message]:
    """Committed records of each (topic, partition) from ``starts`` up to ``ends``, per
    partition in offset order (partitions interleave)."""
    todo = {tp for tp, start in starts.items() if start < ends.get(tp, 0)}
    if not todo:
        return
    consumer = Consumer(
        {
            "group.id": "ksaga-ops",
            **config,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in todo])
        progress = clock.monotonic()
        while todo:
            for msg in consumer.consume(_CHUNK, timeout=0.2):
                err = msg.error()
                if err is None:
                    tp = (msg.topic() or "", msg.partition() or 0)
                    offset = msg.offset()
                    if tp in todo and offset is not None and offset < ends[tp]:
                        yield msg
                elif err.code() != KafkaError._PARTITION_EOF:
                    raise KsagaError(f"reading {msg.topic()}[{msg.partition()}] failed: {err}")
            positions = consumer.position([TopicPartition(t, p) for t, p in todo])
            done = {
                (tp.topic, tp.partition)
                for tp in positions
                if tp.offset >= ends[(tp.topic, tp.partition)]
            }
            if done:
                todo -= done
                consumer.incremental_unassign([TopicPartition(t, p) for t, p in done])
                progress = clock.monotonic()
            elif clock.monotonic() - progress > stall_s:
                stuck = ", ".join(f"{t}[{p}]" for t, p in sorted(todo))
                raise KsagaError(
                    f"reading {stuck} made no progress for {stall_s:.0f} s: an open transaction"
                    " holds the last stable offset (a hanging or very long transaction)"
                )
    finally:
        consumer.close()


@dataclass
class Cluster:
    """What every operator command needs: the settings, an admin client, topic shapes."""

    settings: Settings
    admin: AdminClient = field(init=False)
    _counts: dict[str, int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.admin = AdminClient(self.config)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            **self.settings.kafka.client_settings(),
        }

    def partition_counts(self) -> dict[str, int]:
        if self._counts is None:
            try:
                metadata = self.admin.list_topics(timeout=15)
            except KafkaException as exc:
                raise ConfigError(
                    f"cannot reach Kafka ({exc}); check --bootstrap / KSAGA_BOOTSTRAP_SERVERS"
                ) from exc
            self._counts = {
                name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None
            }
        return self._counts

    def count(self, topic: str) -> int:
        """The partition count of ``topic``, or a ConfigError saying how to create it."""
        counts = self.partition_counts()
        if topic not in counts:
            raise ConfigError(
                f"topic {topic} does not exist; run `ksaga topics create --bootstrap"
                f" {self.settings.bootstrap_servers} --partitions <P>`"
                f" (KSAGA_TOPIC_PREFIX={self.settings.topic_prefix!r})"
            )
        return counts[topic]

    @property
    def partitions(self) -> int:
        """P: the partition count shared by the inbox and the state topic (checked)."""
        topics = self.settings.topics
        inbox, state = self.count(topics.inbox), self.count(topics.state)
        if inbox != state:
            raise ConfigError(f"{topics.inbox} has {inbox} partitions but {topics.state} {state}")
        return inbox

    def ends(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return watermarks(self.admin, partitions)

    def beginnings(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return watermarks(self.admin, partitions, earliest=True)

    def read(
        self,
        topic: str,
        partitions: Iterable[int] | None = None,
        starts: Mapping[int, int] | None = None,
    ) -> Iterator[Message]:
        """Every committed record of ``topic`` (or of some partitions, or from some offsets)."""
        chosen = list(range(self.count(topic)) if partitions is None else partitions)
        keys = [(topic, p) for p in chosen]
        ends = self.ends(keys)
        given = starts or {}
        lows = self.beginnings([k for k in keys if k[1] not in given])
        start = {(topic, p): given.get(p, lows.get((topic, p), 0)) for p in chosen}
        return scan(self.config, start, ends)


def read_to_end(
    bootstrap: str, topics: Iterable[str], client: Mapping[str, Any] | None = None
) -> list[Message]:
    """Every committed record of ``topics`` (read_committed), up to their high watermarks.

    ``client``: extra librdkafka settings (a secured cluster's login).
    """
    config = {"bootstrap.servers": bootstrap, **(client or {})}
    admin = AdminClient(config)
    metadata = admin.list_topics(timeout=30)
    keys = [(t, p) for t in topics if t in metadata.topics for p in metadata.topics[t].partitions]
    ends = watermarks(admin, keys)
    return list(scan(config, dict.fromkeys(keys, 0), ends))
