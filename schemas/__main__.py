"""``python -m schemas``: the envelope fingerprints, for participants written in other languages.

    python -m schemas                 each writer schema: fingerprint, Java's signed form, header
    python -m schemas show Reply      the self-contained current schema of a record type (JSON)
    python -m schemas freeze [DIR]    copy current schemas missing from history/ into it

Changing an envelope takes two releases, because a reader can only resolve a writer schema it
ships. Release 1: edit the ``.avsc``, ``freeze`` (the new version lands in history/), then revert
the edit: this release reads the new version but still writes the old. Release 2: apply the
edit again; it is already frozen. ``freeze`` only adds files; it never edits a frozen one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.avsc import history_directory
from schemas.codec import SchemaCatalog, SchemaVersion, load_package_catalog

__all__ = ["freeze", "history_file_name", "main"]


def _table(catalog: SchemaCatalog) -> str:
    rows = [("record type", "fingerprint", "signed (Java)", "header bytes", "current")]
    current = {catalog.current(t).fingerprint for t in catalog.record_types}
    for version in sorted(catalog.versions(), key=lambda v: (v.record_type, v.fingerprint)):
        signed = int.from_bytes(version.fingerprint.to_bytes(8, "big"), "big", signed=True)
        mark = "yes" if version.fingerprint in current else ""
        rows.append(
            (version.record_type, version.fingerprint_hex, str(signed), version.header.hex(), mark)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def history_file_name(version: SchemaVersion) -> str:
    """``<RecordType>.<fingerprint>.avsc``: the loader checks the name against the content."""
    return f"{version.record_type}.{version.fingerprint_hex}.avsc"


def freeze(catalog: SchemaCatalog, directory: Path) -> list[Path]:
    """Write each current schema not yet in ``directory``; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for record_type in catalog.record_types:
        version = catalog.current(record_type)
        path = directory / history_file_name(version)
        if not path.exists():
            path.write_text(json.dumps(version.schema, indent=2) + "\n", encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas", description="ksaga envelope schemas")
    commands = parser.add_subparsers(dest="command")
    show = commands.add_parser("show", help="print the self-contained current schema")
    show.add_argument("record_type")
    frozen = commands.add_parser("freeze", help="copy current schemas into history/")
    frozen.add_argument("directory", nargs="?", type=Path)
    args = parser.parse_args(argv)
    catalog = load_package_catalog()
    if args.command == "show":
        if args.record_type not in catalog.record_types:
            parser.error(f"unknown record type {args.record_type!r}; known: {catalog.record_types}")
        print(json.dumps(catalog.current(args.record_type).schema, indent=2))
    elif args.command == "freeze":
        directory = args.directory or Path(str(history_directory()))
        for path in freeze(catalog, directory):
            print(f"froze {path}")
    else:
        print(_table(catalog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
