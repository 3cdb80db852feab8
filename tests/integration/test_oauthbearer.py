"""ksaga over SASL/OAUTHBEARER: every role logs in with a token whose ``sub`` is its principal,
and the broker's ACLs (``ksaga acls apply``) hold each role to its own topics.

One broker for the module whose every listener speaks SASL_PLAINTEXT with OAUTHBEARER and Kafka's
unsecured development validator (orchestrator.testing.broker_oauth): librdkafka mints the
unsigned tokens itself (``enable.sasl.oauthbearer.unsecure.jwt``). That proves the wiring (the
settings reach every client, the broker sees each role as its token's subject), not the security
of signed tokens, which needs an identity provider.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, Producer

from connectors.order_participants import ORDER_COMMAND_TOPICS, Behaviour
from orchestrator.acls import participant_name
from orchestrator.cli import cli
from orchestrator.testing.broker_oauth import BrokerOAuth
from orchestrator.testing.kafka_cluster import KafkaBroker
from orchestrator.testing.system import create_all_topics
from tests.integration.secured_sagas import Participants, run_order_sagas

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4
ORCHESTRATOR = "ksaga-orchestrator"
PARTICIPANTS = {topic: participant_name(topic) for topic in ORDER_COMMAND_TOPICS}
PUBLISHER = "orders-publisher"
OPERATOR = "ksaga-operator"
_quiet = logging.getLogger("ksaga.tests.oauthbearer")


@dataclass
class OAuth:
    broker: KafkaBroker
    oauth: BrokerOAuth

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def login(self, principal: str | None = None) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self.oauth.client_config(principal)}


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuth]:
    security = BrokerOAuth()
    with KafkaBroker(tmp_path_factory.mktemp("kafka-oauth"), security=security) as broker:
        # `ksaga acls apply` as the super user, whose token it gets through KSAGA_KAFKA__*
        result = CliRunner().invoke(
            cli,
            ["acls", "apply", "--bootstrap", broker.bootstrap_servers],
            env=security.client_env(),
        )
        assert result.exit_code == 0, result.output
        assert "ACL(s) in place for 6 role(s)" in result.output
        # The operator's token and ACLs are enough for `ksaga topics create`.
        create_all_topics(
            broker.bootstrap_servers, PARTITIONS, client=security.client_config(OPERATOR)
        )
        yield OAuth(broker, security)


def produce_error(config: dict[str, Any], topic: str) -> KafkaError | None:
    """Produce one record and return its delivery error (None if the broker took it)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 10_000, "logger": _quiet})
    producer.produce(topic, key=b"k", value=b"forged", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(20)
    assert errors, "no delivery report"
    return errors[0]


def test_sagas_complete_with_every_role_as_its_token_subject(oauth: OAuth, tmp_path: Path) -> None:
    orchestrator_env = oauth.oauth.client_env(ORCHESTRATOR)
    assert orchestrator_env == {
        "KSAGA_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KSAGA_KAFKA__SASL_MECHANISM": "OAUTHBEARER",
        "KSAGA_KAFKA__ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT": "true",
        "KSAGA_KAFKA__SASL_OAUTHBEARER_CONFIG": f"principal={ORCHESTRATOR}",
    }
    participants = [
        Participants(name, ["--topic", topic, "--group-id", name], oauth.oauth.client_env(name))
        for topic, name in PARTICIPANTS.items()
    ]
    behaviour = Behaviour(seed=11, decline_rate=0.25)
    order_ids = [f"oauth-{i:03d}" for i in range(16)]
    run = run_order_sagas(
        oauth.bootstrap,
        tmp_path,
        replica_env=orchestrator_env,
        participants=participants,
        harness=oauth.oauth.client_config(),
        publisher=oauth.oauth.client_config(PUBLISHER),
        order_ids=order_ids,
        behaviour=behaviour,
    )
    assert run.outcomes == run.want
    assert sorted(set(run.want.values())) == ["COMPENSATED", "COMPLETED"]
    assert run.duplicate_commands == []
    assert run.check_passed, run.check_report
    assert "orchestrator started" in run.logs["r1"]
    assert all("participant started" in run.logs[name] for name in PARTICIPANTS.values())


def test_a_token_for_one_role_cannot_write_as_another(oauth: OAuth) -> None:
    inventory = oauth.login("inventory")
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    error = produce_error(inventory, "payments.commands")
    assert error is not None
    assert error.code() == denied
    error = produce_error(inventory, "ksaga.state")
    assert error is not None
    assert error.code() == denied
    # A subject no ACL names may not reach the inbox at all.
    error = produce_error(oauth.login("mallory"), "ksaga.inbox")
    assert error is not None
    assert error.code() == denied
    # What inventory may do, it can: the refusals above are the ACLs on its token's subject.
    assert produce_error(inventory, "ksaga.dlq") is None
