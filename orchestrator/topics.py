"""Topic administration: create ksaga's topics (idempotently) and check them at start.

``ksaga.inbox`` and ``ksaga.state`` must have the same partition count P, fixed at creation: a
saga lives in partition ``murmur2(id) % P`` of both. The state topic is compacted; the others
delete by time. The orchestrator refuses to start against missing topics or mismatched counts,
with the command that fixes it, rather than failing later inside a transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from orchestrator import clock
from orchestrator.config import Settings
from orchestrator.errors import ConfigError

__all__ = ["TopicPlan", "check_topics", "create_topics", "plan_topics"]

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicPlan:
    name: str
    partitions: int
    config: Mapping[str, str]


def plan_topics(
    settings: Settings, partitions: int, extra_topics: Iterable[str] = ()
) -> list[TopicPlan]:
    """ksaga's four topics with P partitions, plus (e.g. command/trigger) topics of the sagas."""
    t = settings.topics
    plans = [
        TopicPlan(
            t.inbox,
            partitions,
            # LogAppendTime: the `now` of every fold is the broker's clock, not a participant's.
            {
                "cleanup.policy": "delete",
                "retention.ms": str(7 * _DAY_MS),
                "message.timestamp.type": "LogAppendTime",
            },
        ),
        TopicPlan(
            t.state,
            partitions,
            {
                "cleanup.policy": "compact",
                "delete.retention.ms": str(_DAY_MS),
                "min.cleanable.dirty.ratio": "0.5",
                "segment.ms": str(_DAY_MS),
            },
        ),
        TopicPlan(
            t.history, partitions, {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)}
        ),
        TopicPlan(
            t.dlq, partitions, {"cleanup.policy": "delete", "retention.ms": str(30 * _DAY_MS)}
        ),
        # Redrive markers: few and small, one partition; kept as long as a dead letter (they
        # are written after it, so a marker outlives the record it marks).
        TopicPlan(t.redriven, 1, {"cleanup.policy": "delete", "retention.ms": str(30 * _DAY_MS)}),
    ]
    ours = {p.name for p in plans}
    plans += [TopicPlan(name, partitions, {}) for name in sorted(set(extra_topics) - ours)]
    return plans


def create_topics(
    admin: AdminClient, plans: Iterable[TopicPlan], replication_factor: int = -1
) -> dict[str, str]:
    """Create what is missing; report 'created' or 'exists' per topic. Never alters a topic."""
    plans = list(plans)
    existing = _partition_counts(admin)
    todo = [p for p in plans if p.name not in existing]
    results = {p.name: "exists" for p in plans if p.name in existing}
    if todo:
        futures = admin.create_topics(
            [
                NewTopic(p.name, num_partitions=p.partitions, replication_factor=replication_factor,
                         config=dict(p.config))
                for p in todo
            ],
            operation_timeout=30,
        )  # fmt: skip
        for name, future in futures.items():
            try:
                future.result(60)
                results[name] = "created"
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" in str(exc):
                    results[name] = "exists"
                else:
                    raise
    return results


def check_topics(admin: AdminClient, settings: Settings, required: Iterable[str]) -> int:
    """Fail fast unless every topic exists and inbox/state agree on P. Returns P."""
    t = settings.topics
    counts = _partition_counts(admin)
    fix = (
        f"run `ksaga topics create --bootstrap {settings.bootstrap_servers}"
        f" --partitions <P>` (KSAGA_TOPIC_PREFIX={settings.topic_prefix!r})"
    )
    missing = sorted(name for name in {*t.all, *required} if name not in counts)
    forbidden = [name for name in missing if _describe_denied(admin, name)]
    if forbidden:
        raise ConfigError(
            f"not authorised to describe topic(s) {', '.join(forbidden)}: grant this principal"
            " the orchestrator's ACLs (`ksaga acls print` lists them; `ksaga acls apply` creates"
            " them as an admin)"
        )
    if missing:
        raise ConfigError(f"missing topic(s): {', '.join(missing)}; {fix}")
    inbox, state = counts[t.inbox], counts[t.state]
    if inbox != state:
        raise ConfigError(
            f"{t.inbox} has {inbox} partitions but {t.state} has {state}: they must match"
            " (a saga lives in the same partition of both); recreate them with one count"
        )
    if settings.partitions is not None and settings.partitions != inbox:
        raise ConfigError(
            f"KSAGA_PARTITIONS={settings.partitions} but {t.inbox} has {inbox} partitions;"
            " set KSAGA_PARTITIONS to the real count (partitions cannot change after creation)"
        )
    return inbox


def _describe_denied(admin: AdminClient, name: str) -> bool:
    """True if the topic is hidden from us by an ACL (listing all topics just omits it)."""
    try:
        topic = admin.list_topics(name, timeout=15).topics.get(name)
    except KafkaException:
        return False
    return (
        topic is not None
        and topic.error is not None
        and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    )


def _partition_counts(admin: AdminClient, timeout: float = 15.0) -> dict[str, int]:
    deadline = clock.monotonic() + timeout
    while True:
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(0.1, deadline - clock.monotonic())))
            break
        except KafkaException as exc:
            # Serves the error callback of orchestrator.kafka.new_admin, which raises a
            # ConfigError naming the credentials when the broker refused them: seconds, not 15.
            admin.poll(0)
            if clock.monotonic() >= deadline:
                raise ConfigError(
                    f"cannot reach Kafka to list topics ({exc}); check KSAGA_BOOTSTRAP_SERVERS"
                    " and, on a secured cluster, KSAGA_KAFKA__SECURITY_PROTOCOL"
                ) from exc
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None
    }
