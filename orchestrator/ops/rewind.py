"""``ksaga replay --reset-group``: rewind the orchestrator group on the inbox, for a real
reprocessing of records by the replicas.

What a rewind does, precisely. It moves the orchestrator group's committed offsets on
``ksaga.inbox`` back to the starting point; nothing else (trigger topics keep their offsets;
``ksaga.state`` and the stores are not touched). The replicas, started again, fold every record
from there once more, **against the states they hold now** (each store is restored from
``ksaga.state``, the fold of everything committed). It is not a re-run of history from the
starting point:

* A record that already made a transition folds to nothing now: a saga's state only moves
  forward, so its reply is stale (attempts of a step only grow), its timer token is no longer
  pending (a token names one step, action, attempt and kind), its start is a duplicate. No
  command is emitted twice and exactly-once holds: the rewind only re-delivers inputs, and each
  is folded in a transaction with its offset, as always.
* A record that was dead-lettered (an unknown saga type, a definition's bug, since fixed) is
  folded for real now, in its original position among its saga's records: the bulk, in-order
  alternative to ``ksaga dlq redrive``. Its ``now`` is still its LogAppendTime, so a timeout
  counted from it may already have passed: the step's first attempt then times out at once and
  is retried, and the participant answers the retry from its idempotency-key cache.
* A record that is still bad is dead-lettered again (a second dead letter for one source).

Why not a faithful re-fold from the starting point (states as they were then): ``ksaga.state``
is compacted, so the states of an arbitrary past point are not all there to restore, and a
re-fold of inputs that already acted would emit their commands again, to participants whose
cache may have expired. So the rewind is refused, with the records named, whenever the preview
(the same fold the replicas will do, over the window, against the latest states) shows a record
that had an outcome before (a transition or nothing) and would now act: e.g. new code deciding
an old input differently. Only records recorded as dead letters may act.

Also refused: a group with active members (they would commit over the reset: stop every replica
first; the broker also refuses an offset commit from outside a group that has members), a
starting point past the committed offset (records never folded would be skipped), and
``--saga`` (offsets are per partition: a rewind reprocesses every saga of the partition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from orchestrator.errors import ConfigError, KsagaError
from orchestrator.inbox import Refold
from orchestrator.ops.inspect import latest_states
from orchestrator.ops.reader import Cluster
from orchestrator.ops.replay import (
    Window,
    outcome_text,
    read_recorded,
    read_window,
    window,
)
from orchestrator.registry import Registry

__all__ = ["RewindPlan", "ensure_group_empty", "plan_rewind", "reset_group"]


@dataclass
class RewindPlan:
    window: Window
    act: list[dict[str, Any]] = field(default_factory=list)
    """Dead-lettered records that will now make a transition."""
    dead_again: list[dict[str, Any]] = field(default_factory=list)
    """Records that will be dead-lettered (again)."""
    unsafe: list[dict[str, Any]] = field(default_factory=list)
    """Records that had an outcome and would act again: the rewind is refused."""
    records: int = 0

    def moves(self) -> dict[int, tuple[int, int]]:
        """Partition -> (committed, new offset) for the partitions the rewind changes."""
        return {
            p: (self.window.committed[p], start)
            for p, (start, _end) in sorted(self.window.ranges.items())
            if self.window.committed[p] > start
        }

    def summary(self) -> str:
        return (
            f"rewind of {len(self.moves())} partition(s): {self.records:,} records to fold"
            f" again; {len(self.act)} dead-lettered record(s) will act,"
            f" {len(self.dead_again)} will be dead-lettered again, {len(self.unsafe)} unsafe"
        )


def plan_rewind(
    cluster: Cluster,
    registry: Registry,
    *,
    from_offsets: Mapping[int, int] | None = None,
    from_ms: int | None = None,
) -> RewindPlan:
    """What the replicas will do with the window, folded as they will fold it."""
    count = cluster.partitions
    partitions = sorted(from_offsets) if from_offsets else list(range(count))
    bad = [p for p in partitions if not 0 <= p < count]
    if bad:
        raise ConfigError(f"partition(s) {bad} outside 0..{count - 1}")
    span = window(cluster, partitions, from_offsets=from_offsets, from_ms=from_ms)
    ahead = {p: o for p, o in (from_offsets or {}).items() if o > span.committed[p]}
    if ahead:
        past = ", ".join(
            f"{p}:{o} is past the committed offset {span.committed[p]}"
            for p, o in sorted(ahead.items())
        )
        raise KsagaError(
            f"refusing to move the group forward: {past}; the records between would never be folded"
        )
    messages = read_window(cluster, span)
    recorded = read_recorded(cluster, registry, partitions, commands=False)
    states = {saga: state for saga, (_p, state) in latest_states(cluster, partitions).items()}
    refold = Refold(registry, count, dict(states))
    plan = RewindPlan(span, records=len(messages))
    for msg in messages:
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None
        assert offset is not None
        folded = refold.feed(partition, msg.value(), msg.timestamp()[1])
        if folded.changed is None and folded.dead_letter is None:
            continue
        was_dead = (partition, offset) in recorded.dead_letters
        row = {
            "at": f"{partition}:{offset}",
            "saga_id": folded.event.saga_id if folded.event else None,
            "recorded": (
                f"dead letter {recorded.dead_letters[(partition, offset)]}"
                if was_dead
                else ("transition" if (partition, offset) in recorded.history else "nothing")
            ),
            "will": outcome_text(folded),
        }
        if folded.changed is None:
            plan.dead_again.append(row)
        elif was_dead:
            plan.act.append(row)
        else:
            plan.unsafe.append(row)
    return plan


def ensure_group_empty(cluster: Cluster) -> None:
    group = cluster.settings.group_id
    try:
        described = cluster.admin.describe_consumer_groups([group])[group].result(30)
    except KafkaException as exc:
        raise KsagaError(f"cannot describe consumer group {group}: {exc}") from exc
    members = list(described.members or [])
    if members:
        who = ", ".join(sorted(f"{m.client_id}@{m.host}" for m in members))
        raise KsagaError(
            f"consumer group {group} has {len(members)} active member(s) ({who}): stop every"
            " orchestrator replica before rewinding (a live member would commit over the reset"
            " and fold with a store that is not restored from it)"
        )


def reset_group(cluster: Cluster, plan: RewindPlan) -> dict[int, tuple[int, int]]:
    """Move the committed offsets; refuses an unsafe plan or a group with members."""
    if plan.unsafe:
        raise KsagaError(
            f"refusing to rewind: {len(plan.unsafe)} record(s) that already had an outcome would"
            f" act again (first: {plan.unsafe[0]['at']} {plan.unsafe[0]['saga_id']}:"
            f" {plan.unsafe[0]['will']}); run `ksaga replay` to see where the code diverges"
        )
    ensure_group_empty(cluster)
    moves = plan.moves()
    if not moves:
        return moves
    settings = cluster.settings
    request = ConsumerGroupTopicPartitions(
        settings.group_id,
        [TopicPartition(settings.topics.inbox, p, new) for p, (_old, new) in moves.items()],
    )
    try:
        for future in cluster.admin.alter_consumer_group_offsets([request]).values():
            future.result(30)
    except KafkaException as exc:
        raise KsagaError(f"resetting {settings.group_id} failed: {exc}") from exc
    return moves
