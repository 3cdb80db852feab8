"""Typed wrappers around fastavro: the only module that calls it.

Its one job is to confine fastavro's untyped, loosely specified API to a few typed functions
that take schemas *parsed once* (so every later call runs fastavro's compiled reader and writer
without re-parsing), and to patch the one place where fastavro departs from the Avro spec in a
way that matters to us (``bytes`` defaults, below). It raises whatever fastavro raises; mapping
those exceptions to ``DecodeError`` reasons is ``schemas.codec``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from fastavro.validation import validate

from schemas.avsc import AvroSchema

__all__ = [
    "SchemaResolutionError",
    "canonical_fingerprint",
    "convert_defaults",
    "parse",
    "read",
    "validate_value",
    "write",
]


def parse(schema: AvroSchema) -> Any:
    """Parse once; the result is what every other function here takes."""
    parsed = parse_schema(schema)
    convert_defaults(parsed)
    return parsed


def canonical_fingerprint(parsed: Any) -> tuple[str, int]:
    canonical = str(to_parsing_canonical_form(parsed))
    # fastavro spells CRC-64-AVRO as the hex of the little-endian bytes, as on the wire.
    digest = bytes.fromhex(str(fingerprint(canonical, "CRC-64-AVRO")))
    return canonical, int.from_bytes(digest, "little")


def write(stream: IO[bytes], parsed: Any, value: Mapping[str, Any]) -> None:
    # strict_allow_default: an unknown key (a typo) fails; a missing field needs a default.
    schemaless_writer(stream, parsed, value, strict_allow_default=True)


def read(stream: IO[bytes], writer: Any, reader: Any | None) -> dict[str, Any]:
    """Read one body; ``reader=None`` skips schema resolution (the fast, common case)."""
    value = schemaless_reader(stream, writer, reader)
    if not isinstance(value, dict):  # pragma: no cover - envelopes are records
        raise TypeError(f"expected a record, got {type(value).__name__}")
    return value


def validate_value(parsed: Any, value: Mapping[str, Any]) -> None:
    """Full check (int ranges, exact types, no extra keys); the writer alone checks less."""
    validate(value, parsed, raise_errors=True, strict=True)


def convert_defaults(parsed: Any) -> None:
    """Turn the JSON defaults of ``bytes``/``fixed`` fields into ``bytes``, in place, once.

    fastavro keeps defaults as JSON: the default of a bytes field stays a ``str``, so the writer
    cannot write a record that omits the field and the reader fills it with a ``str``. The spec
    maps a bytes default's code points 0-255 to bytes, which is what ISO-8859-1 does.
    """
    named: Mapping[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    visited: set[int] = set()

    def deref(schema: Any) -> Any:
        return named.get(schema, schema) if isinstance(schema, str) else schema

    def convert(default: Any, schema: Any) -> Any:
        schema = deref(schema)
        if isinstance(schema, list):  # a union's default belongs to its first branch
            return convert(default, schema[0]) if schema else default
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if kind in {"bytes", "fixed"} and isinstance(default, str):
            return default.encode("latin-1")
        if kind == "record" and isinstance(default, dict):
            types = {f["name"]: f["type"] for f in schema["fields"]}
            return {k: convert(v, types[k]) if k in types else v for k, v in default.items()}
        if kind == "array" and isinstance(default, list):
            return [convert(item, schema["items"]) for item in default]
        if kind == "map" and isinstance(default, dict):
            return {k: convert(v, schema["values"]) for k, v in default.items()}
        return default

    def walk(schema: Any) -> None:
        schema = deref(schema)
        if isinstance(schema, list):
            for branch in schema:
                walk(branch)
        elif isinstance(schema, dict) and id(schema) not in visited:
            visited.add(id(schema))
            kind = schema.get("type")
            if kind in {"record", "error"}:
                for f in schema["fields"]:
                    if "default" in f:
                        f["default"] = convert(f["default"], f["type"])
                    walk(f["type"])
            elif kind == "array":
                walk(schema["items"])
            elif kind == "map":
                walk(schema["values"])

    walk(parsed)
