"""Bad bytes: every way an envelope can be unreadable is a DecodeError with its reason.

Nothing else may escape ``decode``: no fastavro, struct, EOF or Unicode error, whatever the
bytes (the hypothesis tests feed arbitrary bytes, arbitrary bodies behind valid headers, and
valid records with random edits).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import DecodeError
from schemas.codec import HEADER_SIZE, DecodeReason, RecordType
from tests.unit.test_codec import CATALOG, EXAMPLE_IDS, EXAMPLES, REPLY, reason_of


def test_empty_and_null() -> None:
    assert reason_of(b"") == DecodeReason.EMPTY
    assert reason_of(None) == DecodeReason.EMPTY


@pytest.mark.parametrize("data", [b"hello world", b"\x00" * 20, b'{"saga_id":"x"}', b"\x01"])
def test_garbage_has_a_bad_marker(data: bytes) -> None:
    assert reason_of(data) == DecodeReason.BAD_MARKER


@pytest.mark.parametrize(("record_type", "value"), EXAMPLES, ids=EXAMPLE_IDS)
def test_every_prefix_is_truncated(record_type: str, value: dict[str, Any]) -> None:
    data = CATALOG.encode(record_type, value)
    assert reason_of(data[:0]) == DecodeReason.EMPTY
    for size in range(1, len(data)):
        assert reason_of(data[:size]) == DecodeReason.TRUNCATED, size


@pytest.mark.parametrize(("record_type", "value"), EXAMPLES, ids=EXAMPLE_IDS)
def test_a_changed_marker_or_fingerprint_byte_is_rejected(
    record_type: str, value: dict[str, Any]
) -> None:
    data = CATALOG.encode(record_type, value)
    for index in range(HEADER_SIZE):
        for bit in range(8):
            changed = bytearray(data)
            changed[index] ^= 1 << bit
            expected = DecodeReason.BAD_MARKER if index < 2 else DecodeReason.UNKNOWN_SCHEMA
            assert reason_of(bytes(changed)) == expected


@pytest.mark.parametrize(("record_type", "value"), EXAMPLES, ids=EXAMPLE_IDS)
def test_trailing_bytes_are_rejected(record_type: str, value: dict[str, Any]) -> None:
    data = CATALOG.encode(record_type, value)
    assert reason_of(data + b"\x00") == DecodeReason.TRAILING_BYTES
    assert reason_of(data + data) == DecodeReason.TRAILING_BYTES


def _reply(body: bytes) -> bytes:
    return CATALOG.current("Reply").header + body


@pytest.mark.parametrize(
    "body",
    [
        b"\x02s\x02x\x0a",  # action: enum index 5 of 2
        b"\x04\xff\xfe\x02x\x00",  # saga_id: not UTF-8
        b"\x02s\x02x\x00\x02\x00\x00\x08",  # error_type: union index 4 of 2
    ],
    ids=["enum-index", "utf-8", "union-index"],
)
def test_an_invalid_body_is_malformed(body: bytes) -> None:
    assert reason_of(_reply(body + b"\x00" * 4)) == DecodeReason.MALFORMED_BODY


def test_decode_as_checks_the_type_before_the_body() -> None:
    data = CATALOG.encode("Reply", REPLY)
    assert CATALOG.decode_as("Reply", data).value == REPLY
    with pytest.raises(DecodeError) as caught:
        CATALOG.decode_as("Command", data[:12])  # a truncated Reply is still not a Command
    assert caught.value.reason == DecodeReason.UNEXPECTED_TYPE
    with pytest.raises(DecodeError) as caught:
        CATALOG.decode_as("Command", b"junk")
    assert caught.value.reason == DecodeReason.BAD_MARKER
    with pytest.raises(ValueError, match="unknown record type"):
        CATALOG.decode_as("Nope", data)


def _decodes_or_decode_error(data: bytes) -> None:
    reason = None
    try:
        decoded = CATALOG.decode(data)
    except DecodeError as exc:
        reason = exc.reason
    else:
        assert decoded.record_type in set(RecordType)
    assert reason is None or reason in set(DecodeReason)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    _decodes_or_decode_error(data)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(RecordType)), st.binary(max_size=200))
def test_arbitrary_bodies_behind_a_valid_header_raise_only_decode_error(
    record_type: str, body: bytes
) -> None:
    _decodes_or_decode_error(CATALOG.current(record_type).header + body)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(EXAMPLES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2)), max_size=4),
)
def test_mutated_records_raise_only_decode_error(
    example: tuple[str, dict[str, Any]], edits: list[tuple[int, int, int]]
) -> None:
    data = bytearray(CATALOG.encode(*example))
    for position, byte, kind in edits:
        index = HEADER_SIZE + position % max(1, len(data) - HEADER_SIZE)
        if kind == 0 and index < len(data):
            data[index] = byte
        elif kind == 1:
            data.insert(index, byte)
        elif index < len(data):
            del data[index]
    _decodes_or_decode_error(bytes(data))
