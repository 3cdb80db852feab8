"""Dead-letter and record headers: exact round trips, strict reading, nothing guessed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import DecodeError
from schemas import deadletter, headers
from schemas.deadletter import DeadLetterInfo, from_headers, to_headers

INFO = DeadLetterInfo(
    reason="malformed-body",
    error_class="DecodeError",
    source_topic="ksaga.inbox",
    source_partition=7,
    source_offset=123_456,
    first_seen_ms=1_700_000_000_000,
    message="Reply body (writer 902b32ca1d6192ce): IndexError: list index out of range",
)


def _drop(items: list[tuple[str, bytes]], name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in items if k != name]


def _reason(items: list[tuple[str, bytes | None]] | None) -> str:
    with pytest.raises(DecodeError) as caught:
        from_headers(items)
    return caught.value.reason


def test_round_trip() -> None:
    items = to_headers(INFO)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in items)
    assert dict(items)[deadletter.SOURCE_OFFSET] == b"123456"
    assert from_headers(items) == INFO


def test_optional_headers_default() -> None:
    bare = DeadLetterInfo("unknown-schema", "DecodeError", "orders", 0, 0, 0)
    items = to_headers(bare)
    assert deadletter.MESSAGE not in dict(items)
    required = _drop(items, deadletter.REDRIVE_COUNT)
    assert from_headers(required) == bare


@settings(max_examples=500, deadline=None)
@given(
    st.builds(
        DeadLetterInfo,
        reason=st.text(min_size=1, max_size=40),
        error_class=st.text(max_size=40),
        source_topic=st.text(min_size=1, max_size=40),
        source_partition=st.integers(0, 2**31 - 1),
        source_offset=st.integers(0, 2**63 - 1),
        first_seen_ms=st.integers(0, 2**63 - 1),
        message=st.text(max_size=200),
        redrive_count=st.integers(0, 1000),
    )
)
def test_every_info_round_trips(info: DeadLetterInfo) -> None:
    assert from_headers(to_headers(info)) == info


@pytest.mark.parametrize(
    "name",
    [
        deadletter.REASON,
        deadletter.ERROR_CLASS,
        deadletter.SOURCE_TOPIC,
        deadletter.SOURCE_PARTITION,
        deadletter.SOURCE_OFFSET,
        deadletter.FIRST_SEEN_MS,
    ],
)
def test_a_missing_required_header_is_rejected(name: str) -> None:
    assert _reason(list(_drop(to_headers(INFO), name))) == "dlq-missing-header"


def test_no_headers_at_all() -> None:
    assert _reason(None) == "dlq-missing-header"
    assert _reason([]) == "dlq-missing-header"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (deadletter.SOURCE_PARTITION, b"-1"),
        (deadletter.SOURCE_PARTITION, b" 7"),
        (deadletter.SOURCE_OFFSET, b"1_000"),
        (deadletter.SOURCE_OFFSET, b"+5"),
        (deadletter.FIRST_SEEN_MS, b""),
        (deadletter.FIRST_SEEN_MS, b"9" * 19),
        (deadletter.REDRIVE_COUNT, b"x"),
        (deadletter.REASON, b""),
        (deadletter.REASON, b"\xff"),
        (deadletter.SOURCE_TOPIC, None),
    ],
)
def test_an_invalid_header_is_rejected(name: str, value: bytes | None) -> None:
    items: list[tuple[str, bytes | None]] = [*_drop(to_headers(INFO), name), (name, value)]
    assert _reason(items) == "dlq-invalid-header"


def test_other_headers_are_ignored_and_the_last_repeat_wins() -> None:
    original: list[tuple[str, bytes | None]] = [
        (headers.SAGA_ID, b"order-saga/o-1"),
        (headers.TRACEPARENT, b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]
    older = to_headers(DeadLetterInfo("truncated", "DecodeError", "old", 1, 2, 3))
    items = [*original, *older, *to_headers(INFO)]
    assert from_headers(items) == INFO
    assert deadletter.without_dead_letter_headers(items) == original


def test_a_long_message_is_cut_to_a_bounded_header() -> None:
    info = DeadLetterInfo("handler-error", "RuntimeError", "t", 0, 0, 0, message="é" * 5000)
    value = dict(to_headers(info))[deadletter.MESSAGE]
    assert len(value) <= deadletter.MAX_MESSAGE_BYTES
    message = from_headers(to_headers(info)).message
    assert message.endswith("…")
    assert message.startswith("é" * 100)


@pytest.mark.parametrize(
    "changes",
    [
        {"reason": ""},
        {"source_topic": ""},
        {"source_partition": -1},
        {"source_offset": 2**63},
        {"first_seen_ms": True},
        {"redrive_count": 1.0},
    ],
)
def test_building_an_invalid_info_is_a_value_error(changes: dict[str, object]) -> None:
    fields = {
        "reason": "r",
        "error_class": "E",
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 0,
        "first_seen_ms": 0,
    }
    with pytest.raises(ValueError, match=next(iter(changes))):
        DeadLetterInfo(**{**fields, **changes})  # type: ignore[arg-type]


def test_header_names_are_distinct_and_namespaced() -> None:
    assert len(set(deadletter.DLQ_HEADERS)) == len(deadletter.DLQ_HEADERS)
    assert all(name.startswith(deadletter.PREFIX) for name in deadletter.DLQ_HEADERS)
    assert len(set(headers.RECORD_HEADERS)) == len(headers.RECORD_HEADERS)
    assert not set(headers.RECORD_HEADERS) & set(deadletter.DLQ_HEADERS)
    assert headers.TRACEPARENT == "traceparent"  # the W3C name, unprefixed


def test_last_header() -> None:
    items: list[tuple[str, bytes | None]] = [
        (headers.ATTEMPT, b"1"),
        (headers.SAGA_ID, b"s"),
        (headers.ATTEMPT, b"2"),
    ]
    assert headers.last_header(items, headers.ATTEMPT) == b"2"
    assert headers.last_header(items, headers.TRACEPARENT) is None
    assert headers.last_header(None, headers.ATTEMPT) is None
