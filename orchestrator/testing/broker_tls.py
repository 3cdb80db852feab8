"""Mutual TLS for the project's own test brokers: every listener speaks SSL and wants a client
certificate signed by a CA made for the run.

Its one job: the certificates, broker settings and client settings that turn a
:class:`~orchestrator.testing.kafka_cluster.KRaftCluster` into one that only talks to clients
presenting a certificate of its throwaway CA (``ssl.client.auth=required``). Every listener, the
controller's included, is rewritten from ``PLAINTEXT`` to ``SSL``; the broker authenticates to
itself and to its controller with its own certificate. The broker reads PEM files directly
(``ssl.keystore.type=PEM``, KIP-651), so no JKS/PKCS#12 conversion and no ``keytool`` run is
needed. A client certificate's CN becomes its principal (``ssl.principal.mapping.rules``), as a
deployment with ACLs would want.

What it never does: anything when ``security`` is not given; and it is not a production recipe
(the broker's key is unencrypted in a temporary directory, no authorizer is configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.kafka_config import env_name
from orchestrator.testing.certificates import CertificateAuthority, Issued

__all__ = ["BrokerTls"]

BROKER = "kafka-broker"
# CN=<name>,O=ksaga tests -> <name>: principals read as the role names, not as whole DNs.
PRINCIPAL_RULES = "RULE:^CN=([^,]+),.*$/$1/,DEFAULT"


@dataclass(frozen=True)
class BrokerTls:
    """A CA, the broker's certificate and one certificate per client name (the first is the
    harness's own); build it with :meth:`create`."""

    ca: Path
    broker: Issued
    clients: Mapping[str, Issued]
    admin: str

    @classmethod
    def create(
        cls, directory: Path, passwords: Mapping[str, str], *, admin: str = "admin"
    ) -> BrokerTls:
        """Issue certificates for ``admin`` and every name in ``passwords`` (name -> key password).

        ``admin`` must be among them: its certificate is the harness's own login.
        """
        if admin not in passwords:
            raise ValueError(f"passwords must include the harness's own client {admin!r}")
        authority = CertificateAuthority(directory)
        clients = {name: authority.issue(name, password=pw) for name, pw in passwords.items()}
        broker = authority.issue(BROKER, server=True)
        return cls(authority.certificate, broker, clients, admin)

    def format_args(self) -> list[str]:
        return []

    def broker_properties(self, base: Mapping[str, str]) -> dict[str, str]:
        """Every ``PLAINTEXT`` listener becomes ``SSL`` with client authentication required."""
        protocol_map = [
            f"{entry.split(':')[0]}:SSL" if entry.endswith(":PLAINTEXT") else entry
            for entry in base["listener.security.protocol.map"].split(",")
        ]
        return {
            "listener.security.protocol.map": ",".join(protocol_map),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.broker.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca),
            "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": PRINCIPAL_RULES,
        }

    def client_config(self, name: str | None = None, *, certificate: bool = True) -> dict[str, Any]:
        """librdkafka settings for client ``name`` (the harness's own by default).

        ``certificate=False``: trust the broker but present no certificate (to be refused).
        """
        config: dict[str, Any] = {"security.protocol": "SSL", "ssl.ca.location": str(self.ca)}
        if not certificate:
            return config
        issued = self.clients[self.admin if name is None else name]
        config |= {
            "ssl.certificate.location": str(issued.certificate),
            "ssl.key.location": str(issued.key),
        }
        if issued.password is not None:
            config["ssl.key.password"] = issued.password
        return config

    def client_env(self, name: str | None = None) -> dict[str, str]:
        """The same for a ksaga process, as ``KSAGA_KAFKA__*`` environment variables."""
        return {env_name(key): str(value) for key, value in self.client_config(name).items()}

    def passwords(self) -> list[str]:
        return [c.password for c in self.clients.values() if c.password is not None]
