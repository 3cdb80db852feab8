"""Settings of an orchestrator replica, from ``KSAGA_*`` environment variables (pydantic-settings).

Validated once at start: a bad value stops the process with a message that names the variable
and says what to put there, never a traceback from deep inside a Kafka client.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigError
from orchestrator.kafka_config import KafkaClientConfig

__all__ = ["Settings", "Topics", "load_settings"]

_BOOTSTRAP = re.compile(r"^[^,\s:]+:\d{1,5}(,[^,\s:]+:\d{1,5})*$")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class Settings(BaseSettings):
    """Every knob of a replica. Environment: ``KSAGA_<NAME>`` (e.g. ``KSAGA_BOOTSTRAP_SERVERS``)."""

    model_config = SettingsConfigDict(
        env_prefix="KSAGA_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    bootstrap_servers: str = Field(description="host:port[,host:port...] of the Kafka cluster")
    replica_id: str = Field(
        default_factory=lambda: os.environ.get("HOSTNAME", "replica-0"),
        description="stable identity (pod name): transactional.id and static membership use it",
    )
    group_id: str = "ksaga-orchestrator"
    topic_prefix: str = "ksaga."
    partitions: int | None = Field(
        default=None, ge=1, description="expected partition count of inbox and state (checked)"
    )
    state_dir: Path = Path(".ksaga/state")
    sagas_module: str = "sagas"
    batch_max_records: int = Field(default=500, ge=1, le=100_000)
    batch_max_ms: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="longest wait for a first record (a turn with none still fires due timers)",
    )
    batch_linger_ms: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="how long a batch keeps taking records after its first (up to"
        " batch_max_records): each batch is one transaction",
    )
    linger_ms: int = Field(default=2, ge=0, le=1_000)
    transaction_timeout_ms: int = Field(default=30_000, ge=1_000, le=900_000)
    liveness_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="/live answers 503, and the watchdog ends the process, once the loop has"
        " made no progress for this long",
    )
    max_rejoins: int = Field(
        default=3,
        ge=0,
        description="after a fatal Kafka error (a fenced producer, an expelled member) rejoin"
        " with new clients in-process at most this often per rejoin_window_s, then exit 3 for"
        " the supervisor; 0 always exits",
    )
    rejoin_window_s: float = Field(default=300.0, gt=0)
    group_protocol: Literal["classic", "consumer"] = Field(
        default="classic",
        description="classic: the cooperative-sticky assignor, which balances the count of"
        " partitions over all topics, so a replica may get only trigger partitions; consumer:"
        " KIP-848 (Kafka 4.0+), the broker's range assignor gives each replica the same"
        " partition numbers of the inbox and of every trigger topic",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="classic protocol only; with KSAGA_GROUP_PROTOCOL=consumer the broker's"
        " group.consumer.session.timeout.ms decides",
    )
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    static_membership: bool = False
    timer_scan_limit: int = Field(default=1_000, ge=1)
    max_inbox_backlog: int = Field(
        default=2_000,
        ge=0,
        description="hold the trigger topics (start no new saga) while the inbox partitions"
        " this replica folds hold more unfolded records than this; take them again at half;"
        " 0 never holds (orchestrator/admission.py)",
    )
    history: bool = True
    http_port: int = Field(
        default=0, ge=0, le=65_535, description="/ready, /live and /metrics; 0 turns them off"
    )
    block_cache_mb: int = Field(default=64, ge=1)
    write_buffer_mb: int = Field(default=16, ge=1)
    state_cache_entries: int = Field(
        default=20_000, ge=0, description="decoded saga states kept in memory (LRU)"
    )
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default="none", description="OpenTelemetry spans: none, console (stdout) or otlp"
    )
    kafka: KafkaClientConfig = Field(
        default_factory=KafkaClientConfig,
        description="librdkafka settings for every client (TLS, SASL, ...): KSAGA_KAFKA__<NAME>"
        " or JSON in KSAGA_KAFKA; secrets are never shown (orchestrator/kafka_config.py)",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        if not _BOOTSTRAP.match(value):
            raise ValueError("expected host:port[,host:port...], e.g. 127.0.0.1:9092")
        return value

    @field_validator("replica_id", "group_id", "topic_prefix")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use only letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _session_timeout_has_effect(self) -> Self:
        # A setting that would silently do nothing is refused, so nobody tunes it in vain.
        if self.group_protocol == "consumer" and "session_timeout_ms" in self.model_fields_set:
            raise ValueError(
                "KSAGA_SESSION_TIMEOUT_MS has no effect with KSAGA_GROUP_PROTOCOL=consumer"
                " (KIP-848): the broker's group.consumer.session.timeout.ms decides; unset it"
            )
        return self

    @field_validator("liveness_timeout_s")
    @classmethod
    def _liveness(cls, value: float, info: ValidationInfo) -> float:
        # A turn of the loop may legitimately block this long (see ``previous_owner_wait_s``);
        # a shorter liveness timeout would have the kubelet kill a replica that is only waiting.
        txn_ms = info.data.get("transaction_timeout_ms")
        if txn_ms is not None and value <= _previous_owner_wait_s(txn_ms):
            raise ValueError(
                f"must exceed KSAGA_TRANSACTION_TIMEOUT_MS/1000 + {_OWNER_WAIT_MARGIN_S} s"
                f" = {_previous_owner_wait_s(txn_ms):g} s (the longest wait of a restore for a"
                " previous owner's transaction); raise it or lower the transaction timeout"
            )
        return value

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def previous_owner_wait_s(self) -> float:
        """How long a restore waits for a previous owner's open transaction to be decided.

        The broker aborts a transaction after ``transaction.timeout.ms``; the margin covers its
        abort sweep and the coordinator round trips.
        """
        return _previous_owner_wait_s(self.transaction_timeout_ms)


_OWNER_WAIT_MARGIN_S = 30


def _previous_owner_wait_s(transaction_timeout_ms: int) -> float:
    return transaction_timeout_ms / 1000 + _OWNER_WAIT_MARGIN_S


class Topics:
    """ksaga's own topic names, derived from one prefix."""

    def __init__(self, prefix: str) -> None:
        self.inbox = f"{prefix}inbox"
        self.state = f"{prefix}state"
        self.history = f"{prefix}history"
        self.dlq = f"{prefix}dlq"
        # Written only by `ksaga dlq redrive` (one marker per redriven dead letter), so a
        # replica does not require it; `ksaga topics create` makes it.
        self.redriven = f"{prefix}redriven"

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.inbox, self.state, self.history, self.dlq)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (overridden by ``overrides``), or a ConfigError saying why."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"] or error["loc"][0] == "kafka":
                problems.append(message)  # names its KSAGA_ variables itself
                continue
            name = ".".join(str(p) for p in error["loc"]) or "?"
            problems.append(f"KSAGA_{name.upper()}: {message}")
        # ``from None``: the chained ValidationError would print the raw input, secrets included.
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None
