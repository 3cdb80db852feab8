"""``ksaga replay``: re-fold what the orchestrator folded, with the current code, emitting nothing.

A saga's life is the fold of its inbox records (``decide`` is pure, ``now`` is the record's
LogAppendTime), so the current code can be run over the recorded inbox and compared, record by
record, with what the running code did then, as Temporal's replayer does with a workflow
history. The window per inbox partition is from the starting point (``--from-offset``,
``--from-timestamp``, or the beginning) to the orchestrator group's committed offset: exactly
the records whose outcome is committed (read with ``require_stable``, so a pending transaction
is decided first); the outputs are read after it, so every outcome of the window is there.

What happened to each record is in the log, tied to it by its source offset:

* a transition: the ``ksaga.history`` record with that source (version, status, effects), the
  ``ksaga.state`` record of that version (when compaction has kept it) and the commands with
  the effects' (idempotency key, attempt) in the command topics (when retention has);
* a dead letter: the ``ksaga.dlq`` record with that source;
* nothing (a duplicate, a stale reply or timer): neither.

The replay folds each record through the loop's own code (``inbox.Refold``) and compares: the
kind of outcome, the version, status and effects, then the full state and each command's
topic, type and payload. The first difference of a saga is its divergence; its later records
are not compared (its state differs from there on).

Starting mid-log: the fold needs each saga's state just before the starting point. It is the
state record whose version precedes the saga's first transition at or after that point (or,
with none, its latest state); a saga whose state of that version was compacted away cannot be
replayed from there and is listed as skipped (replay from the beginning instead). This needs
``ksaga.history`` (``KSAGA_HISTORY=true``, the default); without it only a replay from the
beginning of the inbox is possible, and the tool says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from orchestrator.core import SagaState, SendCommand, StepFailed, StepSucceeded
from orchestrator.errors import ConfigError, DecodeError, KsagaError
from orchestrator.inbox import Folded, Refold
from orchestrator.ops.reader import Cluster, headers_of, scan
from orchestrator.partitioning import partition_for
from orchestrator.records import describe_effect
from orchestrator.registry import Registry
from orchestrator.wire import decode_input, decode_state
from schemas import deadletter
from schemas.codec import RecordType, default_catalog

__all__ = [
    "Divergence",
    "ReplayReport",
    "Window",
    "committed_offsets",
    "read_recorded",
    "read_window",
    "replay",
    "window",
]


# --------------------------------------------------------------------------- the window


@dataclass(frozen=True, slots=True)
class Window:
    """Per inbox partition: [start, end) where end is the group's committed offset."""

    ranges: Mapping[int, tuple[int, int]]
    committed: Mapping[int, int] = field(default_factory=dict)
    """The group's committed offset per partition (-1: none), whatever the requested start."""
    clamped: Mapping[int, int] = field(default_factory=dict)
    """Partitions whose requested start lay below the first retained offset (now the start)."""

    def describe(self) -> str:
        return ", ".join(f"{p}: {s}..{e}" for p, (s, e) in sorted(self.ranges.items()))


def committed_offsets(cluster: Cluster, partitions: Iterable[int]) -> dict[int, int]:
    """The orchestrator group's committed inbox offsets (-1: none), once stable."""
    settings = cluster.settings
    consumer = Consumer(
        {
            **cluster.config,
            "group.id": settings.group_id,
            "isolation.level": "read_committed",  # committed() then asks for stable offsets
            "enable.auto.commit": False,
        }
    )
    try:
        wait_s = settings.transaction_timeout_ms / 1000 + 30
        tps = [TopicPartition(settings.topics.inbox, p) for p in partitions]
        found = consumer.committed(tps, timeout=wait_s)
    except KafkaException as exc:
        raise KsagaError(
            f"cannot read the committed offsets of {settings.group_id}: {exc}"
        ) from exc
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else -1 for tp in found}


def window(
    cluster: Cluster,
    partitions: Iterable[int],
    *,
    from_offsets: Mapping[int, int] | None = None,
    from_ms: int | None = None,
) -> Window:
    inbox = cluster.settings.topics.inbox
    chosen = sorted(partitions)
    ends = committed_offsets(cluster, chosen)
    lows = cluster.beginnings([(inbox, p) for p in chosen])
    starts = {p: lows[(inbox, p)] for p in chosen}
    if from_offsets:
        starts.update({p: o for p, o in from_offsets.items() if p in starts})
    if from_ms is not None:
        starts.update(_offsets_for_time(cluster, chosen, from_ms))
    clamped = {p: s for p, s in starts.items() if s < lows[(inbox, p)]}
    ranges = {}
    for p in chosen:
        start = max(starts[p], lows[(inbox, p)])
        end = ends[p] if ends[p] >= 0 else start  # nothing committed: nothing was folded
        ranges[p] = (start, max(start, end))
    return Window(ranges, ends, clamped)


def _offsets_for_time(cluster: Cluster, partitions: list[int], ms: int) -> dict[int, int]:
    inbox = cluster.settings.topics.inbox
    highs = cluster.ends([(inbox, p) for p in partitions])
    consumer = Consumer({**cluster.config, "group.id": "ksaga-ops"})
    try:
        found = consumer.offsets_for_times([TopicPartition(inbox, p, ms) for p in partitions], 30)
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else highs[(inbox, tp.partition)]
            for tp in found}  # fmt: skip


def read_window(cluster: Cluster, span: Window) -> list[Message]:
    inbox = cluster.settings.topics.inbox
    starts = {(inbox, p): s for p, (s, _e) in span.ranges.items()}
    ends = {(inbox, p): e for p, (_s, e) in span.ranges.items()}
    return sorted(scan(cluster.config, starts, ends), key=lambda m: (m.partition(), m.offset()))


# --------------------------------------------------------------------------- what happened


@dataclass
class _Recorded:
    """The log's account of the inbox partitions: transitions, dead letters, states, commands."""

    history: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    first_version_from: dict[str, list[tuple[int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    states: dict[tuple[str, int], SagaState] = field(default_factory=dict)
    latest: dict[str, SagaState | None] = field(default_factory=dict)
    dead_letters: dict[tuple[int, int], str] = field(default_factory=dict)
    commands: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def seed(self, saga_id: str, start: int) -> tuple[bool, SagaState | None]:
        """(known, state) of the saga just before inbox offset ``start`` of its partition."""
        after = [v for offset, v in self.first_version_from.get(saga_id, []) if offset >= start]
        if after:
            version = min(after) - 1
        else:
            latest = self.latest.get(saga_id)
            version = latest.version if latest is not None else 0
        if version == 0:
            return True, None
        state = self.states.get((saga_id, version))
        return state is not None, state


def read_recorded(
    cluster: Cluster,
    registry: Registry,
    partitions: list[int],
    saga_id: str | None = None,
    *,
    commands: bool = True,
) -> _Recorded:
    topics = cluster.settings.topics
    catalog = default_catalog()
    recorded = _Recorded()
    key = saga_id.encode() if saga_id is not None else None
    for msg in cluster.read(topics.history, partitions):
        if key is not None and msg.key() != key:
            continue
        event = catalog.decode_as(RecordType.HISTORY_EVENT, msg.value()).value
        if event["source_topic"] != topics.inbox:
            continue
        source = (event["source_partition"], event["source_offset"])
        recorded.history[source] = event
        recorded.first_version_from[event["saga_id"]].append((source[1], event["version"]))
    for msg in cluster.read(topics.state, partitions):
        raw_key, value = msg.key(), msg.value()
        if raw_key is None or (key is not None and raw_key != key):
            continue
        state = None if value is None else decode_state(value)
        recorded.latest[raw_key.decode()] = state
        if state is not None:
            recorded.states[(state.saga_id, state.version)] = state
    if recorded.states and not recorded.history and key is None:
        raise ConfigError(
            f"{topics.history} holds no transitions but {topics.state} holds states: replay"
            " compares with the history, so it needs KSAGA_HISTORY=true on the replicas"
        )
    wanted = set(partitions)
    for msg in cluster.read(topics.dlq):
        try:
            info = deadletter.from_headers(headers_of(msg))
        except DecodeError:
            continue
        if info.source_topic == topics.inbox and info.source_partition in wanted:
            recorded.dead_letters[(info.source_partition, info.source_offset)] = info.reason
    counts = cluster.partition_counts()
    for topic in sorted(t for t in registry.command_topics if t in counts and commands):
        only = None if saga_id is None else [partition_for(saga_id, counts[topic])]
        for msg in cluster.read(topic, only):
            if key is not None and msg.key() != key:
                continue
            try:
                command = catalog.decode_as(RecordType.COMMAND, msg.value()).value
            except DecodeError:
                continue
            recorded.commands[(command["idempotency_key"], command["attempt"])] = {
                **command,
                "topic": topic,
            }
    return recorded


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True, slots=True)
class Divergence:
    saga_id: str
    position: str
    input: str
    recorded: str
    replayed: str
    detail: str = ""

    def row(self) -> dict[str, str]:
        return {
            "saga_id": self.saga_id,
            "at": self.position,
            "input": self.input,
            "recorded": self.recorded,
            "replayed": self.replayed,
            "detail": self.detail,
        }


@dataclass
class ReplayReport:
    window: Window
    records: int = 0
    compared: int = 0
    sagas: set[str] = field(default_factory=set)
    divergences: list[Divergence] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    not_compared: int = 0

    @property
    def diverged(self) -> bool:
        return bool(self.divergences)

    def summary(self) -> str:
        diverged = {d.saga_id for d in self.divergences}
        same = len(self.sagas - diverged - set(self.skipped))
        return (
            f"replay: {self.records:,} inbox records in {len(self.window.ranges)} partition(s)"
            f" ({self.window.describe()}); {len(self.sagas):,} sagas: {same:,} identical,"
            f" {len(diverged):,} diverged, {len(self.skipped):,} skipped"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {str(p): list(r) for p, r in sorted(self.window.ranges.items())},
            "records": self.records,
            "compared": self.compared,
            "sagas": len(self.sagas),
            "divergences": [d.row() for d in self.divergences],
            "skipped": self.skipped,
            "summary": self.summary(),
        }


def outcome_text(folded: Folded) -> str:
    """The replayed outcome of one record, spelled like the recorded one."""
    changed = folded.changed
    if changed is not None:
        assert folded.decision is not None
        effects = "; ".join(describe_effect(e) for e in folded.decision.effects)
        return f"v{changed.version} {changed.status.name} [{effects}]"
    if folded.dead_letter is not None:
        return f"dead letter {folded.dead_letter.reason}"
    return f"nothing ({folded.ignored})" if folded.ignored else "nothing"


def _recorded_text(event: dict[str, Any] | None, reason: str | None) -> str:
    if event is not None:
        return f"v{event['version']} {event['status_after']} [{'; '.join(event['effects'])}]"
    if reason is not None:
        return f"dead letter {reason}"
    return "nothing"


def _input_text(folded: Folded) -> str:
    event = folded.event
    if isinstance(event, StepSucceeded | StepFailed):
        return f"{type(event).__name__}({event.step}/{event.action.value}#{event.attempt})"
    return "undecodable" if event is None else type(event).__name__


def _deeper(folded: Folded, recorded: _Recorded) -> str:
    """With equal summaries: the full state and each command against the log, when kept."""
    changed = folded.changed
    assert changed is not None
    assert folded.decision is not None
    stored = recorded.states.get((changed.saga_id, changed.version))
    if stored is not None and stored != changed:
        fields = [f for f in SagaState.__slots__ if getattr(stored, f) != getattr(changed, f)]
        return f"state v{changed.version} differs in {', '.join(fields)}"
    for effect in folded.decision.effects:
        if not isinstance(effect, SendCommand):
            continue
        sent = recorded.commands.get((effect.idempotency_key, effect.attempt))
        if sent is None:
            continue
        for name, mine, theirs in (
            ("topic", effect.topic, sent["topic"]),
            ("command type", effect.command_type, sent["command_type"]),
            ("payload", effect.payload, sent["payload"]),
        ):
            if mine != theirs:
                return (
                    f"command {effect.idempotency_key}#{effect.attempt}: {name}"
                    f" {theirs!r} recorded, {mine!r} replayed"
                )
    return ""


def _same(folded: Folded, event: dict[str, Any] | None, reason: str | None) -> bool:
    changed = folded.changed
    if changed is not None:
        if event is None:
            return False
        assert folded.decision is not None
        effects = [describe_effect(e) for e in folded.decision.effects]
        return bool(
            event["version"] == changed.version
            and event["status_after"] == changed.status.name
            and event["effects"] == effects
        )
    if event is not None:
        return False
    mine = folded.dead_letter.reason if folded.dead_letter is not None else None
    return mine == reason


def _saga_of(msg: Message) -> str | None:
    try:
        return decode_input(msg.value()).saga_id
    except DecodeError:
        return None


def _partitions(
    count: int, saga_id: str | None, from_offsets: Mapping[int, int] | None
) -> list[int]:
    if saga_id is not None:
        partitions = [partition_for(saga_id, count)]
        other = sorted(set(from_offsets or {}) - set(partitions))
        if other:
            raise ConfigError(f"saga {saga_id!r} lives in partition {partitions[0]}, not {other}")
    elif from_offsets:
        partitions = sorted(from_offsets)
    else:
        partitions = list(range(count))
    bad = [p for p in partitions if not 0 <= p < count]
    if bad:
        raise ConfigError(f"partition(s) {bad} outside 0..{count - 1}")
    return partitions


class _Replayer:
    """One replay: seeds each saga on its first record, folds, compares, stops at divergence."""

    def __init__(
        self, cluster: Cluster, registry: Registry, span: Window, recorded: _Recorded
    ) -> None:
        self.state_topic = cluster.settings.topics.state
        self.span = span
        self.recorded = recorded
        self.refold = Refold(registry, cluster.partitions)
        self.report = ReplayReport(span)
        self.diverged: set[str] = set()

    def _ready(self, saga_id: str, partition: int) -> bool:
        """Seed the saga on its first record; False when it cannot be compared (any more)."""
        report = self.report
        if saga_id in report.skipped or saga_id in self.diverged:
            return False
        if saga_id not in self.refold.states:
            start = self.span.ranges[partition][0]
            known, state = self.recorded.seed(saga_id, start)
            if not known:
                report.skipped[saga_id] = (
                    f"its state before {partition}:{start} is no longer in {self.state_topic};"
                    " replay from the beginning"
                )
                return False
            self.refold.states[saga_id] = state
        return True

    def feed(self, msg: Message, owner: str | None) -> None:
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None
        assert offset is not None
        report = self.report
        report.records += 1
        if owner is not None:
            report.sagas.add(owner)
            if not self._ready(owner, partition):
                report.not_compared += 1
                return
        folded = self.refold.feed(partition, msg.value(), msg.timestamp()[1])
        event = self.recorded.history.get((partition, offset))
        reason = self.recorded.dead_letters.get((partition, offset))
        report.compared += 1
        detail = ""
        if _same(folded, event, reason):
            if folded.changed is None:
                return
            detail = _deeper(folded, self.recorded)
            if not detail:
                return
        report.divergences.append(
            Divergence(
                owner or "?", f"{partition}:{offset}", _input_text(folded),
                _recorded_text(event, reason), outcome_text(folded), detail,
            )
        )  # fmt: skip
        if owner is not None:
            self.diverged.add(owner)


def replay(
    cluster: Cluster,
    registry: Registry,
    *,
    saga_id: str | None = None,
    from_offsets: Mapping[int, int] | None = None,
    from_ms: int | None = None,
) -> ReplayReport:
    """Fold the window with ``registry``'s code and compare each record with the log."""
    partitions = _partitions(cluster.partitions, saga_id, from_offsets)
    span = window(cluster, partitions, from_offsets=from_offsets, from_ms=from_ms)
    messages = read_window(cluster, span)  # before the outputs: all their outcomes are there
    replayer = _Replayer(
        cluster, registry, span, read_recorded(cluster, registry, partitions, saga_id)
    )
    for msg in messages:
        owner = _saga_of(msg)
        if saga_id is None or owner == saga_id:
            replayer.feed(msg, owner)
    return replayer.report
