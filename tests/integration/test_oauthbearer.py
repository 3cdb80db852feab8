"""ksaga over SASL/OAUTHBEARER: every role logs in with a token whose ``sub`` is its principal,
and the broker's ACLs (``ksaga acls apply``) hold each role to its own topics.

One broker for the module whose every listener speaks SASL_PLAINTEXT with OAUTHBEARER and Kafka's
unsecured development validator (orchestrator.testing.broker_oauth): librdkafka mints the
unsigned tokens itself (``enable.sasl.oauthbearer.unsecure.jwt``). That proves the wiring (the
settings reach every client, the broker sees each role as its token's subject), not the security
of signed tokens, which needs an identity provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from connectors.order_participants import Behaviour
from orchestrator.testing.broker_oauth import BrokerOAuth
from orchestrator.testing.kafka_cluster import KafkaBroker
from tests.integration.secured_sagas import (
    OPERATOR,
    ORCHESTRATOR,
    PARTICIPANTS,
    PUBLISHER,
    SecuredBroker,
    grant_roles_and_create_topics,
    participants_per_role,
    produce_error,
    run_order_sagas,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class OAuth(SecuredBroker[BrokerOAuth]):
    def login(self, principal: str | None = None) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self.security.client_config(principal)}


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuth]:
    security = BrokerOAuth()
    with KafkaBroker(tmp_path_factory.mktemp("kafka-oauth"), security=security) as broker:
        # The super user's and the operator's tokens and ACLs are enough for the setup.
        grant_roles_and_create_topics(
            broker.bootstrap_servers, security.client_env(), security.client_config(OPERATOR)
        )
        yield OAuth(broker, security)


def test_sagas_complete_with_every_role_as_its_token_subject(oauth: OAuth, tmp_path: Path) -> None:
    orchestrator_env = oauth.security.client_env(ORCHESTRATOR)
    assert orchestrator_env == {
        "KSAGA_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KSAGA_KAFKA__SASL_MECHANISM": "OAUTHBEARER",
        "KSAGA_KAFKA__ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT": "true",
        "KSAGA_KAFKA__SASL_OAUTHBEARER_CONFIG": f"principal={ORCHESTRATOR}",
    }
    participants = participants_per_role(oauth.security.client_env)
    behaviour = Behaviour(seed=11, decline_rate=0.25)
    order_ids = [f"oauth-{i:03d}" for i in range(16)]
    run = run_order_sagas(
        oauth.bootstrap,
        tmp_path,
        replica_env=orchestrator_env,
        participants=participants,
        harness=oauth.security.client_config(),
        publisher=oauth.security.client_config(PUBLISHER),
        order_ids=order_ids,
        behaviour=behaviour,
    )
    run.assert_every_saga_ended_as_expected(list(PARTICIPANTS.values()))


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
