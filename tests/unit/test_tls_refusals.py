"""A client certificate that cannot work stops ksaga at start, naming the variables to fix and
never the key's password (no broker needed: librdkafka loads the key when a client is built)."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from orchestrator.errors import ConfigError
from orchestrator.kafka import _refuse_bad_credentials, build_client
from orchestrator.kafka_config import KafkaClientConfig
from orchestrator.testing.certificates import CertificateAuthority

PASSWORD = "key-pw-0c1d2e-never-print-me"


def tls_settings(tmp_path: Path, password: str) -> KafkaClientConfig:
    issued = CertificateAuthority(tmp_path).issue("ksaga", password=PASSWORD)
    return KafkaClientConfig.model_validate(
        {
            "SECURITY_PROTOCOL": "SSL",
            "SSL_CA_LOCATION": str(tmp_path / "ca.pem"),
            "SSL_CERTIFICATE_LOCATION": str(issued.certificate),
            "SSL_KEY_LOCATION": str(issued.key),
            "SSL_KEY_PASSWORD": password,
        }
    )


def build(kafka: KafkaClientConfig) -> Producer:
    config = {"bootstrap.servers": "127.0.0.1:1", **kafka.client_settings()}
    return build_client(Producer, config, kafka)


def test_the_right_key_password_builds_a_client(tmp_path: Path) -> None:
    kafka = tls_settings(tmp_path, PASSWORD)
    assert PASSWORD not in repr(kafka)
    build(kafka).flush(0)


def test_a_wrong_key_password_names_the_key_and_its_password_and_shows_neither(
    tmp_path: Path,
) -> None:
    wrong = "wrong-4f5e6d-never-print-me"
    with pytest.raises(ConfigError) as raised:
        build(tls_settings(tmp_path, wrong))
    message = str(raised.value)
    assert "ssl.key.location failed" in message
    assert "KSAGA_KAFKA__SSL_KEY_LOCATION" in message
    assert "KSAGA_KAFKA__SSL_KEY_PASSWORD" in message
    assert wrong not in message
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (KafkaError._TRANSPORT, "Receive failed: ssl/tls alert bad certificate: SSL alert 42"),
        (KafkaError._SSL, "SSL handshake failed: certificate verify failed"),
    ],
)
def test_a_refused_certificate_stops_the_start_with_the_variables(code: int, text: str) -> None:
    with pytest.raises(ConfigError, match="KSAGA_KAFKA__SSL_CERTIFICATE_LOCATION") as raised:
        _refuse_bad_credentials(KafkaError(code, text))
    assert "KSAGA_KAFKA__SSL_CA_LOCATION" in str(raised.value)


def test_an_unreachable_broker_is_not_a_certificate_problem() -> None:
    _refuse_bad_credentials(KafkaError(KafkaError._TRANSPORT, "Connect failed: Connection refused"))
    _refuse_bad_credentials(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
