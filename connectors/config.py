"""A participant's settings, validated at start, and the Kafka client settings they imply.

Its one job is configuration: what a bad value means is said here, once, when the participant is
built (pydantic), never per record. The client settings are fixed by the design (read_committed,
manual commits, cooperative-sticky; an idempotent ``acks=all`` producer with the Java-compatible
``murmur2_random`` partitioner); ``*_overrides`` exist for tuning and tests, not to change them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.kafka_config import KafkaClientConfig

__all__ = ["ParticipantConfig"]


class ParticipantConfig(BaseModel):
    """Where to read commands, where to keep outcomes, where to park bad records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(min_length=1)
    group_id: str = Field(min_length=1)
    topics: list[str] = Field(min_length=1)
    state_dir: Path  # the outcome store (RocksDB); one participant process per directory
    dlq_topic: str = Field(default="ksaga.dlq", min_length=1)
    batch_size: int = Field(default=100, gt=0)  # records per consume -> flush -> commit cycle
    poll_timeout_s: float = Field(default=0.5, gt=0)
    batch_linger_s: float = Field(default=0.0, ge=0)  # a batch's window after its first record
    flush_timeout_s: float = Field(default=30.0, gt=0)
    sync_writes: bool = True  # False trades the crash guarantee for throughput (benchmarks)
    # TLS, SASL, ...: the same passthrough as the orchestrator's (KSAGA_KAFKA__*), secrets hidden
    kafka: KafkaClientConfig = Field(default_factory=KafkaClientConfig)
    consumer_overrides: dict[str, Any] = Field(default_factory=dict)
    producer_overrides: dict[str, Any] = Field(default_factory=dict)

    def consumer_config(self) -> dict[str, Any]:
        return {
            **self.kafka.client_settings(),
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            **self.consumer_overrides,
        }

    def producer_config(self) -> dict[str, Any]:
        return {
            **self.kafka.client_settings(),
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            **self.producer_overrides,
        }
