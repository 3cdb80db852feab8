"""What the SCRAM and OAUTHBEARER test brokers share: SASL on every plain listener, and ACLs.

Its one job: rewrite a node's ``PLAINTEXT`` listeners to ``SASL_PLAINTEXT`` (each with the
settings its mechanism gives it) and switch on the KRaft ``StandardAuthorizer`` with one super
user, deny unless an ACL allows. The listener *names* stay as they are, so the rest of the harness
is unchanged. What it never does: choose a mechanism or credentials (the callers do), or touch a
listener that is not ``PLAINTEXT``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["sasl_broker_properties"]

_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def sasl_broker_properties(
    base: Mapping[str, str],
    listener: Callable[[str], Mapping[str, str]],
    *,
    inter_broker_mechanism: str,
    controller_mechanism: str,
    super_user: str,
) -> dict[str, str]:
    """The settings to lay over ``base`` (a node's properties; its listener map is rewritten).

    ``listener(name)`` gives a rewritten listener's own settings, keys relative to
    ``listener.name.<name>.`` (as Kafka scopes them).
    """
    protocol_map: list[str] = []
    overrides: dict[str, str] = {}
    for entry in base["listener.security.protocol.map"].split(","):
        name, protocol = entry.split(":")
        if protocol != "PLAINTEXT":
            protocol_map.append(entry)
            continue
        prefix = f"listener.name.{name.lower()}"
        overrides |= {f"{prefix}.{key}": value for key, value in listener(name).items()}
        protocol_map.append(f"{name}:SASL_PLAINTEXT")
    return {
        "listener.security.protocol.map": ",".join(protocol_map),
        "sasl.mechanism.inter.broker.protocol": inter_broker_mechanism,
        "sasl.mechanism.controller.protocol": controller_mechanism,
        **overrides,
        "authorizer.class.name": _AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{super_user}",
    }
