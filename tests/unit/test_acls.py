"""The ACL plan is least privilege per role (the broker test checks that it is also enough)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AclOperation, ResourcePatternType  # type: ignore[attr-defined]

from orchestrator.acls import Grant, Role, plan_acls, render_acls, to_bindings
from orchestrator.cli import cli
from orchestrator.config import Topics
from orchestrator.registry import load_registry

TOPICS = Topics("ksaga.")


def order_plan(**overrides: dict[str, str]) -> dict[str, Role]:
    registry = load_registry("sagas")
    roles = plan_acls(
        TOPICS, "ksaga-orchestrator", registry.trigger_topics, registry.command_topics, **overrides
    )
    return {role.name: role for role in roles}


def ops(role: Role, resource: str, name: str) -> set[str]:
    return {g.operation for g in role.grants if g.resource == resource and g.name == name}


def test_only_the_orchestrator_writes_state_history_and_commands() -> None:
    roles = order_plan()
    commands = ("inventory.commands", "payments.commands", "shipping.commands")
    for name, role in roles.items():
        for topic in (TOPICS.state, TOPICS.history, *commands):
            writes = "WRITE" in ops(role, "topic", topic)
            assert writes == (name == "orchestrator"), (name, topic)


def test_a_participant_reads_only_its_own_commands_and_writes_only_replies_and_dead_letters() -> (
    None
):
    roles = order_plan()
    inventory = roles["participant inventory"]
    assert inventory.principal == "User:inventory"
    assert {(g.resource, g.name, g.operation) for g in inventory.grants} == {
        ("topic", "inventory.commands", "READ"),
        ("group", "inventory", "READ"),
        ("topic", "ksaga.inbox", "WRITE"),
        ("topic", "ksaga.dlq", "WRITE"),
    }
    assert not any(g.prefixed for g in inventory.grants)


def test_the_orchestrator_owns_its_group_and_transactional_id_prefix() -> None:
    orchestrator = order_plan()["orchestrator"]
    assert ops(orchestrator, "topic", "ksaga.inbox") == {"READ", "WRITE"}
    assert ops(orchestrator, "topic", "orders") == {"READ"}
    txn = [g for g in orchestrator.grants if g.resource == "transactional-id"]
    assert txn == [
        Grant(
            "transactional-id",
            "ksaga-orchestrator-",
            "WRITE",
            txn[0].why,
            prefixed=True,
        )
    ]
    assert not any(g.resource == "cluster" for g in orchestrator.grants)


def test_principals_and_groups_can_be_chosen_and_typos_are_refused() -> None:
    roles = order_plan(
        principals={"orchestrator": "User:saga", "participant:payments": "User:pay"},
        groups={"payments": "payments-svc"},
    )
    assert roles["orchestrator"].principal == "User:saga"
    assert roles["participant payments"].principal == "User:pay"
    assert ops(roles["participant payments"], "group", "payments-svc") == {"READ"}
    with pytest.raises(ValueError, match="no role participant:payment; the roles are"):
        order_plan(principals={"participant:payment": "User:pay"})


def test_bindings_and_the_table_cover_every_grant() -> None:
    roles = list(order_plan().values())
    bindings = to_bindings(roles)
    assert len(bindings) == sum(len(r.grants) for r in roles)
    txn = [b for b in bindings if b.name == "ksaga-orchestrator-"]
    assert [(b.resource_pattern_type, b.operation) for b in txn] == [
        (ResourcePatternType.PREFIXED, AclOperation.WRITE)
    ]
    table = render_acls(roles)
    for role in roles:
        assert f"`{role.principal}`" in table


def test_ksaga_acls_print_uses_the_prefix_and_group() -> None:
    result = CliRunner().invoke(
        cli, ["acls", "print", "--topic-prefix", "prod.", "--group-id", "sagas"]
    )
    assert result.exit_code == 0, result.output
    assert "topic `prod.inbox`" in result.output
    assert "transactional-id `sagas-` (prefix)" in result.output
    result = CliRunner().invoke(cli, ["acls", "print", "--principal", "nonsense"])
    assert result.exit_code == 2
