"""SASL/SCRAM and ACLs for the project's own test brokers: authenticated clients, KRaft ACLs.

Its one job: the few broker settings, format arguments and client settings that turn a
:class:`~orchestrator.testing.kafka_cluster.KRaftCluster` into one that authenticates every
client with SCRAM-SHA-512 and authorises every request with the KRaft ``StandardAuthorizer``
(deny unless an ACL allows). The SCRAM users exist from the first instant: they are written into
the bootstrap metadata when the storage is formatted (``kafka-storage format --add-scram``), so
the super user can log in, create topics and ACLs, and nothing ever runs unauthenticated.

Every client listener (the one named ``PLAINTEXT`` and any proxied ``PX_*`` listener) speaks
``SASL_PLAINTEXT`` with SCRAM; the controller listener speaks ``SASL_PLAINTEXT`` with PLAIN and
knows only the super user (the brokers' own identity). The listener *names* stay as they are, so
the rest of the harness is unchanged. Loopback test brokers only: no TLS, and the passwords are in
``server.properties`` and on the format command line.
What it never does: weaken anything when ``security`` is not given (the plain brokers of the
other tests are untouched).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.kafka_config import env_name
from orchestrator.testing.broker_sasl import sasl_broker_properties

__all__ = ["MECHANISM", "BrokerSecurity"]

MECHANISM = "SCRAM-SHA-512"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class BrokerSecurity:
    """SCRAM users (name -> password) and the super user the harness and the brokers log in as.

    ``admin`` is added to ``users`` automatically; names and passwords must not contain ``"``,
    ``,``, ``]`` or ``;`` (they are spliced into JAAS and StorageTool syntax).
    """

    users: Mapping[str, str] = field(default_factory=dict)
    admin: str = "admin"
    admin_password: str = "admin-secret"

    def __post_init__(self) -> None:
        for text in (self.admin, self.admin_password, *self.users, *self.users.values()):
            if not text or any(c in text for c in '",];= '):
                raise ValueError(
                    f"SCRAM user names and passwords may not contain '\",];= ': {text!r}"
                )

    @property
    def all_users(self) -> dict[str, str]:
        return {**self.users, self.admin: self.admin_password}

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments that create every SCRAM user at format time."""
        args: list[str] = []
        for name, password in self.all_users.items():
            args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return args

    def broker_properties(self, base: Mapping[str, str]) -> dict[str, str]:
        """The settings to lay over a node's ``base`` properties (its listener map is rewritten).

        Client listeners get SCRAM-SHA-512 (users from the metadata log); the controller listener
        gets PLAIN with the super user alone, because the controller must authenticate brokers
        before it has loaded the SCRAM credentials (KIP-900 leaves SCRAM off controller links).
        """
        controllers = set(base.get("controller.listener.names", "CONTROLLER").split(","))
        login = f'username="{self.admin}" password="{self.admin_password}"'
        scram = f"{_SCRAM_LOGIN} required {login};"
        plain = f'{_PLAIN_LOGIN} required {login} user_{self.admin}="{self.admin_password}";'

        def listener(name: str) -> dict[str, str]:
            if name in controllers:
                return {"sasl.enabled.mechanisms": "PLAIN", "plain.sasl.jaas.config": plain}
            return {
                "sasl.enabled.mechanisms": MECHANISM,
                f"{MECHANISM.lower()}.sasl.jaas.config": scram,
            }

        return sasl_broker_properties(
            base,
            listener,
            inter_broker_mechanism=MECHANISM,
            controller_mechanism="PLAIN",
            super_user=self.admin,
        )

    def client_config(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        """librdkafka settings to log in as ``user`` (the super user by default).

        ``password`` overrides the user's real one (to test a wrong password).
        """
        name = self.admin if user is None else user
        secret = self.all_users.get(name, "") if password is None else password
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": MECHANISM,
            "sasl.username": name,
            "sasl.password": secret,
        }

    def client_env(self, user: str | None = None) -> dict[str, str]:
        """The same for a ksaga process, as ``KSAGA_KAFKA_*`` environment variables."""
        return {env_name(key): str(value) for key, value in self.client_config(user).items()}
