"""ksaga over mutual TLS: a broker whose every listener speaks SSL and requires a client
certificate, and the orchestrator and participants configured only through the five
``KSAGA_KAFKA__SSL_*``/``SECURITY_PROTOCOL`` variables.

One broker for the module, with a CA, a broker certificate and client certificates made for the
run (orchestrator.testing.certificates). Every client key is encrypted with a random password, so
finding one in a log, an error or a help text is a leak.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, Producer

from connectors.order_participants import Behaviour
from orchestrator.cli import cli
from orchestrator.testing.broker_tls import BrokerTls
from orchestrator.testing.kafka_cluster import KafkaBroker
from orchestrator.testing.system import create_all_topics
from tests.integration.secured_sagas import (
    ORCHESTRATOR,
    PARTITIONS,
    Participants,
    SecuredBroker,
    run_orchestrator,
    run_order_sagas,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTICIPANTS = "participants"
PROBE = "tls-probe"  # what the refusal tests write to (never a topic the sagas read)
ONLY_THESE = {
    "KSAGA_KAFKA__SECURITY_PROTOCOL",
    "KSAGA_KAFKA__SSL_CA_LOCATION",
    "KSAGA_KAFKA__SSL_CERTIFICATE_LOCATION",
    "KSAGA_KAFKA__SSL_KEY_LOCATION",
    "KSAGA_KAFKA__SSL_KEY_PASSWORD",
}
_quiet = logging.getLogger("ksaga.tests.tls")  # librdkafka's retries go here, not to stderr


Tls = SecuredBroker[BrokerTls]


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    names = ["admin", ORCHESTRATOR, PARTICIPANTS]
    tls = BrokerTls.create(
        tmp_path_factory.mktemp("pki"),
        {name: f"key-{name}-{os.urandom(8).hex()}" for name in names},
    )
    with KafkaBroker(tmp_path_factory.mktemp("kafka-tls"), security=tls) as broker:
        create_all_topics(broker.bootstrap_servers, PARTITIONS, client=tls.client_config())
        broker.create_topic(PROBE)
        yield Tls(broker, tls)


def delivery_error(config: dict[str, Any]) -> tuple[KafkaError | None, list[KafkaError]]:
    """Produce one record; its delivery error and the client's own errors meanwhile."""
    errors: list[KafkaError] = []
    delivered: list[KafkaError | None] = []
    producer = Producer(
        {**config, "message.timeout.ms": 2_000, "error_cb": errors.append, "logger": _quiet}
    )
    producer.produce(PROBE, value=b"x", on_delivery=lambda e, _m: delivered.append(e))
    producer.flush(20)
    assert delivered, "no delivery report"
    return delivered[0], errors


def test_sagas_complete_over_mutual_tls(mtls: Tls, tmp_path: Path) -> None:
    orchestrator_env = mtls.security.client_env(ORCHESTRATOR)
    participants_env = mtls.security.client_env(PARTICIPANTS)
    assert set(orchestrator_env) == set(participants_env) == ONLY_THESE
    assert orchestrator_env["KSAGA_KAFKA__SECURITY_PROTOCOL"] == "SSL"
    behaviour = Behaviour(seed=7, decline_rate=0.25)
    order_ids = [f"tls-{i:03d}" for i in range(16)]
    run = run_order_sagas(
        mtls.bootstrap,
        tmp_path,
        replica_env=orchestrator_env,
        participants=[Participants(PARTICIPANTS, [], participants_env)],
        harness=mtls.security.client_config(),
        publisher=mtls.security.client_config(),
        order_ids=order_ids,
        behaviour=behaviour,
    )
    run.assert_every_saga_ended_as_expected([PARTICIPANTS])
    for name, text in run.logs.items():
        assert [pw for pw in mtls.security.passwords() if pw in text] == [], (
            f"a key password in {name}"
        )


def test_a_client_without_a_certificate_is_refused(mtls: Tls) -> None:
    # The control: the same producer with its certificate gets the record in.
    login = {"bootstrap.servers": mtls.bootstrap, **mtls.security.client_config(ORCHESTRATOR)}
    assert delivery_error(login) == (None, [])

    no_certificate = {
        "bootstrap.servers": mtls.bootstrap,
        **mtls.security.client_config(certificate=False),
    }
    error, errors = delivery_error(no_certificate)
    assert error is not None
    assert error.code() == KafkaError._MSG_TIMED_OUT
    # The broker ends the TLS handshake: "alert bad certificate" (TLS 1.3 reports it after the
    # client thinks the handshake is done, so librdkafka sees a transport failure).
    assert any("certificate" in e.str() for e in errors), errors

    plaintext = {"bootstrap.servers": mtls.bootstrap}
    error, errors = delivery_error(plaintext)
    assert error is not None
    assert error.code() == KafkaError._MSG_TIMED_OUT
    assert errors


def test_an_orchestrator_without_a_certificate_stops_at_once_with_the_fix(
    mtls: Tls, tmp_path: Path
) -> None:
    # (A wrong key password never reaches the broker: tests/unit/test_tls_refusals.py.)
    certificate = ("SSL_CERTIFICATE_LOCATION", "SSL_KEY_LOCATION", "SSL_KEY_PASSWORD")
    tls_env = mtls.security.client_env(ORCHESTRATOR)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KSAGA_")},
        "KSAGA_BOOTSTRAP_SERVERS": mtls.bootstrap,
        "KSAGA_STATE_DIR": str(tmp_path / "db"),
        **{k: v for k, v in tls_env.items() if k.removeprefix("KSAGA_KAFKA__") not in certificate},
    }
    assert set(env) & ONLY_THESE == {
        "KSAGA_KAFKA__SECURITY_PROTOCOL",
        "KSAGA_KAFKA__SSL_CA_LOCATION",
    }
    result = run_orchestrator(env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the TLS handshake with Kafka failed over a certificate" in result.stderr
    assert "KSAGA_KAFKA__SSL_CERTIFICATE_LOCATION" in result.stderr


def test_no_help_text_shows_the_key_password(mtls: Tls) -> None:
    env = mtls.security.client_env(ORCHESTRATOR)
    runner = CliRunner()
    for args in (["--help"], ["run", "--help"], ["participants", "--help"], ["topics", "--help"]):
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        assert env["KSAGA_KAFKA__SSL_KEY_PASSWORD"] not in result.output, args
