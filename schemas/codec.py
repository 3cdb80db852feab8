"""Envelope bytes <-> dicts: Avro single-object encoding, evolved by fingerprint.

Its one job is the envelope codec. It never touches Kafka, never parses the JSON payloads the
envelopes carry (they are opaque ``bytes`` here), and never lets a fastavro, struct, EOF or
Unicode exception escape :meth:`SchemaCatalog.decode`: every unreadable input becomes a
:class:`~orchestrator.errors.DecodeError` whose ``reason`` (a :class:`DecodeReason`) is the
dead-letter reason, so the shell has one ``except`` and the loop goes on.

The wire format is the Avro spec's *single-object encoding*, so no registry is needed::

    C3 01 | CRC-64-AVRO of the writer schema's Parsing Canonical Form (8 bytes, little-endian)
          | Avro binary body

The fingerprint names the writer schema; the catalog knows the *current* schema of each record
type (the one :meth:`~SchemaCatalog.encode` writes) and every other writer schema it should
read (``schemas/avro/history/``). Decoding resolves the writer's body into the current schema of
that record type (Avro schema resolution): a new reader fills a field an old writer lacked with
its default; an old reader drops a field it does not know. An old reader can only do that if it
already ships the new writer schema, hence the rule for changing an envelope: first release the
new schema in ``history/`` (everyone learns to read it), then make it current.

Not caught: fastavro reads a negative enum or union index as Python does (from the end) and
wraps an over-long varint; no spec-conforming writer produces either, and catching them would
mean re-encoding every record.

Hot path: schemas are parsed and fingerprinted once, the 10-byte header is precomputed, and a
record written with the current schema is read without resolution (fastavro's compiled reader
with no reader schema). Resolution, which fastavro performs per record, is paid only for bytes
written by another version. A write names the branch of each optional field (``["null", X]``)
instead of letting fastavro search for it (:func:`_optional_branches`).
"""

from __future__ import annotations

import copy
import functools
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources.abc import Traversable
from typing import Any

from orchestrator.errors import DecodeError
from schemas import _fastavro as avro
from schemas.avsc import (
    full_name,
    inline_named_types,
    read_history,
    read_library,
    schema_directory,
)

__all__ = [
    "HEADER_SIZE",
    "MARKER",
    "NAMESPACE",
    "DecodeReason",
    "DecodedRecord",
    "RecordType",
    "SchemaCatalog",
    "SchemaVersion",
    "default_catalog",
    "load_package_catalog",
    "schema_version",
]

NAMESPACE = "io.ksaga.v1"
"""The Avro namespace of every envelope; a breaking redesign would be ``io.ksaga.v2``."""

MARKER = b"\xc3\x01"
"""The two bytes that open every single-object encoded record (Avro spec)."""

HEADER_SIZE = len(MARKER) + 8
"""Marker plus the 8-byte fingerprint: the body starts here."""


class RecordType(StrEnum):
    """The envelopes this package ships; the value is the Avro record name (and header value)."""

    START_SAGA = "StartSaga"
    COMMAND = "Command"
    REPLY = "Reply"
    TIMER_FIRED = "TimerFired"
    SAGA_STATE = "SagaState"
    HISTORY_EVENT = "HistoryEvent"
    SIGNAL = "Signal"


class DecodeReason(StrEnum):
    """Why bytes could not be read; each is a ``DecodeError.reason`` and a dead-letter reason."""

    EMPTY = "empty"  # no bytes at all (or a null record value)
    BAD_MARKER = "bad-marker"  # does not start with C3 01: not single-object encoded
    TRUNCATED = "truncated"  # the header or the body ends early
    UNKNOWN_SCHEMA = "unknown-schema"  # no known writer schema has this fingerprint
    MALFORMED_BODY = "malformed-body"  # the body is not valid for its writer schema
    TRAILING_BYTES = "trailing-bytes"  # bytes left after a complete body
    INCOMPATIBLE_SCHEMA = "incompatible-schema"  # the writer's value has no reader equivalent
    UNEXPECTED_TYPE = "unexpected-type"  # a valid record of another type than expected


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One writer schema: its record type, fingerprint and canonical form.

    ``fingerprint`` is the unsigned CRC-64-AVRO value; Java's
    ``SchemaNormalization.parsingFingerprint64`` returns the same bits as a signed long, and the
    wire carries it little-endian (:attr:`header`). ``schema`` is the self-contained JSON schema
    to hand to a participant written in another language.
    """

    record_type: str
    full_name: str
    fingerprint: int
    canonical_form: str
    schema: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def fingerprint_hex(self) -> str:
        return f"{self.fingerprint:016x}"

    @property
    def header(self) -> bytes:
        return MARKER + self.fingerprint.to_bytes(8, "little")


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    """A decoded envelope, already resolved into the current schema of ``record_type``."""

    record_type: str
    value: dict[str, Any]
    writer_fingerprint: int


# -- the catalog ----------------------------------------------------------------------------


def _compile(
    schema: Mapping[str, Any], record_type: str | None = None
) -> tuple[SchemaVersion, Any]:
    if schema.get("type") != "record":
        raise ValueError(f"an envelope schema must be an Avro record, got {schema.get('type')!r}")
    try:
        parsed = avro.parse(dict(schema))
    except Exception as exc:
        raise ValueError(f"invalid Avro schema {schema.get('name')!r}: {exc}") from exc
    canonical, fp = avro.canonical_fingerprint(parsed)
    name = full_name(schema, "")
    version = SchemaVersion(
        record_type=record_type or name.rpartition(".")[2],
        full_name=name,
        fingerprint=fp,
        canonical_form=canonical,
        schema=schema,
    )
    return version, parsed


def schema_version(schema: Mapping[str, Any]) -> SchemaVersion:
    """Describe a self-contained record schema: name, fingerprint, canonical form."""
    return _compile(schema)[0]


@dataclass(frozen=True, slots=True)
class _Writer:
    version: SchemaVersion
    parsed: Any
    header: bytes
    optional: tuple[tuple[str, str], ...]  # see _optional_branches


def _optional_branches(parsed: Any) -> tuple[tuple[str, str], ...]:
    """(field, branch name) of each top-level field typed ``["null", X]``.

    fastavro resolves which branch of a union a value belongs to by validating the value against
    each branch, on every write: for the state's ``timer`` record that was half the cost of
    encoding a state. A non-null value of such a field can only be ``X``, so :meth:`encode`
    names the branch in fastavro's tuple notation (``(name, value)``) and skips the search. The
    name is the one fastavro matches: a named type's full name, else the primitive's name.
    """
    optional = []
    for f in parsed["fields"]:
        branches = f["type"]
        if not isinstance(branches, list) or len(branches) != 2 or "null" not in branches:
            continue
        (other,) = (b for b in branches if b != "null")
        if isinstance(other, dict):
            name = other["name"] if other["type"] in ("record", "enum", "fixed") else other["type"]
        else:
            name = other
        optional.append((f["name"], str(name)))
    return tuple(optional)


@dataclass(frozen=True, slots=True)
class _Reader:
    version: SchemaVersion
    writer: Any
    reader: Any | None  # the current parsed schema; None when the writer *is* current
    fields: tuple[str, ...]  # the current schema's field order


class SchemaCatalog:
    """The current schema of each record type, and every writer schema it can read.

    ``current`` and ``history`` are self-contained record schemas (JSON). A history schema is
    matched to the current record type of the same full name (or one of its ``aliases``); one
    whose fingerprint is also current is simply the current one. ``validate=True`` makes
    :meth:`encode` run fastavro's full validation first (int ranges, exact types): about three
    times slower, for tests and participants rather than the orchestrator's hot path, whose
    values come from typed code.
    """

    __slots__ = ("_readers", "_validate", "_writers")

    def __init__(
        self,
        current: Iterable[Mapping[str, Any]],
        history: Iterable[Mapping[str, Any]] = (),
        *,
        validate: bool = False,
    ) -> None:
        self._validate = validate
        self._writers: dict[str, _Writer] = {}
        self._readers: dict[bytes, _Reader] = {}
        names: dict[str, str] = {}
        for schema in current:
            version, parsed = _compile(schema)
            if version.record_type in self._writers:
                raise ValueError(f"two current schemas for record type {version.record_type!r}")
            self._writers[version.record_type] = _Writer(
                version, parsed, version.header, _optional_branches(parsed)
            )
            fields = tuple(f["name"] for f in schema["fields"])
            self._add(_Reader(version, parsed, None, fields))
            namespace = version.full_name.rpartition(".")[0]
            for alias in (version.full_name, *schema.get("aliases", ())):
                names[full_name({"name": alias}, namespace)] = version.record_type
        for schema in history:
            name = full_name(schema, "")
            if name not in names:
                raise ValueError(f"history schema {name!r} matches no current record type")
            version, parsed = _compile(schema, names[name])
            current_reader = self._writers[version.record_type]
            fields = self._readers[current_reader.header[len(MARKER) :]].fields
            self._add(_Reader(version, parsed, current_reader.parsed, fields))

    def _add(self, reader: _Reader) -> None:
        key = reader.version.header[len(MARKER) :]
        known = self._readers.get(key)
        if known is None:
            self._readers[key] = reader
        elif known.version.canonical_form != reader.version.canonical_form:
            raise ValueError(f"fingerprint collision: {reader.version.fingerprint_hex}")

    # -- introspection --

    @property
    def record_types(self) -> tuple[str, ...]:
        return tuple(self._writers)

    def current(self, record_type: str) -> SchemaVersion:
        """The schema :meth:`encode` writes for ``record_type``."""
        return self._writer(record_type).version

    def versions(self) -> tuple[SchemaVersion, ...]:
        """Every writer schema this catalog reads, current ones included."""
        return tuple(r.version for r in self._readers.values())

    def _writer(self, record_type: str) -> _Writer:
        writer = self._writers.get(record_type)
        if writer is None:
            known = ", ".join(self._writers)
            raise ValueError(f"unknown record type {record_type!r} (known: {known})")
        return writer

    # -- the codec --

    def encode(self, record_type: str, value: Mapping[str, Any]) -> bytes:
        """Single-object encode ``value`` with the current schema of ``record_type``.

        A value that does not fit the schema (missing field without default, unknown field,
        wrong type) raises ``ValueError``: that is a bug in the caller, never bad input.
        """
        writer = self._writer(record_type)
        stream = io.BytesIO()
        stream.write(writer.header)
        try:
            if self._validate:
                avro.validate_value(writer.parsed, value)
            avro.write(stream, writer.parsed, _name_branches(writer.optional, value))
        except Exception as exc:
            raise ValueError(f"cannot encode {record_type}: {exc}") from exc
        return stream.getvalue()

    def decode(self, data: bytes | None) -> DecodedRecord:
        """Decode any known envelope; raises ``DecodeError`` (and only that) on bad bytes."""
        reader, body = self._locate(data)
        return self._read(reader, body)

    def decode_as(self, expected_type: str, data: bytes | None) -> DecodedRecord:
        """Decode an envelope that must be of ``expected_type`` (checked before the body)."""
        self._writer(expected_type)
        reader, body = self._locate(data)
        if reader.version.record_type != expected_type:
            raise DecodeError(
                DecodeReason.UNEXPECTED_TYPE,
                f"expected {expected_type}, got {reader.version.record_type}",
            )
        return self._read(reader, body)

    def _locate(self, data: bytes | None) -> tuple[_Reader, bytes]:
        if not data:
            raise DecodeError(
                DecodeReason.EMPTY, "no bytes to decode" if data is None else "0 bytes"
            )
        if data[:2] != MARKER:
            if len(data) < len(MARKER) and MARKER.startswith(data):
                raise DecodeError(DecodeReason.TRUNCATED, f"{len(data)} bytes, header is 10")
            raise DecodeError(DecodeReason.BAD_MARKER, f"starts with {data[:2].hex()}, not c301")
        if len(data) < HEADER_SIZE:
            raise DecodeError(DecodeReason.TRUNCATED, f"{len(data)} bytes, header is 10")
        reader = self._readers.get(data[len(MARKER) : HEADER_SIZE])
        if reader is None:
            fp = int.from_bytes(data[len(MARKER) : HEADER_SIZE], "little")
            raise DecodeError(DecodeReason.UNKNOWN_SCHEMA, f"no writer schema {fp:016x}")
        return reader, data

    @staticmethod
    def _read(reader: _Reader, data: bytes) -> DecodedRecord:
        version = reader.version
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            value = avro.read(stream, reader.writer, reader.reader)
        except Exception as exc:
            raise _body_error(exc, stream.tell() >= len(data), version) from exc
        if stream.tell() != len(data):
            extra = len(data) - stream.tell()
            raise DecodeError(
                DecodeReason.TRAILING_BYTES,
                f"{extra} bytes after the {version.record_type} body ({version.fingerprint_hex})",
            )
        if reader.reader is not None:
            # fastavro fills defaults with the schema's own objects and appends them: copy
            # them (so no caller shares a default list) and restore the reader's field order.
            value = {name: copy.deepcopy(value[name]) for name in reader.fields}
        return DecodedRecord(version.record_type, value, version.fingerprint)


def _name_branches(
    optional: tuple[tuple[str, str], ...], value: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``value`` with each optional field's non-null value as ``(branch, value)``; a copy."""
    if not optional:
        return value
    named = dict(value)
    for field_name, branch in optional:
        item = named.get(field_name)
        if item is not None:
            named[field_name] = (branch, item)
    return named


def _body_error(exc: Exception, exhausted: bool, version: SchemaVersion) -> DecodeError:
    where = f"{version.record_type} body (writer {version.fingerprint_hex})"
    if isinstance(exc, avro.SchemaResolutionError):
        return DecodeError(DecodeReason.INCOMPATIBLE_SCHEMA, f"{where}: {exc}")
    if isinstance(exc, EOFError) or (exhausted and not isinstance(exc, UnicodeError)):
        return DecodeError(DecodeReason.TRUNCATED, f"{where} ends early")
    return DecodeError(DecodeReason.MALFORMED_BODY, f"{where}: {type(exc).__name__}: {exc}")


def load_package_catalog(
    *, validate: bool = False, directory: Traversable | None = None
) -> SchemaCatalog:
    """Build a catalog from the ``.avsc`` files of ``directory`` (default: this package's).

    A history file's name carries its fingerprint; a mismatch means a frozen schema was edited,
    which would silently break reading old records, so it fails here, at start, instead.
    """
    root = schema_directory() if directory is None else directory
    library = read_library(root)
    missing = [t.value for t in RecordType if f"{NAMESPACE}.{t.value}" not in library]
    if missing:
        raise ValueError(
            f"no .avsc file defines {', '.join(missing)} (is the package data installed?)"
        )
    current = [inline_named_types(library[f"{NAMESPACE}.{t.value}"], library) for t in RecordType]
    history = read_history(root / "history")
    for file_name, schema in history.items():
        expected = file_name.removesuffix(".avsc").rpartition(".")[2]
        actual = schema_version(schema).fingerprint_hex
        if expected != actual:
            raise ValueError(
                f"history/{file_name} has fingerprint {actual}: frozen schemas must never be "
                "edited; restore it (or re-freeze under its real name if it is new)"
            )
    return SchemaCatalog(current, history.values(), validate=validate)


@functools.cache
def default_catalog() -> SchemaCatalog:
    """The package's catalog, built on first use (no file is read at import time)."""
    return load_package_catalog()
