"""The envelope codec: round trips, the single-object header, encoding errors, the CLI.

No broker: the codec is bytes in, dicts out. Values are generated from the schemas themselves
(``avro_values``), so a new field or type is covered without touching these tests. The examples
and helpers here are shared by ``test_codec_evolution`` and ``test_codec_errors``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import DecodeError
from schemas import avsc, codec, deadletter, headers
from schemas.__main__ import freeze, main
from schemas.codec import (
    HEADER_SIZE,
    MARKER,
    RecordType,
    SchemaCatalog,
    default_catalog,
    load_package_catalog,
)

CATALOG = default_catalog()
MS = 1_700_000_000_000

# -- explicit examples ----------------------------------------------------------------------

START_SAGA = {
    "saga_id": "order-saga/o-1",
    "saga_type": "order-saga",
    "data": b'{"order_id":"o-1","amount":120}',
    "trigger_topic": "orders",
    "trigger_partition": 3,
    "trigger_offset": 42,
    "triggered_ms": MS,
}
COMMAND = {
    "saga_id": "order-saga/o-1",
    "saga_type": "order-saga",
    "step": "reserve_stock",
    "action": "UNDO",
    "attempt": 2,
    "idempotency_key": "order-saga/o-1|reserve_stock|UNDO",
    "command_type": "ReleaseStock",
    "payload": b'{"sku":"A-1","qty":2}',
    "reply_topic": "ksaga.inbox",
    "reply_partition": 7,
    "sent_ms": MS + 5,
}
REPLY = {
    "saga_id": "order-saga/o-1",
    "step": "charge_card",
    "action": "DO",
    "attempt": 1,
    "outcome": "FAILED_RETRYABLE",
    "payload": b"",
    "error_type": "GatewayTimeout",
    "message": "card gateway did not answer in 2s",
    "replied_ms": MS + 9,
}
TIMER_FIRED = {"saga_id": "order-saga/o-1", "token": "charge_card|DO|1|timeout", "due_ms": MS}
SAGA_STATE = {
    "saga_id": "order-saga/o-1",
    "saga_type": "order-saga",
    "status": "COMPENSATING",
    "data": b'{"order_id":"o-1"}',
    "step": 0,
    "action": "UNDO",
    "attempt": 1,
    "timer": {"token": "reserve_stock|UNDO|1|timeout", "due_ms": MS + 30_000, "kind": "TIMEOUT"},
    "completed": [0, 1],
    "to_compensate": [1, 0],
    "failure": {
        "step": "charge_card",
        "action": "DO",
        "error_type": "CardDeclined",
        "message": "insufficient funds",
    },
    "version": 6,
    "started_ms": MS,
    "updated_ms": MS + 12,
    "first_attempt": 1,
}
HISTORY_EVENT = {
    "saga_id": "order-saga/o-1",
    "saga_type": "order-saga",
    "version": 1,
    "at_ms": MS,
    "input_type": "SagaTriggered",
    "step": None,
    "action": None,
    "attempt": None,
    "status_before": None,
    "status_after": "RUNNING",
    "effects": ["SendCommand(reserve_stock, DO, 1)", "ArmTimer(reserve_stock|DO|1|timeout)"],
    "source_topic": "ksaga.inbox",
    "source_partition": 7,
    "source_offset": 1234,
}
SIGNAL = {
    "saga_id": "order-saga/o-1",
    "kind": "RESUME",
    "requested_by": "alice",
    "reason": "inventory database restored",
    "requested_ms": MS + 99,
}
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    (RecordType.START_SAGA, START_SAGA),
    (RecordType.COMMAND, COMMAND),
    (RecordType.REPLY, REPLY),
    (RecordType.TIMER_FIRED, TIMER_FIRED),
    (RecordType.SAGA_STATE, SAGA_STATE),
    (RecordType.SAGA_STATE, {**SAGA_STATE, "status": "RUNNING", "timer": None, "failure": None}),
    (RecordType.HISTORY_EVENT, HISTORY_EVENT),
    (RecordType.SIGNAL, SIGNAL),
    (RecordType.SIGNAL, {**SIGNAL, "kind": "CANCEL", "reason": ""}),
    (
        RecordType.HISTORY_EVENT,
        {
            **HISTORY_EVENT,
            "input_type": "StepFailed",
            "step": "charge_card",
            "action": "DO",
            "attempt": 3,
            "status_before": "RUNNING",
            "status_after": "COMPENSATING",
            "effects": [],
        },
    ),
]
EXAMPLE_IDS = [f"{t}-{i}" for i, (t, _) in enumerate(EXAMPLES)]

# The released fingerprints (unsigned CRC-64-AVRO, hex). Changing a schema changes its line
# here: freeze the released one first (`python -m schemas freeze`), so old records stay readable.
RELEASED = {
    "StartSaga": "ae9ce4a2f00a16d4",
    "Command": "7e413e59c49c2c26",
    "Reply": "902b32ca1d6192ce",
    "TimerFired": "af7a6802e9d4eafc",
    "SagaState": "bce99db537a5f72b",
    "HistoryEvent": "5a68b261bdd4b47c",
    "Signal": "c9a66d0c0c33bf91",
}


# -- an independent CRC-64-AVRO, from the spec's reference algorithm -----------------------

_EMPTY = 0xC15D213AA4D7A795


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc_table()


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def unsigned(signed: int) -> int:
    return signed & (2**64 - 1)


# -- values generated from an Avro schema ---------------------------------------------------

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=64),
    "string": st.text(max_size=32),
}


def avro_values(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Every valid value of a self-contained schema (references use full names)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return _PRIMITIVES[schema] if schema in _PRIMITIVES else avro_values(named[schema], named)
    if isinstance(schema, list):
        return st.one_of([avro_values(branch, named) for branch in schema])
    kind = schema["type"]
    if kind in {"record", "enum", "fixed"}:
        named[avsc.full_name(schema, "")] = schema
    if kind == "record":
        fields = {f["name"]: avro_values(f["type"], named) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(avro_values(schema["items"], named), max_size=4)
    return avro_values(kind, named)


def _python_default(field: dict[str, Any]) -> Any:
    default = field["default"]
    return default.encode("latin-1") if field["type"] == "bytes" else default


@st.composite
def envelopes(draw: st.DrawFn, record_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(value to encode, value expected back): fields with defaults are sometimes left out."""
    schema = CATALOG.current(record_type).schema
    full = draw(avro_values(schema))
    optional = {f["name"]: f for f in schema["fields"] if "default" in f}
    left_out = draw(st.sets(st.sampled_from(sorted(optional)))) if optional else set()
    given_value = {k: v for k, v in full.items() if k not in left_out}
    expected = {**full, **{name: _python_default(optional[name]) for name in left_out}}
    return given_value, expected


def reason_of(data: bytes | None, catalog: SchemaCatalog = CATALOG) -> str:
    with pytest.raises(DecodeError) as caught:
        catalog.decode(data)
    return caught.value.reason


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(("record_type", "value"), EXAMPLES, ids=EXAMPLE_IDS)
def test_examples_round_trip(record_type: str, value: dict[str, Any]) -> None:
    data = CATALOG.encode(record_type, value)
    decoded = CATALOG.decode(data)
    assert decoded.record_type == record_type
    assert decoded.value == value
    assert decoded.writer_fingerprint == CATALOG.current(record_type).fingerprint
    assert CATALOG.decode_as(record_type, data) == decoded


def test_defaults_are_filled_on_encode() -> None:
    minimal = {k: v for k, v in REPLY.items() if k not in {"payload", "error_type", "message"}}
    value = CATALOG.decode(CATALOG.encode("Reply", minimal)).value
    assert value == {**minimal, "payload": b"", "error_type": None, "message": None}
    assert isinstance(value["payload"], bytes)


def test_tuples_encode_as_arrays() -> None:
    state = {**SAGA_STATE, "completed": (0, 1), "to_compensate": (1, 0)}
    assert CATALOG.decode(CATALOG.encode("SagaState", state)).value == SAGA_STATE


@pytest.mark.parametrize("record_type", list(RecordType))
@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_every_valid_value_round_trips(record_type: str, data: st.DataObject) -> None:
    given_value, expected = data.draw(envelopes(record_type))
    decoded = CATALOG.decode(CATALOG.encode(record_type, given_value))
    assert decoded.record_type == record_type
    assert decoded.value == expected


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_validating_catalog_accepts_valid_values_and_writes_the_same_bytes(
    data: st.DataObject,
) -> None:
    record_type = data.draw(st.sampled_from(list(RecordType)))
    given_value, _ = data.draw(envelopes(record_type))
    strict = load_package_catalog(validate=True)
    assert strict.encode(record_type, given_value) == CATALOG.encode(record_type, given_value)


@pytest.mark.parametrize("record_type", list(RecordType))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_naming_optional_branches_writes_what_fastavro_writes_unaided(
    record_type: str, data: st.DataObject
) -> None:
    given_value, _ = data.draw(envelopes(record_type))
    writer = CATALOG._writer(record_type)
    unaided = io.BytesIO()
    fastavro.schemaless_writer(unaided, writer.parsed, given_value)
    assert CATALOG.encode(record_type, given_value) == writer.header + unaided.getvalue()


def test_the_optional_fields_are_named_with_their_branch() -> None:
    assert dict(CATALOG._writer("SagaState").optional) == {
        "timer": "io.ksaga.v1.Timer",
        "failure": "io.ksaga.v1.Failure",
    }
    assert dict(CATALOG._writer("HistoryEvent").optional)["attempt"] == "int"


# -- the single-object header ----------------------------------------------------------------


def test_reference_crc_matches_the_spec_test_vectors() -> None:
    # apache/avro share/test/data/schema-tests.txt (signed longs, as Java prints them)
    assert crc64_avro(b'"null"') == 7195948357588979594
    assert crc64_avro(b'"int"') == 8247732601305521295
    assert crc64_avro(b'"string"') == unsigned(-8142146995180207161)
    assert crc64_avro(b'{"name":"foo","type":"record","fields":[]}') == unsigned(
        -4824392279771201922
    )


def test_catalog_fingerprint_matches_a_spec_vector() -> None:
    catalog = SchemaCatalog([{"type": "record", "name": "foo", "fields": [], "doc": "ignored"}])
    version = catalog.current("foo")
    assert version.canonical_form == '{"name":"foo","type":"record","fields":[]}'
    assert version.fingerprint == unsigned(-4824392279771201922)
    header = MARKER + unsigned(-4824392279771201922).to_bytes(8, "little")
    assert catalog.encode("foo", {}) == header


@pytest.mark.parametrize(("record_type", "value"), EXAMPLES, ids=EXAMPLE_IDS)
def test_header_is_marker_then_little_endian_crc_of_canonical_form(
    record_type: str, value: dict[str, Any]
) -> None:
    data = CATALOG.encode(record_type, value)
    version = CATALOG.current(record_type)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == crc64_avro(version.canonical_form.encode("utf-8")).to_bytes(8, "little")
    assert data[:HEADER_SIZE] == version.header


def test_canonical_form_is_self_contained_and_strips_docs_and_defaults() -> None:
    assert CATALOG.current("TimerFired").canonical_form == (
        '{"name":"io.ksaga.v1.TimerFired","type":"record","fields":['
        '{"name":"saga_id","type":"string"},{"name":"token","type":"string"},'
        '{"name":"due_ms","type":"long"}]}'
    )
    reply = CATALOG.current("Reply").canonical_form
    assert '"doc"' not in reply
    assert '"default"' not in reply
    assert '{"name":"io.ksaga.v1.Action","type":"enum","symbols":["DO","UNDO"]}' in reply
    state = CATALOG.current("SagaState").canonical_form
    assert state.count('"name":"io.ksaga.v1.Action","type":"enum"') == 1  # defined once
    assert '"type":"io.ksaga.v1.Action"' in state  # then referenced by name


def test_released_fingerprints_are_current_and_frozen() -> None:
    current = {t: CATALOG.current(t).fingerprint_hex for t in CATALOG.record_types}
    assert current == RELEASED, "a schema changed: freeze the released one, then update RELEASED"
    frozen = set(avsc.read_history())
    for record_type, fp in RELEASED.items():
        assert f"{record_type}.{fp}.avsc" in frozen


# -- encode is for valid values only --------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {k: v for k, v in REPLY.items() if k != "saga_id"},
        {**REPLY, "sagaid": "typo"},
        {**REPLY, "attempt": "1"},
        {**REPLY, "outcome": "MAYBE"},
        {**REPLY, "payload": "not bytes"},
        {**REPLY, "replied_ms": 2**64},
    ],
    ids=["missing", "unknown-field", "wrong-type", "bad-symbol", "str-for-bytes", "overflow"],
)
def test_encoding_an_invalid_value_is_a_value_error(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot encode Reply"):
        CATALOG.encode("Reply", value)


def test_only_the_validating_catalog_checks_int_ranges() -> None:
    value = {**REPLY, "attempt": 2**40}
    with pytest.raises(ValueError, match="attempt"):
        load_package_catalog(validate=True).encode("Reply", value)
    CATALOG.encode("Reply", value)  # the fast path trusts typed callers


def test_encoding_an_unknown_type_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown record type 'Nope'"):
        CATALOG.encode("Nope", {})


# -- the package surface -------------------------------------------------------------------


def test_the_catalog_knows_exactly_the_envelopes() -> None:
    assert CATALOG.record_types == tuple(RecordType)
    assert default_catalog() is CATALOG


@pytest.mark.parametrize("module", [avsc, codec, deadletter, headers])
def test_public_names_exist(module: Any) -> None:
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name


def test_cli_lists_fingerprints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for record_type, fp in RELEASED.items():
        assert record_type in out
        assert fp in out


def test_cli_shows_a_self_contained_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "SagaState"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert codec.schema_version(shown).fingerprint_hex == RELEASED["SagaState"]


def test_freeze_writes_each_current_schema_once(tmp_path: Path) -> None:
    written = freeze(CATALOG, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{t}.{fp}.avsc" for t, fp in RELEASED.items())
    assert freeze(CATALOG, tmp_path) == []
    for path in written:
        assert codec.schema_version(json.loads(path.read_text())).fingerprint_hex in path.name
