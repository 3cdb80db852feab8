"""ksaga on a broker with SASL/SCRAM and ACLs: every role runs as its own principal with exactly
the ACLs ``ksaga acls`` lists, and what a role may not do the broker refuses.

One secured broker for the module (SCRAM users written at format time, the StandardAuthorizer,
no ACL means no access). The orchestrator replica and the three participants run as real
processes, each logged in as its own principal through ``KSAGA_KAFKA__*``; the checks read the
topics as the super user. The passwords are random per run, so finding one in a log is a leak.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from connectors.order_participants import Behaviour
from orchestrator.testing.broker_security import BrokerSecurity
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from tests.integration.secured_sagas import (
    OPERATOR,
    ORCHESTRATOR,
    PARTICIPANTS,
    PARTITIONS,
    PUBLISHER,
    SecuredBroker,
    grant_roles_and_create_topics,
    participants_per_role,
    produce_error,
    run_orchestrator,
    run_order_sagas,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MALLORY = "mallory"  # a valid SCRAM user with no ACL at all


class Secured(SecuredBroker[BrokerSecurity]):
    def login(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self.security.client_config(user, password)}

    def passwords(self) -> list[str]:
        return list(self.security.all_users.values())


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    users = [ORCHESTRATOR, *PARTICIPANTS.values(), PUBLISHER, OPERATOR, MALLORY]
    security = BrokerSecurity(
        users={name: f"pw-{name}-{os.urandom(8).hex()}" for name in users},
        admin_password=f"pw-admin-{os.urandom(8).hex()}",
    )
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-sasl"), security=security)
    with broker:
        # The super user's and the operator role's logins and ACLs are enough for the setup.
        grant_roles_and_create_topics(
            broker.bootstrap_servers, security.client_env(), security.client_config(OPERATOR)
        )
        yield Secured(broker, security)


def code(error: KafkaError | None) -> int | None:
    return None if error is None else error.code()


def consume_error(config: dict[str, Any], group: str, topic: str) -> KafkaError | None:
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:

        def error() -> KafkaError | None:
            msg = consumer.poll(0.5)
            return msg.error() if msg is not None else None

        return wait_for(error, 30, f"an error consuming {topic} as group {group}")
    finally:
        consumer.close()


def test_sagas_complete_with_every_role_as_its_own_principal(
    secured: Secured, tmp_path: Path
) -> None:
    security = secured.security
    run = run_order_sagas(
        secured.bootstrap,
        tmp_path,
        replica_env=security.client_env(ORCHESTRATOR),
        participants=participants_per_role(security.client_env),
        harness=security.client_config(),
        publisher=security.client_config(PUBLISHER),
        order_ids=[f"sec-{i:03d}" for i in range(24)],
        behaviour=Behaviour(seed=5, decline_rate=0.25),
    )
    run.assert_every_saga_ended_as_expected(list(PARTICIPANTS.values()))
    for name, text in run.logs.items():
        leaked = [pw for pw in secured.passwords() if pw in text]
        assert leaked == [], f"a password is in the log of {name}"


def test_a_participant_may_touch_only_its_own_topics_and_group(secured: Secured) -> None:
    inventory = secured.login("inventory")
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(produce_error(inventory, "ksaga.state")) == denied
    assert code(produce_error(inventory, "payments.commands")) == denied
    assert code(consume_error(inventory, "inventory", "payments.commands")) == denied
    # Nor may it join the orchestrator's group or take over its transactional.id (fencing it).
    error = consume_error(inventory, ORCHESTRATOR, "inventory.commands")
    assert code(error) == KafkaError.GROUP_AUTHORIZATION_FAILED
    producer = Producer({**inventory, "transactional.id": f"{ORCHESTRATOR}-r1"})
    with pytest.raises(KafkaException) as raised:
        producer.init_transactions(20)
    assert raised.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    # What it may do, it can: the refusals above are the ACLs, not a broken login.
    assert produce_error(inventory, "ksaga.dlq") is None


def test_the_broker_refuses_inbox_records_from_unauthorised_clients(secured: Secured) -> None:
    forged = b"order/forged"
    error = produce_error(secured.login(MALLORY), "ksaga.inbox", forged)
    assert code(error) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    auth_errors: list[KafkaError] = []
    wrong = {
        **secured.login("inventory", password="not-the-password"),
        "error_cb": auth_errors.append,
    }
    error = produce_error(wrong, "ksaga.inbox", forged, timeout_ms=3_000)
    assert error is not None  # never delivered
    assert any(e.code() == KafkaError._AUTHENTICATION for e in auth_errors), auth_errors

    plaintext_errors: list[KafkaError] = []
    anonymous = {"bootstrap.servers": secured.bootstrap, "error_cb": plaintext_errors.append}
    assert produce_error(anonymous, "ksaga.inbox", forged, timeout_ms=3_000) is not None

    inbox = Consumer(
        {
            **secured.login(),
            "group.id": "security-audit",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    inbox.subscribe(["ksaga.inbox"])
    keys: list[bytes | None] = []
    at_end: set[int] = set()
    try:

        def read_all() -> bool:
            for msg in inbox.consume(500, 0.5):
                err = msg.error()
                if err is None:
                    keys.append(msg.key())
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
            return len(at_end) == PARTITIONS

        wait_for(read_all, 30, "the end of every inbox partition")
    finally:
        inbox.close()
    assert forged not in keys


def test_bad_credentials_or_missing_acls_stop_the_orchestrator_with_the_fix(
    secured: Secured, tmp_path: Path
) -> None:
    def run(user: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "KSAGA_BOOTSTRAP_SERVERS": secured.bootstrap,
            "KSAGA_STATE_DIR": str(tmp_path / user),
            **secured.security.client_env(user),
        }
        if password is not None:
            env["KSAGA_KAFKA__SASL_PASSWORD"] = password
        return run_orchestrator(env)

    wrong_password = f"wrong-{os.urandom(6).hex()}"
    result = run(ORCHESTRATOR, wrong_password)
    assert result.returncode == 1, result.stderr
    assert "refused our credentials" in result.stderr
    assert "KSAGA_KAFKA__SASL_PASSWORD" in result.stderr
    assert wrong_password not in result.stderr + result.stdout

    result = run(MALLORY)
    assert result.returncode == 1, result.stderr
    assert "not authorised to describe topic(s)" in result.stderr
    assert "ksaga acls" in result.stderr
    for password in secured.passwords():
        assert password not in result.stderr + result.stdout
