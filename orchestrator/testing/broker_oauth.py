"""SASL/OAUTHBEARER with unsecured JWTs, and ACLs, for the project's own test brokers.

Its one job: the broker and client settings that make a
:class:`~orchestrator.testing.kafka_cluster.KRaftCluster` authenticate every client with
OAUTHBEARER and authorise it by the token's ``sub`` claim with the KRaft ``StandardAuthorizer``
(deny unless an ACL allows). Kafka's development validator
(``OAuthBearerUnsecuredValidatorCallbackHandler``) accepts unsigned (``alg: none``) tokens and
takes the principal from ``sub``; librdkafka mints such tokens itself with
``enable.sasl.oauthbearer.unsecure.jwt=true`` and ``sasl.oauthbearer.config=principal=<name>``.
So this proves that ksaga's OAUTHBEARER settings reach every client and that the broker sees each
role as its own principal, with no identity provider in the test environment.

Every listener, the controller's included, speaks ``SASL_PLAINTEXT`` with OAUTHBEARER (unlike
SCRAM, an unsecured token needs no credentials in the metadata log, so the controller can check
the broker's token before any metadata is loaded); the broker logs in with ``sub`` = the super
user. What it never does: pretend to be secure. Anyone may claim any ``sub``: this is the wiring
of OAUTHBEARER, not its security, which needs signed tokens (``sasl.oauthbearer.method=oidc``
against a real identity provider, validated by the broker against its JWKS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.kafka_config import env_name
from orchestrator.testing.broker_sasl import sasl_broker_properties

__all__ = ["BrokerOAuth"]

_LOGIN = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_UNSECURED = "org.apache.kafka.common.security.oauthbearer.internals.unsecured"
_VALIDATOR = f"{_UNSECURED}.OAuthBearerUnsecuredValidatorCallbackHandler"
_MINTER = f"{_UNSECURED}.OAuthBearerUnsecuredLoginCallbackHandler"


@dataclass(frozen=True)
class BrokerOAuth:
    """The super user the broker and the harness log in as; everyone else is named per client."""

    admin: str = "admin"

    def __post_init__(self) -> None:
        if not self.admin or any(c in self.admin for c in '",;= '):
            raise ValueError(f"the principal may not contain '\",;= ': {self.admin!r}")

    def format_args(self) -> list[str]:
        return []

    def broker_properties(self, base: Mapping[str, str]) -> dict[str, str]:
        """Every ``PLAINTEXT`` listener becomes ``SASL_PLAINTEXT`` with OAUTHBEARER only."""
        jaas = f'{_LOGIN} required unsecuredLoginStringClaim_sub="{self.admin}";'
        return sasl_broker_properties(
            base,
            lambda _name: {
                "sasl.enabled.mechanisms": "OAUTHBEARER",
                "oauthbearer.sasl.jaas.config": jaas,
                "oauthbearer.sasl.server.callback.handler.class": _VALIDATOR,
                "oauthbearer.sasl.login.callback.handler.class": _MINTER,
            },
            inter_broker_mechanism="OAUTHBEARER",
            controller_mechanism="OAUTHBEARER",
            super_user=self.admin,
        )

    def client_config(self, principal: str | None = None) -> dict[str, Any]:
        """librdkafka settings whose tokens carry ``sub`` = ``principal`` (the super user's)."""
        sub = self.admin if principal is None else principal
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": "true",
            "sasl.oauthbearer.config": f"principal={sub}",
        }

    def client_env(self, principal: str | None = None) -> dict[str, str]:
        """The same for a ksaga process, as ``KSAGA_KAFKA__*`` environment variables."""
        return {env_name(key): str(value) for key, value in self.client_config(principal).items()}
