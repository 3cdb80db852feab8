"""Reading the ``.avsc`` files shipped in this package into self-contained Avro schemas.

Its one job: turn JSON files into JSON schemas. It never encodes, decodes or fingerprints
(that is ``schemas.codec``), so it has no dependency beyond the standard library.

Why the inlining: the envelopes share named types (``Action``, ``SagaStatus``, ``Timer``, ...)
and each is written once, in its own file, so the envelopes cannot drift apart. But a writer
schema that is fingerprinted, frozen into ``history/`` or handed to a participant in another
language must stand alone. :func:`inline_named_types` replaces the *first* reference to each
named type (in document order) by its definition and leaves later references as full names:
exactly the shape the Avro spec requires, since a name may be defined only once per schema.

Layout of the package data::

    schemas/avro/*.avsc           the current schemas: seven envelopes and their shared types
    schemas/avro/history/*.avsc   frozen self-contained writer schemas, named
                                  ``<RecordType>.<fingerprint as 16 hex digits>.avsc``
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

__all__ = [
    "AvroSchema",
    "full_name",
    "history_directory",
    "inline_named_types",
    "read_history",
    "read_library",
    "schema_directory",
]

AvroSchema = Any
"""A schema as parsed JSON: a type name (``str``), a union (``list``) or a ``dict``."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


def schema_directory() -> Traversable:
    """The package's ``avro`` directory (works from a wheel, a zip or a source tree)."""
    return files("schemas") / "avro"


def history_directory() -> Traversable:
    """The package's frozen writer schemas: every version ever written stays readable."""
    return schema_directory() / "history"


def full_name(schema: Mapping[str, Any], namespace: str) -> str:
    """The full name of a named type, per the spec: a dotted name ignores the namespace."""
    name = str(schema["name"])
    if "." in name:
        return name
    space = str(schema.get("namespace", namespace) or "")
    return f"{space}.{name}" if space else name


def _reference_name(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def inline_named_types(
    schema: AvroSchema,
    library: Mapping[str, Mapping[str, Any]],
    namespace: str = "",
    defined: set[str] | None = None,
) -> AvroSchema:
    """Return ``schema`` with every named-type reference resolved from ``library``.

    ``library`` maps full names to definitions (which may themselves refer to other library
    types). The input is not modified. A reference to a name neither defined earlier in the
    schema nor in ``library`` raises ``ValueError``: a typo must fail when the package loads,
    not when the first record is written.
    """
    seen: set[str] = set() if defined is None else defined
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = _reference_name(schema, namespace)
        if name in seen:
            return name
        if name not in library:
            raise ValueError(f"unknown Avro type {schema!r} (looked for {name!r})")
        return inline_named_types(library[name], library, namespace, seen)
    if isinstance(schema, list):
        return [inline_named_types(branch, library, namespace, seen) for branch in schema]
    if not isinstance(schema, Mapping):
        raise ValueError(f"not an Avro schema: {schema!r}")
    kind = schema.get("type")
    if kind in NAMED_KINDS:
        name = full_name(schema, namespace)
        if name in seen:
            raise ValueError(f"Avro type {name!r} is defined twice")
        seen.add(name)
        if kind not in {"record", "error"}:
            return dict(schema)
        inner = name.rpartition(".")[0]
        fields = [
            {**f, "type": inline_named_types(f["type"], library, inner, seen)}
            for f in schema.get("fields", ())
        ]
        return {**schema, "fields": fields}
    if kind == "array":
        return {**schema, "items": inline_named_types(schema["items"], library, namespace, seen)}
    if kind == "map":
        return {**schema, "values": inline_named_types(schema["values"], library, namespace, seen)}
    if isinstance(kind, str) and kind not in PRIMITIVES:
        # {"type": "Action"}: a named type written as an object.
        return inline_named_types(kind, library, namespace, seen)
    return dict(schema)


def _avsc_files(directory: Traversable) -> Iterator[Traversable]:
    if not directory.is_dir():
        return
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(".avsc"):
            yield entry


def _read_json(entry: Traversable) -> dict[str, Any]:
    try:
        schema = json.loads(entry.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{entry.name}: not valid JSON: {exc}") from exc
    if not isinstance(schema, dict) or schema.get("type") not in NAMED_KINDS:
        raise ValueError(f"{entry.name}: an .avsc file must hold one named type")
    return schema


def read_library(directory: Traversable | None = None) -> dict[str, dict[str, Any]]:
    """Every named type defined in ``directory`` (default: the package's), by full name."""
    library: dict[str, dict[str, Any]] = {}
    for entry in _avsc_files(schema_directory() if directory is None else directory):
        schema = _read_json(entry)
        name = full_name(schema, "")
        if name in library:
            raise ValueError(f"{entry.name}: Avro type {name!r} is defined in two files")
        library[name] = schema
    return library


def read_history(directory: Traversable | None = None) -> dict[str, dict[str, Any]]:
    """The frozen writer schemas, by file name (the name carries the expected fingerprint)."""
    return {
        entry.name: _read_json(entry)
        for entry in _avsc_files(history_directory() if directory is None else directory)
    }
