"""The participant's pieces that need no broker: outcome store, record shapes, configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Message, TopicPartition
from pydantic import BaseModel, ValidationError

from connectors.errors import HandlerError, NonRetryableError, RetryableError
from connectors.outcomes import FinalOutcome, OutcomeKind, OutcomeStore
from connectors.participant import CommandInfo, Participant, ParticipantConfig
from connectors.records import BatchOffsets, dead_letter_headers, reply_headers, reply_value
from orchestrator.errors import ConfigError
from schemas import deadletter
from schemas import headers as h
from schemas.codec import RecordType, default_catalog


class Ping(BaseModel):
    n: int


def config(tmp_path: Path) -> ParticipantConfig:
    return ParticipantConfig(
        bootstrap_servers="localhost:1", group_id="g", topics=["c"], state_dir=tmp_path / "s"
    )


INFO = CommandInfo(
    saga_id="order/o-1",
    saga_type="order",
    step="charge_payment",
    action="UNDO",
    attempt=3,
    idempotency_key="order/o-1/charge_payment/UNDO",
    command_type="RefundPayment",
    reply_topic="ksaga.inbox",
    reply_partition=4,
    sent_ms=1,
    topic="payments.commands",
    partition=0,
    offset=9,
)


def test_final_outcomes_survive_reopening_the_store(tmp_path: Path) -> None:
    won = FinalOutcome(OutcomeKind.SUCCEEDED, payload=b'{"payment_id":"p-\xc3\xa9"}', stored_ms=5)
    lost = FinalOutcome(OutcomeKind.FAILED, error_type="CardDeclined", message="no", stored_ms=6)
    store = OutcomeStore(tmp_path / "db")
    store.put("k1", won)
    store.put("k2", lost)
    store.close()
    reopened = OutcomeStore(tmp_path / "db")
    try:
        assert reopened.get("k1") == won
        assert reopened.get("k2") == lost
        assert reopened.get("k3") is None
    finally:
        reopened.close()
    assert FinalOutcome.from_bytes(won.to_bytes()) == won


def test_a_second_store_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    store = OutcomeStore(tmp_path / "db")
    try:
        with pytest.raises(Exception, match=r"(?i)lock"):
            OutcomeStore(tmp_path / "db")
    finally:
        store.close()


def test_handler_errors_carry_their_type_and_retryability() -> None:
    assert RetryableError("GatewayTimeout").retryable
    assert not NonRetryableError("CardDeclined", "no funds").retryable
    assert NonRetryableError("CardDeclined", "no funds").message == "no funds"
    assert isinstance(NonRetryableError("X"), HandlerError)
    with pytest.raises(ValueError, match="error_type is required"):
        RetryableError("")


def test_reply_uses_the_current_attempt_and_copies_only_trace_headers() -> None:
    value = reply_value(INFO, "SUCCEEDED", b"{}", None, None, now_ms=7)
    decoded = default_catalog().decode_as(
        RecordType.REPLY, default_catalog().encode("Reply", value)
    )
    assert decoded.value["attempt"] == 3
    assert decoded.value["action"] == "UNDO"
    command_headers = [
        (h.TRACEPARENT, b"old"),
        (h.TRACEPARENT, b"tp"),
        (h.TRACESTATE, b"ts"),
        (h.REPLY_TOPIC, b"ksaga.inbox"),
        ("x-app", b"1"),
    ]
    assert reply_headers(INFO, command_headers) == [
        (h.RECORD_TYPE, b"Reply"),
        (h.SAGA_ID, b"order/o-1"),
        (h.IDEMPOTENCY_KEY, b"order/o-1/charge_payment/UNDO"),
        (h.ATTEMPT, b"3"),
        (h.TRACEPARENT, b"tp"),
        (h.TRACESTATE, b"ts"),
    ]


def test_dead_letter_headers_keep_the_original_ones_and_say_where_from() -> None:
    msg = Message(topic="c", partition=2, offset=41, key=b"k", value=b"v", headers=[("a", b"1")])
    out = dead_letter_headers(msg, "invalid-payload", "ValidationError", "bad", 99)
    assert out[0] == ("a", b"1")
    info = deadletter.from_headers(out)
    assert (info.reason, info.error_class, info.message) == (
        "invalid-payload",
        "ValidationError",
        "bad",
    )
    assert (info.source_topic, info.source_partition, info.source_offset) == ("c", 2, 41)
    assert info.first_seen_ms == 99


def test_batch_offsets_commit_past_the_last_and_rewind_to_the_first() -> None:
    offsets = BatchOffsets()
    for partition, offset in [(0, 5), (1, 7), (0, 6), (1, 8), (0, 9)]:
        offsets.add(Message(topic="c", partition=partition, offset=offset))

    def as_tuples(tps: list[TopicPartition]) -> list[tuple[str, int, int]]:
        return [(tp.topic, tp.partition, tp.offset) for tp in tps]

    assert as_tuples(offsets.to_commit()) == [("c", 0, 10), ("c", 1, 9)]
    assert as_tuples(offsets.to_rewind()) == [("c", 0, 5), ("c", 1, 7)]
    assert isinstance(offsets.to_commit()[0], TopicPartition)


def test_client_settings_follow_the_design(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    consumer = cfg.consumer_config()
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["enable.auto.commit"] is False
    assert consumer["auto.offset.reset"] == "earliest"
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    producer = cfg.producer_config()
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    assert producer["partitioner"] == "murmur2_random"
    assert "transactional.id" not in producer
    with pytest.raises(ValidationError):
        ParticipantConfig(bootstrap_servers="b", group_id="g", topics=[], state_dir=tmp_path)


def test_registration_mistakes_fail_at_start(tmp_path: Path) -> None:
    p = Participant(config(tmp_path))
    with pytest.raises(ConfigError, match="no handler registered"):
        p.open()

    @p.handles(Ping)
    def ping(cmd: CommandInfo, payload: Ping) -> None:
        return None

    with pytest.raises(ConfigError, match="already has a handler"):
        p.register(Ping, ping)
    assert p.command_types == ("Ping",)
