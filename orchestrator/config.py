"""Settings of an orchestrator replica, from ``KSAGA_*`` environment variables (pydantic-settings).

Validated once at start: a bad value stops the process with a message that names the variable
and says what to put there, never a traceback from deep inside a Kafka client.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigError

__all__ = ["Settings", "Topics", "load_settings"]

_BOOTSTRAP = re.compile(r"^[^,\s:]+:\d{1,5}(,[^,\s:]+:\d{1,5})*$")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class Settings(BaseSettings):
    """Every knob of a replica. Environment: ``KSAGA_<NAME>`` (e.g. ``KSAGA_BOOTSTRAP_SERVERS``)."""

    model_config = SettingsConfigDict(env_prefix="KSAGA_", extra="forbid", frozen=True)

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
    batch_max_ms: int = Field(default=20, ge=1, le=10_000)
    linger_ms: int = Field(default=2, ge=0, le=1_000)
    transaction_timeout_ms: int = Field(default=30_000, ge=1_000, le=900_000)
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    static_membership: bool = False
    timer_scan_limit: int = Field(default=1_000, ge=1)
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
    kafka: dict[str, Any] = Field(
        default_factory=dict,
        description="extra librdkafka settings as JSON (TLS, SASL, ...), passed to every client",
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

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


class Topics:
    """ksaga's own topic names, derived from one prefix."""

    def __init__(self, prefix: str) -> None:
        self.inbox = f"{prefix}inbox"
        self.state = f"{prefix}state"
        self.history = f"{prefix}history"
        self.dlq = f"{prefix}dlq"

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.inbox, self.state, self.history, self.dlq)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (overridden by ``overrides``), or a ConfigError saying why."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]) or "?"
            problems.append(f"KSAGA_{name.upper()}: {error['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from exc
