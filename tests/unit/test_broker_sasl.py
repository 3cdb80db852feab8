"""The SASL broker settings both secured test brokers build: no broker needed to check them."""

from __future__ import annotations

from orchestrator.testing.broker_oauth import BrokerOAuth
from orchestrator.testing.broker_sasl import sasl_broker_properties
from orchestrator.testing.broker_security import MECHANISM, BrokerSecurity

BASE = {
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXT:SSL",
    "controller.listener.names": "CONTROLLER",
}


def test_only_plaintext_listeners_become_sasl_with_their_own_scoped_settings() -> None:
    props = sasl_broker_properties(
        BASE,
        lambda name: {"sasl.enabled.mechanisms": f"M-{name}"},
        inter_broker_mechanism="M1",
        controller_mechanism="M2",
        super_user="root",
    )
    assert props == {
        "listener.security.protocol.map": (
            "PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT,EXT:SSL"
        ),
        "sasl.mechanism.inter.broker.protocol": "M1",
        "sasl.mechanism.controller.protocol": "M2",
        "listener.name.plaintext.sasl.enabled.mechanisms": "M-PLAINTEXT",
        "listener.name.controller.sasl.enabled.mechanisms": "M-CONTROLLER",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": "User:root",
    }


def test_scram_gives_the_controller_plain_and_clients_scram() -> None:
    props = BrokerSecurity(admin="boss").broker_properties(BASE)
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert 'user_boss="admin-secret"' in props["listener.name.controller.plain.sasl.jaas.config"]
    assert props["listener.name.plaintext.sasl.enabled.mechanisms"] == MECHANISM
    assert (
        "ScramLoginModule" in props[f"listener.name.plaintext.{MECHANISM.lower()}.sasl.jaas.config"]
    )
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["super.users"] == "User:boss"


def test_oauthbearer_on_every_plain_listener() -> None:
    props = BrokerOAuth(admin="boss").broker_properties(BASE)
    for name in ("plaintext", "controller"):
        assert props[f"listener.name.{name}.sasl.enabled.mechanisms"] == "OAUTHBEARER"
        jaas = props[f"listener.name.{name}.oauthbearer.sasl.jaas.config"]
        assert 'unsecuredLoginStringClaim_sub="boss"' in jaas
    assert props["sasl.mechanism.inter.broker.protocol"] == "OAUTHBEARER"
    assert props["allow.everyone.if.no.acl.found"] == "false"
