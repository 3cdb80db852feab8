"""``ksaga saga list|show|history``: sagas as the topics record them, read_committed.

``ksaga.state`` is the truth about where each saga is (its latest record per key; a tombstone
means gone), ``ksaga.history`` the truth about how it got there (one record per transition, in
fold order). A saga lives in partition ``murmur2(id) % P`` of both, so ``show`` and ``history``
read that one partition instead of scanning them all; ``list`` reads the whole state topic.

Step numbers are shown with their names when the saga type is in the saga list
(``--sagas``/``KSAGA_SAGAS_MODULE``); a type the running code does not know is shown by number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from orchestrator import clock
from orchestrator.core import Action, SagaState, SagaStatus
from orchestrator.errors import ConfigError, KsagaError
from orchestrator.ops.reader import Cluster
from orchestrator.ops.render import duration, iso, text_or_hex
from orchestrator.partitioning import partition_for
from orchestrator.registry import Registry, load_registry
from orchestrator.wire import decode_state
from schemas.codec import RecordType, default_catalog

__all__ = ["latest_states", "list_sagas", "saga_history", "show_saga"]


def _registry(cluster: Cluster) -> Registry | None:
    try:
        return load_registry(cluster.settings.sagas_module)
    except ConfigError:
        return None


class _Steps:
    """Step index -> name (and command types) from the saga list, when it knows the type."""

    def __init__(self, registry: Registry | None) -> None:
        self.registry = registry

    def name(self, saga_type: str, index: int) -> str:
        definition = self.registry.definition(saga_type) if self.registry else None
        if definition is None or not 0 <= index < len(definition.steps):
            return f"#{index}"
        return definition.steps[index].name

    def command(self, state: SagaState) -> str | None:
        definition = self.registry.definition(state.saga_type) if self.registry else None
        if definition is None or not 0 <= state.step < len(definition.steps):
            return None
        step = definition.steps[state.step]
        if state.action is Action.DO:
            return step.command_type
        return step.compensation.command_type if step.compensation else None


def latest_states(
    cluster: Cluster, partitions: Sequence[int] | None = None
) -> dict[str, tuple[int, SagaState]]:
    """The latest committed state of every saga (tombstoned ones left out), with its partition."""
    latest: dict[str, tuple[int, SagaState] | None] = {}
    for msg in cluster.read(cluster.settings.topics.state, partitions):
        key, value, partition = msg.key(), msg.value(), msg.partition()
        if key is None or partition is None:
            continue
        latest[key.decode()] = None if value is None else (partition, decode_state(value))
    return {k: v for k, v in latest.items() if v is not None}


def _summary(partition: int, state: SagaState, steps: _Steps, now: int) -> dict[str, Any]:
    timer = state.timer
    return {
        "saga_id": state.saga_id,
        "type": state.saga_type,
        "status": state.status.value,
        "step": steps.name(state.saga_type, state.step),
        "action": state.action.value,
        "attempt": state.attempt,
        "version": state.version,
        "partition": partition,
        "started": iso(state.started_ms),
        "updated": iso(state.updated_ms),
        "idle": duration(now - state.updated_ms),
        "timer_due": iso(timer.due_ms) if timer else None,
        "due_in": duration(timer.due_ms - now) if timer else None,
    }


def list_sagas(
    cluster: Cluster,
    *,
    saga_type: str | None = None,
    statuses: Sequence[str] = (),
    older_than_ms: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Sagas newest-updated first; ``older_than_ms``: not updated for at least that long."""
    wanted = {SagaStatus[s.upper()] for s in statuses}
    now = clock.wall_ms()
    steps = _Steps(_registry(cluster))
    chosen = [
        (partition, state)
        for partition, state in latest_states(cluster).values()
        if (saga_type is None or state.saga_type == saga_type)
        and (not wanted or state.status in wanted)
        and (older_than_ms is None or now - state.updated_ms >= older_than_ms)
    ]
    chosen.sort(key=lambda ps: (-ps[1].updated_ms, ps[1].saga_id))
    if limit is not None:
        chosen = chosen[:limit]
    return [_summary(partition, state, steps, now) for partition, state in chosen]


def _data(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return text_or_hex(data)


def show_saga(cluster: Cluster, saga_id: str) -> dict[str, Any]:
    partition = partition_for(saga_id, cluster.partitions)
    found = latest_states(cluster, [partition]).get(saga_id)
    if found is None:
        raise KsagaError(
            f"no saga {saga_id!r} in {cluster.settings.topics.state} (partition {partition})"
        )
    _, state = found
    now = clock.wall_ms()
    steps = _Steps(_registry(cluster))
    timer, failure = state.timer, state.failure
    return {
        **_summary(partition, state, steps, now),
        "step_index": state.step,
        "command": steps.command(state),
        "timer": None
        if timer is None
        else {
            "kind": timer.kind.value,
            "token": timer.token,
            "due": iso(timer.due_ms),
            "due_ms": timer.due_ms,
            "due_in": duration(timer.due_ms - now),
        },
        "completed": [steps.name(state.saga_type, i) for i in state.completed],
        "to_compensate": [steps.name(state.saga_type, i) for i in state.to_compensate],
        "failure": None
        if failure is None
        else {
            "step": failure.step,
            "action": failure.action.value,
            "error_type": failure.error_type,
            "message": failure.message,
        },
        "data": _data(state.data),
    }


def saga_history(cluster: Cluster, saga_id: str) -> list[dict[str, Any]]:
    """The saga's transitions from ``ksaga.history``, in the order they were folded."""
    topic = cluster.settings.topics.history
    partition = partition_for(saga_id, cluster.partitions)
    if cluster.count(topic) != cluster.partitions:
        raise ConfigError(f"{topic} must have {cluster.partitions} partitions like the inbox")
    catalog = default_catalog()
    rows = []
    key = saga_id.encode()
    for msg in cluster.read(topic, [partition]):
        if msg.key() != key:
            continue
        event = catalog.decode_as(RecordType.HISTORY_EVENT, msg.value()).value
        before = event["status_before"]
        rows.append(
            {
                "version": event["version"],
                "at": iso(event["at_ms"]),
                "input": event["input_type"],
                "step": event["step"],
                "action": event["action"],
                "attempt": event["attempt"],
                "status_before": before,
                "status_after": event["status_after"],
                "transition": f"{before or '-'} -> {event['status_after']}",
                "effects": event["effects"],
                "source": (
                    f"{event['source_topic']}[{event['source_partition']}]@{event['source_offset']}"
                ),
                "history_offset": msg.offset(),
            }
        )
    if not rows:
        raise KsagaError(f"no history for saga {saga_id!r} in {topic} (partition {partition})")
    return rows
