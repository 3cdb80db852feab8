"""Schema evolution by fingerprint: new readers, old writers, and the reverse.

A test-local Reply v2 adds fields with defaults (one of them ``bytes``, whose JSON default
fastavro would otherwise hand back as ``str``). The shipped history is checked too: every writer
schema ever released must resolve into the current one.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import avsc
from schemas.codec import DecodeReason, SchemaCatalog, SchemaVersion, load_package_catalog
from tests.unit.test_codec import CATALOG, RELEASED, REPLY, avro_values, reason_of

REPLY_V1: dict[str, Any] = copy.deepcopy(dict(CATALOG.current("Reply").schema))
REPLY_V2: dict[str, Any] = {
    **REPLY_V1,
    "fields": [
        *REPLY_V1["fields"],
        {"name": "retry_after_ms", "type": ["null", "long"], "default": None},
        {"name": "details", "type": "bytes", "default": "\u00ffok"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}
V2_ADDED: dict[str, Any] = {"retry_after_ms": None, "details": b"\xffok", "tags": []}


def test_new_reader_reads_old_writer_with_defaults_filled() -> None:
    old = SchemaCatalog([REPLY_V1])
    new = SchemaCatalog([REPLY_V2], history=[REPLY_V1])
    decoded = new.decode(old.encode("Reply", REPLY))
    assert decoded.value == {**REPLY, **V2_ADDED}
    assert list(decoded.value) == [f["name"] for f in REPLY_V2["fields"]]
    assert decoded.writer_fingerprint == old.current("Reply").fingerprint
    assert decoded.writer_fingerprint != new.current("Reply").fingerprint


def test_filled_defaults_are_not_shared_between_records() -> None:
    old = SchemaCatalog([REPLY_V1])
    new = SchemaCatalog([REPLY_V2], history=[REPLY_V1])
    data = old.encode("Reply", REPLY)
    first = new.decode(data).value
    first["tags"].append("mutated")
    assert new.decode(data).value["tags"] == []


def test_new_writer_fills_its_own_bytes_default() -> None:
    new = SchemaCatalog([REPLY_V2])
    assert new.decode(new.encode("Reply", REPLY)).value == {**REPLY, **V2_ADDED}


def test_old_reader_that_knows_the_new_schema_drops_new_fields() -> None:
    new = SchemaCatalog([REPLY_V2], history=[REPLY_V1])
    data = new.encode("Reply", {**REPLY, "retry_after_ms": 500, "tags": ["a"], "details": b"x"})
    announced = SchemaCatalog([REPLY_V1], history=[REPLY_V2])
    decoded = announced.decode(data)
    assert decoded.value == REPLY
    assert decoded.writer_fingerprint == new.current("Reply").fingerprint
    # Without the new schema shipped one release ahead, the old reader cannot read it at all.
    assert reason_of(data, SchemaCatalog([REPLY_V1])) == DecodeReason.UNKNOWN_SCHEMA


def test_a_value_the_old_reader_cannot_represent_is_incompatible() -> None:
    outcome = next(f for f in REPLY_V1["fields"] if f["name"] == "outcome")
    wider = {**outcome, "type": {**outcome["type"], "symbols": [*outcome["type"]["symbols"], "X"]}}
    v3 = {**REPLY_V1, "fields": [wider if f is outcome else f for f in REPLY_V1["fields"]]}
    new = SchemaCatalog([v3])
    announced = SchemaCatalog([REPLY_V1], history=[v3])
    assert announced.decode(new.encode("Reply", REPLY)).value == REPLY
    assert reason_of(new.encode("Reply", {**REPLY, "outcome": "X"}), announced) == (
        DecodeReason.INCOMPATIBLE_SCHEMA
    )


def test_a_renamed_record_is_found_through_its_alias() -> None:
    old = {**REPLY_V1, "name": "Answer"}
    current = {**REPLY_V1, "aliases": ["Answer"]}
    data = SchemaCatalog([old]).encode("Answer", REPLY)
    decoded = SchemaCatalog([current], history=[old]).decode(data)
    assert decoded.record_type == "Reply"
    assert decoded.value == REPLY


def test_history_that_duplicates_current_is_the_current_version() -> None:
    catalog = SchemaCatalog([REPLY_V1], history=[REPLY_V1])
    assert len(catalog.versions()) == 1


@pytest.mark.parametrize(
    ("current", "history", "message"),
    [
        ([REPLY_V1, REPLY_V2], [], "two current schemas"),
        ([REPLY_V1], [{"type": "record", "name": "Nope", "fields": []}], "Nope"),
        ([{"type": "enum", "name": "E", "symbols": ["A"]}], [], "must be an Avro record"),
        ([{"type": "record", "name": "R", "fields": [{"name": "x", "type": "nope"}]}], [], "R"),
    ],
)
def test_catalog_rejects_bad_schemas(
    current: list[dict[str, Any]], history: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SchemaCatalog(current, history)


def _versions() -> list[SchemaVersion]:
    return sorted(CATALOG.versions(), key=lambda v: (v.record_type, v.fingerprint))


@pytest.mark.parametrize(
    "version", _versions(), ids=lambda v: f"{v.record_type}.{v.fingerprint_hex}"
)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_every_known_writer_schema_resolves_into_the_current_one(
    version: SchemaVersion, data: st.DataObject
) -> None:
    writer = SchemaCatalog([version.schema])
    value = data.draw(avro_values(version.schema))
    decoded = CATALOG.decode(writer.encode(writer.record_types[0], value))
    assert decoded.record_type == version.record_type
    assert decoded.writer_fingerprint == version.fingerprint


def test_an_edited_frozen_schema_stops_the_catalog(tmp_path: Path) -> None:
    root = tmp_path / "avro"
    shutil.copytree(Path(str(avsc.schema_directory())), root)
    frozen = root / "history" / f"Reply.{RELEASED['Reply']}.avsc"
    schema = json.loads(frozen.read_text())
    schema["fields"].pop()
    frozen.write_text(json.dumps(schema))
    with pytest.raises(ValueError, match="frozen schemas must never be edited"):
        load_package_catalog(directory=root)


def test_a_missing_envelope_file_stops_the_catalog(tmp_path: Path) -> None:
    root = tmp_path / "avro"
    shutil.copytree(Path(str(avsc.schema_directory())), root)
    (root / "reply.avsc").unlink()
    with pytest.raises(ValueError, match="Reply"):
        load_package_catalog(directory=root)
