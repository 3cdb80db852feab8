"""ksaga on a broker with SASL/SCRAM and ACLs: every role runs as its own principal with exactly
the ACLs ``ksaga acls`` lists, and what a role may not do the broker refuses.

One secured broker for the module (SCRAM users written at format time, the StandardAuthorizer,
no ACL means no access). The orchestrator replica and the three participants run as real
processes, each logged in as its own principal through ``KSAGA_KAFKA__*``; the checks read the
topics as the super user. The passwords are random per run, so finding one in a log is a leak.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from connectors.order_participants import ORDER_COMMAND_TOPICS, Behaviour, expected_outcome
from orchestrator.acls import participant_name
from orchestrator.cli import cli
from orchestrator.testing.broker_security import BrokerSecurity
from orchestrator.testing.checker import CheckInput, check
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from orchestrator.testing.system import (
    ChildProcess,
    Observer,
    ParticipantsProcess,
    ReplicaProcess,
    create_all_topics,
    publish_orders,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4
ORCHESTRATOR = "ksaga-orchestrator"
PARTICIPANTS = {topic: participant_name(topic) for topic in ORDER_COMMAND_TOPICS}
PUBLISHER = "orders-publisher"
OPERATOR = "ksaga-operator"
MALLORY = "mallory"  # a valid SCRAM user with no ACL at all


@dataclass
class Secured:
    broker: KafkaBroker
    security: BrokerSecurity

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

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
        # `ksaga acls apply` as the super user, logged in through KSAGA_KAFKA__* like any client
        result = CliRunner().invoke(
            cli,
            ["acls", "apply", "--bootstrap", broker.bootstrap_servers],
            env=security.client_env(),
        )
        assert result.exit_code == 0, result.output
        assert "ACL(s) in place for 6 role(s)" in result.output
        # The operator role's ACLs are enough for `ksaga topics create`.
        operator = security.client_config(OPERATOR)
        create_all_topics(broker.bootstrap_servers, PARTITIONS, client=operator)
        yield Secured(broker, security)


def as_settings(env: dict[str, str]) -> dict[str, str]:
    """``KSAGA_X`` variables as ReplicaProcess keyword settings (it adds ``KSAGA_`` back)."""
    return {key.removeprefix("KSAGA_").lower(): value for key, value in env.items()}


def produce_error(
    config: dict[str, Any], topic: str, key: bytes = b"k", timeout_ms: int = 10_000
) -> KafkaError | None:
    """Produce one record and return its delivery error (None if the broker took it)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": timeout_ms})
    producer.produce(topic, key=key, value=b"forged", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(20)
    assert errors, "no delivery report"
    return errors[0]


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
    security, bootstrap = secured.security, secured.bootstrap
    behaviour = Behaviour(seed=5, decline_rate=0.25)
    replica = ReplicaProcess(
        bootstrap, "r1", tmp_path, **as_settings(security.client_env(ORCHESTRATOR))
    )
    processes: list[ChildProcess] = [replica]
    for topic, name in PARTICIPANTS.items():
        options = [
            *("--topic", topic, "--group-id", name, "--seed", str(behaviour.seed)),
            *("--decline-rate", str(behaviour.decline_rate), "--poll-timeout-ms", "50"),
        ]
        env = security.client_env(name)
        processes.append(ParticipantsProcess(bootstrap, tmp_path, *options, name=name, env=env))
    for process in processes:
        process.start()
    observer = Observer(bootstrap, client=security.client_config())
    order_ids = [f"sec-{i:03d}" for i in range(24)]
    try:
        publish_orders(bootstrap, order_ids, client=security.client_config(PUBLISHER))
        want = {f"order/{o}": expected_outcome(o, behaviour) for o in order_ids}

        def finished() -> bool:
            observer.poll()
            for process in processes:
                assert process.running(), f"{process.name} exited\n{process.tail()}"
            return set(want) <= set(observer.terminal())

        wait_for(finished, 120, "every saga to finish", interval=0.1)
        observer.poll(0.5)
        assert {k: v for k, v in observer.terminal().items() if k in want} == want
        assert sorted(set(want.values())) == ["COMPENSATED", "COMPLETED"]
        assert observer.duplicate_commands() == []
        out = io.StringIO()
        report = check(
            CheckInput(
                bootstrap,
                order_ids,
                declined={o for o in order_ids if behaviour.declines(o)},
                client=security.client_config(),
            ),
            out=out,
        )
        assert report.passed, out.getvalue()
    finally:
        observer.close()
        for process in processes:
            process.terminate(30)
    logs = {p.name: p.log_path.read_text(errors="replace") for p in processes}
    assert "orchestrator started" in logs["r1"]
    assert all("participant started" in logs[name] for name in PARTICIPANTS.values())
    for name, text in logs.items():
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
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

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
