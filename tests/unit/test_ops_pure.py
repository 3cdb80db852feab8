"""The pure parts of the operator tools and the one inbox fold they share with the loop."""

from __future__ import annotations

import json

import click
import pytest

from orchestrator.core import Action, SagaStatus
from orchestrator.inbox import Folded, Refold, fold_record
from orchestrator.ops.dlq import decode_payload
from orchestrator.ops.params import (
    POSITION,
    parse_duration_ms,
    parse_instant_ms,
    parse_position,
)
from orchestrator.ops.render import duration, iso, text_or_hex
from orchestrator.ops.replay import outcome_text
from orchestrator.partitioning import partition_for
from orchestrator.registry import load_registry
from schemas.codec import RecordType, default_catalog

P = 4
REGISTRY = load_registry("sagas")
ORDER = json.dumps(
    {"order_id": "o1", "customer_id": "c1", "items": [{"sku": "k", "quantity": 1}],
     "amount_cents": 5, "address": "a"}
).encode()  # fmt: skip


def start(saga_id: str = "order/o1", saga_type: str = "order", data: bytes = ORDER) -> bytes:
    return default_catalog().encode(
        RecordType.START_SAGA,
        {"saga_id": saga_id, "saga_type": saga_type, "data": data, "trigger_topic": "orders",
         "trigger_partition": 0, "trigger_offset": 0, "triggered_ms": 0},
    )  # fmt: skip


def reply(saga_id: str, step: str, attempt: int = 1) -> bytes:
    return default_catalog().encode(
        RecordType.REPLY,
        {"saga_id": saga_id, "step": step, "action": "DO", "attempt": attempt,
         "outcome": "SUCCEEDED", "payload": b'{"reservation_id": "r"}', "replied_ms": 1},
    )  # fmt: skip


HOME = partition_for("order/o1", P)


def test_positions_durations_and_instants_parse_strictly() -> None:
    assert parse_position("2:17") == (2, 17)
    assert parse_duration_ms("10m") == 600_000
    assert parse_duration_ms("90s") == 90_000
    assert parse_duration_ms("1d") == 86_400_000
    assert parse_instant_ms("1700000000000") == 1_700_000_000_000
    assert parse_instant_ms("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_instant_ms("2023-11-14T22:13:20") == 1_700_000_000_000  # naive is UTC
    for bad, parse in (("2-17", parse_position), ("10 minutes", parse_duration_ms),
                       ("yesterday", parse_instant_ms), ("-1:3", parse_position)):  # fmt: skip
        with pytest.raises(ValueError, match=r"e\.g\."):
            parse(bad)
    with pytest.raises(click.BadParameter, match="partition:offset"):
        POSITION.convert("x", None, None)


def test_rendering_helpers() -> None:
    assert iso(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert iso(None) is None
    assert [duration(ms) for ms in (850, 12_000, 245_000, 10_920_000, 187_200_000, -3_000)] == [
        "850ms", "12s", "4m05s", "3h02m", "2d04h", "-3s",
    ]  # fmt: skip
    assert text_or_hex(b"order/1") == "order/1"
    assert text_or_hex(b"\x00\x01") == "hex:0001"
    assert text_or_hex(b"\xff") == "hex:ff"


def test_a_dead_letter_payload_is_decoded_when_it_can_be() -> None:
    envelope = decode_payload(start())
    assert envelope["format"] == "avro StartSaga"
    assert envelope["value"]["data"]["order_id"] == "o1"  # payload bytes shown as JSON
    assert decode_payload(b'{"order_id": 42}') == {"format": "json", "value": {"order_id": 42}}
    junk = decode_payload(b"\x00\x01junk")
    assert junk["format"] == "undecodable"
    assert junk["hex"] == "00016a756e6b"
    assert "bad-marker" in junk["error"]


def test_fold_record_names_every_outcome_the_loop_acts_on() -> None:
    def fold(value: bytes, partition: int = HOME) -> Folded:
        return fold_record(REGISTRY, P, partition, value, state_of=lambda _: None, now=1_000)

    def reason(folded: Folded) -> str | None:
        assert folded.changed is None
        return folded.dead_letter.reason if folded.dead_letter else None

    assert reason(fold(b"garbage")) == "bad-marker"
    assert reason(fold(start(), (HOME + 1) % P)) == "wrong-partition"
    assert reason(fold(start(saga_type="gift"))) == "unknown-saga-type"
    assert reason(fold(reply("order/o1", "reserve_stock"))) == "unknown-saga"
    assert reason(fold(start(data=b"{}"))) == "definition-raised"  # start() raised


def test_refold_keeps_states_and_ignores_what_the_loop_ignores() -> None:
    refold = Refold(REGISTRY, P)
    started = refold.feed(HOME, start(), 1_000)
    assert started.changed is not None
    assert started.changed.status is SagaStatus.RUNNING
    assert outcome_text(started).startswith("v1 RUNNING [send ReserveStock reserve_stock/DO#1")
    again = refold.feed(HOME, start(), 2_000)
    assert again.changed is None
    assert again.ignored == "duplicate-start"
    assert outcome_text(again) == "nothing (duplicate-start)"
    reserved = refold.feed(HOME, reply("order/o1", "reserve_stock"), 3_000)
    assert reserved.changed is not None
    assert reserved.changed.version == 2
    assert reserved.changed.action is Action.DO
    stale = refold.feed(HOME, reply("order/o1", "reserve_stock"), 4_000)
    assert stale.ignored == "stale-reply"
    state = refold.states["order/o1"]
    assert state is not None
    assert state.version == 2
    # Seeded with that state, a fresh fold continues exactly where this one is.
    seeded = Refold(REGISTRY, P, {"order/o1": state})
    assert seeded.feed(HOME, reply("order/o1", "reserve_stock"), 4_000).ignored == "stale-reply"
