"""The librdkafka settings every ksaga client gets: TLS, SASL (PLAIN, SCRAM, OAUTHBEARER/OIDC),
GSSAPI, timeouts... passed through unchanged, with the secrets among them kept secret.

Its one job is that passthrough, for the orchestrator, the participants and the CLI alike. Any
librdkafka property can be given two ways, merged (the variable wins over the JSON):

* ``KSAGA_KAFKA__<PROPERTY>``, the property upper-cased with ``.`` written ``_``:
  ``KSAGA_KAFKA__SASL_MECHANISM=SCRAM-SHA-512`` is ``sasl.mechanism``. This is unambiguous because
  no string-settable librdkafka property contains ``_``.
* ``KSAGA_KAFKA='{"security.protocol": "SASL_SSL", ...}'`` (JSON).

Values whose property names a password, a secret, a passphrase, a private key or the unsecured
OAUTHBEARER config are held as pydantic ``SecretStr``: ``repr``, ``str``, JSON dumps and every
error message show ``**********``; only :meth:`KafkaClientConfig.client_settings`, called where a
client is built, reveals them. What it never does: log a value, let a setting override what ksaga's
guarantees rest on (``transactional.id``, ``isolation.level``, ``enable.idempotence``...: those
are refused with the reason), or accept an incoherent combination that would only fail later
inside a client (SASL settings without a SASL protocol, SCRAM without a username...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigError

__all__ = [
    "KafkaClientConfig",
    "env_name",
    "is_secret",
    "load_kafka_client_config",
]

_SECRET_MARKERS = (
    "password",
    "secret",
    "passphrase",
    "key.pem",
    "private.key",
    "oauthbearer.config",
)
_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
_USER_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MECHANISMS = (*_USER_PASSWORD_MECHANISMS, "OAUTHBEARER", "GSSAPI")
_PATHS = (
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.crl.location",
    "sasl.kerberos.keytab",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "https.ca.location",
)
# What every ksaga client sets itself, and why a passthrough value may not replace it.
_RESERVED = {
    "bootstrap.servers": "set KSAGA_BOOTSTRAP_SERVERS (or --bootstrap) instead",
    "group.id": "set KSAGA_GROUP_ID (orchestrator) or --group-id (participants) instead",
    "group.instance.id": "set KSAGA_STATIC_MEMBERSHIP=true instead (it uses the replica id)",
    "transactional.id": "ksaga derives it from KSAGA_GROUP_ID and KSAGA_REPLICA_ID (fencing)",
    "transaction.timeout.ms": "set KSAGA_TRANSACTION_TIMEOUT_MS instead",
    "isolation.level": "ksaga reads read_committed; exactly-once depends on it",
    "enable.idempotence": "ksaga's producers are idempotent; exactly-once depends on it",
    "acks": "ksaga produces with acks=all; no loss depends on it",
    "enable.auto.commit": "ksaga commits offsets itself (in the transaction)",
    "enable.auto.offset.store": "ksaga commits offsets itself (in the transaction)",
    "partitioner": "ksaga uses murmur2_random, Java's placement of keys",
    "partition.assignment.strategy": "ksaga's group uses cooperative-sticky",
}


def is_secret(key: str) -> bool:
    """True for properties whose value must never be shown (passwords, secrets, private keys)."""
    return any(marker in key for marker in _SECRET_MARKERS)


def env_name(key: str) -> str:
    """The environment variable that sets librdkafka property ``key``."""
    return "KSAGA_KAFKA__" + key.upper().replace(".", "_")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


class KafkaClientConfig(BaseModel):
    """librdkafka properties for every client, split into plain ``properties`` and ``secrets``.

    Validate a flat mapping of property -> value with ``KafkaClientConfig.model_validate``; the
    split, the normalisation of names (``SASL_PASSWORD`` -> ``sasl.password``) and the checks
    happen there, and a problem raises with the variable to fix.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    properties: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or set(data) <= {"properties", "secrets"}:
            return data
        properties: dict[str, str] = {}
        secrets: dict[str, SecretStr] = {}
        for raw_key, value in data.items():
            key = str(raw_key).strip().lower().replace("_", ".")
            if is_secret(key):
                secrets[key] = SecretStr(_text(value))
            else:
                properties[key] = _text(value)
        return {"properties": properties, "secrets": secrets}

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        problems = _problems(self.properties, self.secrets)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def client_settings(self) -> dict[str, str]:
        """The properties with the secrets revealed: only for handing to a client constructor."""
        return {
            **self.properties,
            **{key: value.get_secret_value() for key, value in self.secrets.items()},
        }

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``**********`` (for error messages)."""
        for value in self.secrets.values():
            secret = value.get_secret_value()
            if secret:
                text = text.replace(secret, "**********")
        return text

    @property
    def security_protocol(self) -> str:
        return self.properties.get("security.protocol", "plaintext").lower()


def _problems(properties: Mapping[str, str], secrets: Mapping[str, SecretStr]) -> list[str]:
    """Every incoherence of the settings, each naming the variable to change and how."""
    keys = {*properties, *secrets}
    problems = [f"{env_name(k)}: not allowed, {why}" for k, why in _RESERVED.items() if k in keys]
    protocol = properties.get("security.protocol", "plaintext").lower()
    if protocol not in _PROTOCOLS:
        problems.append(
            f"{env_name('security.protocol')}: expected one of "
            f"{', '.join(p.upper() for p in _PROTOCOLS)}"
        )
        return problems
    mechanism = (
        properties.get("sasl.mechanism") or properties.get("sasl.mechanisms") or ""
    ).upper()
    sasl_keys = sorted(k for k in keys if k.startswith("sasl."))
    ssl_keys = sorted(k for k in keys if k.startswith("ssl."))
    if protocol.startswith("sasl_"):
        if mechanism not in _MECHANISMS:
            problems.append(
                f"{env_name('sasl.mechanism')}: security.protocol is {protocol.upper()}, so set "
                f"the SASL mechanism to one of {', '.join(_MECHANISMS)}"
            )
        elif mechanism in _USER_PASSWORD_MECHANISMS:
            problems += [
                f"{env_name(k)}: required with sasl.mechanism={mechanism}"
                for k in ("sasl.username", "sasl.password")
                if not (properties.get(k) or (k in secrets and secrets[k].get_secret_value()))
            ]
        elif mechanism == "OAUTHBEARER":
            problems += _oauthbearer_problems(properties, keys)
    elif sasl_keys:
        problems.append(
            f"{', '.join(env_name(k) for k in sasl_keys)} given, but security.protocol is "
            f"{protocol.upper()}: set {env_name('security.protocol')}=SASL_SSL (or "
            "SASL_PLAINTEXT on a trusted network), or remove them"
        )
    if ssl_keys and protocol not in ("ssl", "sasl_ssl"):
        problems.append(
            f"{', '.join(env_name(k) for k in ssl_keys)} given, but security.protocol is "
            f"{protocol.upper()}: set {env_name('security.protocol')}=SSL or SASL_SSL"
        )
    for key in _PATHS:
        path = properties.get(key) or (secrets[key].get_secret_value() if key in secrets else "")
        if path and path != "probe" and not Path(path).exists():
            shown = "the file it names" if key in secrets else path
            problems.append(f"{env_name(key)}: {shown} does not exist")
    return problems


def _oauthbearer_problems(properties: Mapping[str, str], keys: set[str]) -> list[str]:
    method = properties.get("sasl.oauthbearer.method", "default").lower()
    if method == "oidc":
        needed = ["sasl.oauthbearer.token.endpoint.url"]
        if "sasl.oauthbearer.metadata.authentication.type" in keys:
            needed = []  # a cloud metadata endpoint (e.g. azure_imds) provides the token
        elif properties.get("sasl.oauthbearer.grant.type", "client_credentials") == (
            "client_credentials"
        ):
            needed += ["sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret"]
        return [f"{env_name(k)}: required with sasl.oauthbearer.method=oidc" for k in needed
                if k not in keys]  # fmt: skip
    if properties.get("enable.sasl.oauthbearer.unsecure.jwt", "false").lower() in ("true", "1"):
        return []
    return [
        f"{env_name('sasl.oauthbearer.method')}: sasl.mechanism=OAUTHBEARER needs "
        f"{env_name('sasl.oauthbearer.method')}=oidc with "
        f"{env_name('sasl.oauthbearer.token.endpoint.url')}, "
        f"{env_name('sasl.oauthbearer.client.id')} and "
        f"{env_name('sasl.oauthbearer.client.secret')} (or, for development only, "
        f"{env_name('enable.sasl.oauthbearer.unsecure.jwt')}=true)"
    ]


class _ClientSettings(BaseSettings):
    """Only the passthrough, for processes without an orchestrator ``Settings`` (participants)."""

    model_config = SettingsConfigDict(env_prefix="KSAGA_", env_nested_delimiter="__")

    kafka: KafkaClientConfig = Field(default_factory=KafkaClientConfig)


def load_kafka_client_config() -> KafkaClientConfig:
    """``KSAGA_KAFKA`` and ``KSAGA_KAFKA__*`` from the environment, or a ConfigError saying why."""
    try:
        return _ClientSettings().kafka
    except ValidationError as exc:
        # ``from None``: the chained ValidationError would print the raw input, secrets included.
        raise ConfigError(
            "invalid Kafka client settings:\n  " + "\n  ".join(_messages(exc))
        ) from None


def _messages(exc: ValidationError) -> list[str]:
    """pydantic's errors without their inputs (which may hold a secret)."""
    out = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"] and error["loc"][0] != "kafka":
            message = f"KSAGA_{'_'.join(str(p) for p in error['loc']).upper()}: {message}"
        out.append(message)
    return out
