"""The Kafka ACLs each ksaga role needs, derived from the saga definitions: listed for operators
(``ksaga acls print``, the README) and created with the admin API (``ksaga acls apply``).

Its one job is least privilege per role, on a cluster whose authorizer denies what no ACL allows:

* **orchestrator**: reads the inbox, the state topic (restore) and the trigger topics; writes
  the inbox (StartSaga, TimerFired), state, history, dead letters and the command topics; its
  consumer group (offsets committed in the transaction) and its restore consumers' groups; WRITE
  on its ``transactional.id`` prefix (``<group>-<replica id>``). Nothing on the cluster resource:
  a transactional or idempotent producer needs no IDEMPOTENT_WRITE since Kafka 3.0 (KIP-679).
* **participant** (one per command topic; ``inventory.commands`` -> ``inventory``): reads its
  own command topic with its own group; writes the inbox (replies) and the DLQ (bad commands).
* **publisher** (one per trigger topic): writes the trigger topic.
* **operator** (``ksaga topics create`` and the ``ksaga saga|dlq|state|replay`` tools): creates and
  describes the topics, reads them, writes operator requests and redrives into the inbox.
  ``ksaga acls apply`` itself needs ALTER on the cluster: run it as a super user.

What ACLs cannot do, said plainly: Kafka authorises a principal per topic, never per record,
key or partition. A participant may write the inbox, so it can write *any* record there: a reply
for another participant's step, a StartSaga, a TimerFired. ACLs stop everything else (a
participant cannot write state, history or commands, read another participant's commands, join
the orchestrator's group or fence its transactions) and keep every unauthenticated or
unauthorised client out of the inbox entirely; what remains is a participant that is itself
compromised, against which the orchestrator's rule "only the reply for the exact step, action
and attempt in flight moves a saga" is a mitigation, not a proof.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from orchestrator import clock
from orchestrator.config import Topics

__all__ = [
    "Grant",
    "Role",
    "apply_acls",
    "participant_name",
    "plan_acls",
    "render_acls",
    "to_bindings",
]


@dataclass(frozen=True, slots=True)
class Grant:
    """ALLOW ``operation`` on one resource (``topic``, ``group``, ``transactional-id``)."""

    resource: str
    name: str
    operation: str
    why: str
    prefixed: bool = False


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    principal: str
    grants: tuple[Grant, ...]


def participant_name(command_topic: str) -> str:
    """The service behind a command topic: ``inventory.commands`` -> ``inventory``."""
    return command_topic.removesuffix(".commands")


def plan_acls(
    topics: Topics,
    group_id: str,
    trigger_topics: Iterable[str],
    command_topics: Iterable[str],
    *,
    principals: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
) -> list[Role]:
    """Every role's grants. ``principals`` overrides the default principal of a role key
    (``orchestrator``, ``operator``, ``participant:<name>``, ``publisher:<topic>``); ``groups``
    overrides a participant's consumer group (default: its name)."""
    chosen = dict(principals or {})
    group_of = dict(groups or {})
    triggers, commands = sorted(set(trigger_topics)), sorted(set(command_topics))

    def principal(key: str, default: str) -> str:
        return chosen.pop(key, default)

    def topic(name: str, operation: str, why: str) -> Grant:
        return Grant("topic", name, operation, why)

    orchestrator = Role(
        "orchestrator",
        principal("orchestrator", "User:ksaga-orchestrator"),
        (
            topic(topics.inbox, "READ", "folds every inbox record"),
            topic(topics.inbox, "WRITE", "StartSaga (routed triggers), TimerFired"),
            topic(topics.state, "READ", "restores its partitions' stores"),
            topic(topics.state, "WRITE", "each saga's new state"),
            topic(topics.history, "WRITE", "one HistoryEvent per transition"),
            topic(topics.dlq, "WRITE", "dead letters"),
            *(topic(t, "READ", "routes triggers to StartSaga") for t in triggers),
            *(topic(t, "WRITE", "commands to participants") for t in commands),
            Grant("group", group_id, "READ", "its group; offsets committed in the transaction"),
            Grant("group", f"{group_id}-restore-", "READ", "restore consumers", prefixed=True),
            Grant(
                "transactional-id",
                f"{group_id}-",
                "WRITE",
                "transactions (transactional.id = <group>-<replica id>)",
                prefixed=True,
            ),
        ),
    )
    roles = [orchestrator]
    for command_topic in commands:
        name = participant_name(command_topic)
        group = group_of.pop(name, name)
        roles.append(
            Role(
                f"participant {name}",
                principal(f"participant:{name}", f"User:{name}"),
                (
                    topic(command_topic, "READ", "its own commands, nobody else's"),
                    Grant("group", group, "READ", "its consumer group"),
                    topic(topics.inbox, "WRITE", "replies"),
                    topic(topics.dlq, "WRITE", "malformed commands"),
                ),
            )
        )
    for trigger in triggers:
        roles.append(
            Role(
                f"publisher {trigger}",
                principal(f"publisher:{trigger}", f"User:{trigger}-publisher"),
                (topic(trigger, "WRITE", "publishes the events that start sagas"),),
            )
        )
    created = [*topics.all, topics.redriven, *triggers, *commands]
    readable = [topics.inbox, topics.state, topics.history, topics.dlq, *commands]
    roles.append(
        Role(
            "operator",
            principal("operator", "User:ksaga-operator"),
            (
                *(
                    grant
                    for name in created
                    for grant in (
                        topic(name, "CREATE", "ksaga topics create"),
                        topic(name, "DESCRIBE", "sees which topics exist"),
                    )
                ),
                *(
                    topic(t, "READ", "saga list/show/history, dlq list/show, replay")
                    for t in readable
                ),
                topic(topics.inbox, "WRITE", "saga resume/cancel; dlq redrive of inbox records"),
                # Never the command topics: only the orchestrator writes commands (a participant's
                # dead letter is redriven by a principal allowed to, deliberately).
                *(topic(t, "WRITE", "dlq redrive of a trigger") for t in triggers),
                topic(topics.redriven, "READ", "dlq redrive: which letters were sent"),
                topic(topics.redriven, "WRITE", "dlq redrive: the marker, in the same transaction"),
                Grant("group", "ksaga-ops", "READ", "the inspection tools' reads"),
                Grant("group", group_id, "READ", "replay --reset-group moves its offsets"),
                Grant("group", group_id, "DESCRIBE", "replay checks the group has no members"),
                Grant(
                    "transactional-id", f"{group_id}-redrive", "WRITE", "dlq redrive's transaction"
                ),
            ),
        )
    )
    if chosen or group_of:
        unknown = ", ".join(sorted({*chosen, *group_of}))
        known = ", ".join(["orchestrator", "operator"] + [f"participant:{participant_name(t)}"
                                                        for t in commands]
                          + [f"publisher:{t}" for t in triggers])  # fmt: skip
        raise ValueError(f"no role {unknown}; the roles are {known}")
    return roles


def render_acls(roles: Iterable[Role]) -> str:
    """A Markdown table, one row per role and resource (the README's; ``ksaga acls print``)."""
    lines = [
        "| role | principal | resource | operations | for |",
        "|---|---|---|---|---|",
    ]
    for role in roles:
        rows: dict[tuple[str, str, bool], list[Grant]] = {}
        for g in role.grants:
            rows.setdefault((g.resource, g.name, g.prefixed), []).append(g)
        for (resource, name, prefixed), grants in rows.items():
            pattern = " (prefix)" if prefixed else ""
            operations = ", ".join(g.operation for g in grants)
            why = "; ".join(dict.fromkeys(g.why for g in grants))
            lines.append(
                f"| {role.name} | `{role.principal}` | {resource} `{name}`{pattern}"
                f" | {operations} | {why} |"
            )
    return "\n".join(lines)


def to_bindings(roles: Iterable[Role]) -> list[AclBinding]:
    """confluent-kafka ``AclBinding`` objects (ALLOW from any host) for every grant."""
    kinds = {
        "topic": ResourceType.TOPIC,
        "group": ResourceType.GROUP,
        "transactional-id": ResourceType.TRANSACTIONAL_ID,
    }
    return [
        AclBinding(
            kinds[g.resource],
            g.name,
            ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
            role.principal,
            "*",
            AclOperation[g.operation],
            AclPermissionType.ALLOW,
        )
        for role in roles
        for g in role.grants
    ]


def apply_acls(admin: AdminClient, roles: Iterable[Role], timeout: float = 30.0) -> int:
    """Create every grant's ACL (idempotent: an existing one is kept) and wait until the broker
    enforces them (KRaft applies ACLs from the metadata log a moment after the controller
    accepted them). Returns how many."""
    bindings = to_bindings(roles)
    if not bindings:
        return 0
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result(timeout)
    # None matches any name, principal and host (the stubs say str; the docs say None).
    any_: Any = None
    everything = AclBindingFilter(
        ResourceType.ANY, any_, ResourcePatternType.ANY, any_, any_,
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip
    deadline = clock.monotonic() + timeout
    while not set(bindings) <= set(admin.describe_acls(everything).result(timeout)):
        if clock.monotonic() > deadline:
            raise TimeoutError(f"the broker did not show the new ACLs within {timeout:g} s")
        time.sleep(0.1)
    return len(bindings)
