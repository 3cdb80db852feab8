"""The librdkafka passthrough: every client gets the security settings, nobody sees a secret,
and an incoherent setting stops the process at start with the variable to fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.config import ParticipantConfig
from orchestrator.cli import cli
from orchestrator.config import load_settings
from orchestrator.errors import ConfigError
from orchestrator.kafka import build_client, consumer_config, producer_config
from orchestrator.kafka_config import KafkaClientConfig, is_secret, load_kafka_client_config

SECRET = "hunter2-0b5e1d-never-print-me"

SCRAM = {
    "KSAGA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "KSAGA_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "KSAGA_KAFKA__SASL_USERNAME": "ksaga",
    "KSAGA_KAFKA__SASL_PASSWORD": SECRET,
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("KSAGA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KSAGA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    return monkeypatch


def set_all(env: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        env.setenv(name, value)


def test_the_settings_reach_every_client_of_the_orchestrator_and_the_participants(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_all(env, SCRAM)
    env.setenv("KSAGA_KAFKA", json.dumps({"ssl.endpoint.identification.algorithm": "https",
                                          "socket.keepalive.enable": True}))  # fmt: skip
    settings = load_settings()
    participant = ParticipantConfig(
        bootstrap_servers="127.0.0.1:9092",
        group_id="inventory",
        topics=["inventory.commands"],
        state_dir=tmp_path,
        kafka=load_kafka_client_config(),
    )
    configs = [
        consumer_config(settings),
        producer_config(settings),
        participant.consumer_config(),
        participant.producer_config(),
    ]
    for config in configs:
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.username"] == "ksaga"
        assert config["sasl.password"] == SECRET
        assert config["ssl.endpoint.identification.algorithm"] == "https"  # JSON and env merge
        assert config["socket.keepalive.enable"] == "true"
    # ksaga's own settings still win where its guarantees depend on them
    assert (
        producer_config(settings)["transactional.id"] == f"ksaga-orchestrator-{settings.replica_id}"
    )
    assert consumer_config(settings)["isolation.level"] == "read_committed"


def test_a_secret_never_shows_in_repr_str_or_dumps(env: pytest.MonkeyPatch) -> None:
    set_all(env, SCRAM)
    settings = load_settings()
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.kafka),
        repr(load_kafka_client_config()),
    ]
    for text in shown:
        assert SECRET not in text
        assert "sasl.password" in text or "sasl_password" in text or "secrets" in text


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
    ],
)
def test_secret_properties_are_held_as_secrets(key: str) -> None:
    assert is_secret(key)


@pytest.mark.parametrize(
    "key", ["sasl.username", "ssl.ca.location", "ssl.certificate.pem", "sasl.oauthbearer.client.id"]
)
def test_other_properties_are_shown(key: str) -> None:
    assert not is_secret(key)


OIDC = {
    "KSAGA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "KSAGA_KAFKA__SASL_MECHANISM": "OAUTHBEARER",
    "KSAGA_KAFKA__SASL_OAUTHBEARER_METHOD": "oidc",
    "KSAGA_KAFKA__SASL_OAUTHBEARER_CLIENT_ID": "ksaga",
    "KSAGA_KAFKA__SASL_OAUTHBEARER_CLIENT_SECRET": SECRET,
    "KSAGA_KAFKA__SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://127.0.0.1:1/token",
    "KSAGA_KAFKA__SASL_OAUTHBEARER_SCOPE": "kafka",
}


def test_oidc_settings_pass_through_and_librdkafka_accepts_them(env: pytest.MonkeyPatch) -> None:
    set_all(env, OIDC)
    settings = load_settings()
    assert settings.kafka.secrets["sasl.oauthbearer.client.secret"].get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    producer = build_client(Producer, producer_config(settings), settings.kafka)
    producer.flush(0)


BAD: list[tuple[dict[str, str], str]] = [
    (
        {"KSAGA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "KSAGA_KAFKA__SASL_PASSWORD": SECRET},
        "KSAGA_KAFKA__SASL_MECHANISM: security.protocol is SASL_SSL",
    ),
    (
        {**SCRAM, "KSAGA_KAFKA__SASL_USERNAME": ""},
        "KSAGA_KAFKA__SASL_USERNAME: required with sasl.mechanism=SCRAM-SHA-512",
    ),
    (
        {"KSAGA_KAFKA__SASL_USERNAME": "ksaga", "KSAGA_KAFKA__SASL_PASSWORD": SECRET},
        "set KSAGA_KAFKA__SECURITY_PROTOCOL=SASL_SSL",
    ),
    (
        {
            **SCRAM,
            "KSAGA_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KSAGA_KAFKA__SSL_CA_LOCATION": "/",
        },
        "KSAGA_KAFKA__SSL_CA_LOCATION given, but security.protocol is SASL_PLAINTEXT",
    ),
    ({**SCRAM, "KSAGA_KAFKA__SECURITY_PROTOCOL": "TLS"}, "expected one of PLAINTEXT, SSL"),
    ({**SCRAM, "KSAGA_KAFKA__TRANSACTIONAL_ID": "x"}, "KSAGA_KAFKA__TRANSACTIONAL_ID: not allowed"),
    ({**SCRAM, "KSAGA_KAFKA__ISOLATION_LEVEL": "read_uncommitted"}, "read_committed"),
    (
        {**OIDC, "KSAGA_KAFKA__SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": ""},
        "KSAGA_KAFKA__SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: required with",
    ),
    (
        {**SCRAM, "KSAGA_KAFKA__SASL_MECHANISM": "OAUTHBEARER"},
        "KSAGA_KAFKA__SASL_OAUTHBEARER_METHOD=oidc",
    ),
    (
        {
            "KSAGA_KAFKA__SECURITY_PROTOCOL": "SSL",
            "KSAGA_KAFKA__SSL_KEY_LOCATION": "/no/such/key.pem",
            "KSAGA_KAFKA__SSL_KEY_PASSWORD": SECRET,
        },
        "KSAGA_KAFKA__SSL_KEY_LOCATION: /no/such/key.pem does not exist",
    ),
]


@pytest.mark.parametrize(("values", "fix"), BAD)
def test_incoherent_settings_fail_at_start_with_the_fix_and_no_secret(
    env: pytest.MonkeyPatch, values: dict[str, str], fix: str
) -> None:
    set_all(env, {k: v for k, v in values.items() if v})
    for load in (load_settings, load_kafka_client_config):
        with pytest.raises(ConfigError) as raised:
            load()
        message = str(raised.value)
        assert fix in message
        assert SECRET not in message
        # nothing chained either: a traceback would print pydantic's input, secrets included
        assert raised.value.__cause__ is None
        assert raised.value.__suppress_context__


def test_librdkafka_refusals_name_the_variable_and_hide_the_secret() -> None:
    kafka = KafkaClientConfig.model_validate({"client.software.name": "x"})
    with pytest.raises(ConfigError, match="KSAGA_KAFKA__NO_SUCH_PROPERTY"):
        build_client(Producer, {"no.such.property": "1"}, kafka)
    secret = KafkaClientConfig.model_validate(
        {**{k.removeprefix("KSAGA_KAFKA__"): v for k, v in SCRAM.items()}}
    )

    def refuse(config: dict[str, object]) -> Producer:
        reason = f'Invalid value "{SECRET}" for configuration property "sasl.password"'
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, reason))

    with pytest.raises(ConfigError) as raised:
        build_client(refuse, secret.client_settings(), secret)
    assert SECRET not in str(raised.value)
    assert "KSAGA_KAFKA__SASL_PASSWORD" in str(raised.value)


def _commands(group: click.Group, path: list[str]) -> Iterator[list[str]]:
    for name, command in group.commands.items():
        yield [*path, name]
        if isinstance(command, click.Group):
            yield from _commands(command, [*path, name])


def test_no_help_text_shows_a_secret_from_the_environment(env: pytest.MonkeyPatch) -> None:
    set_all(env, SCRAM)
    env.setenv("KSAGA_KAFKA", json.dumps({"ssl.key.password": SECRET}))
    runner = CliRunner()
    helps = [["--help"], *([*path, "--help"] for path in _commands(cli, []))]
    assert ["acls", "apply", "--help"] in helps
    assert ["participants", "--help"] in helps
    for args in helps:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output
        assert SECRET not in result.output, args


def _run(argv: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSAGA_")}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *argv],
        env={**env, "KSAGA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_processes_stop_at_start_and_neither_logs_nor_prints_the_secret(
    tmp_path: Path,
) -> None:
    incoherent = {**SCRAM, "KSAGA_KAFKA__SASL_USERNAME": ""}
    for argv in (["run"], ["participants", "--bootstrap", "127.0.0.1:1",
                           "--state-dir", str(tmp_path)]):  # fmt: skip
        result = _run(argv, {k: v for k, v in incoherent.items() if v})
        assert result.returncode == 1, result.stderr
        assert "KSAGA_KAFKA__SASL_USERNAME: required" in result.stderr
        assert SECRET not in result.stdout + result.stderr
    # refused by librdkafka when the first client is built: logged as a structured line too
    result = _run(["run"], {**SCRAM, "KSAGA_KAFKA__NO_SUCH_PROPERTY": "1",
                            "KSAGA_STATE_DIR": str(tmp_path / "db")})  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert '"event": "configuration error"' in result.stderr
    assert "KSAGA_KAFKA__NO_SUCH_PROPERTY" in result.stderr
    assert SECRET not in result.stdout + result.stderr
