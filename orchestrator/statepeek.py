"""The timer of an encoded ``SagaState``, read without decoding the state: restore's hot path.

Restore keeps the state topic's bytes as they are and decodes a state only when the loop reads
it (the store keeps an LRU of decoded states). The one thing it must know at once is the
state's timer, for the due-time index. In the SagaState schema the timer comes after seven
fields that are each a string, bytes or a zig-zag varint (int, long, enum), so reaching it is a
handful of varint reads: several times cheaper than fastavro decoding the whole record and
building the dataclass, which was most of a restore's cost.

Never a different answer from ``decode_state(data).timer``:

* The layout is derived from the catalog's current SagaState schema when first needed, not
  assumed: if a schema ever puts another kind of field before the timer, or changes the Timer
  record, there is no layout and every call decodes fully.
* Only bytes whose header names the current writer schema take the fast path; bytes of an older
  writer (``schemas/avro/history``) are decoded fully, with schema resolution.
* Whatever the fast path cannot read (too short, a negative length, a union branch other than
  null/Timer, bad UTF-8, an unknown enum index) is decoded fully, so bad bytes raise the codec's
  ``DecodeError`` exactly as ``decode_state`` does.

What it does not look at is the body after the timer. Restore relies on that being sound
because the only writer of ``ksaga.state`` is ksaga's own codec, the restore consumer has
librdkafka verify each record batch's CRC (``check.crcs``), and every read of a state decodes
it fully (a ``DecodeError`` there is no worse than the same error during restore).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from orchestrator.core import Timer, TimerKind
from orchestrator.wire import decode_state
from schemas.codec import RecordType, SchemaCatalog, default_catalog

__all__ = ["TimerFields", "state_timer", "timer_reader"]

_VARINT = frozenset({"int", "long"})
_LENGTH = frozenset({"string", "bytes"})


class _Layout(NamedTuple):
    header: bytes  # marker + fingerprint of the current SagaState writer schema
    skips: tuple[bool, ...]  # the fields before the timer: True = length-prefixed, False = varint
    kinds: tuple[TimerKind, ...]  # TimerKind by its Avro enum index


class _Unreadable(ValueError):
    """The fast path cannot read these bytes; the full decode will say why."""


TimerFields = tuple[int, bytes, TimerKind]
"""A timer as an index entry needs it: due time, the token's UTF-8 bytes, kind."""


def state_timer(data: bytes, catalog: SchemaCatalog | None = None) -> Timer | None:
    """``decode_state(data).timer``, without decoding the rest when the layout allows it."""
    found = timer_reader(catalog)(data)
    return None if found is None else Timer(found[1].decode(), found[0], found[2])


@functools.lru_cache(maxsize=8)
def timer_reader(catalog: SchemaCatalog | None = None) -> Callable[[bytes], TimerFields | None]:
    """``state_timer`` as a function of the bytes alone, for loops over many records.

    The catalog and layout are looked up once, and it returns the token as the UTF-8 bytes
    it was (checked to be UTF-8), which is what the store's index keeps.
    """
    resolved = catalog or default_catalog()
    layout = _layout(resolved)

    def full(data: bytes) -> TimerFields | None:
        timer = decode_state(data, resolved).timer
        return None if timer is None else (timer.due_ms, timer.token.encode(), timer.kind)

    if layout is None:
        return full
    header, skips, kinds = layout
    start = len(header)

    def read(data: bytes) -> TimerFields | None:
        if not data.startswith(header):
            return full(data)
        try:
            pos = start
            for length_prefixed in skips:
                value = data[pos]
                if value < 0x80:  # a one-byte varint: almost every field
                    pos += 1
                else:
                    value, pos = _varint(data, pos)
                if length_prefixed:
                    if value & 1:
                        raise _Unreadable("negative length")
                    pos += value >> 1
            branch = data[pos]
            if branch == 0:  # union branch 0: null
                return None
            if branch != 2:  # zig-zag 1: the Timer record
                raise _Unreadable(f"union branch {branch}")
            length = data[pos + 1]
            if length < 0x80:
                pos += 2
            else:
                length, pos = _varint(data, pos + 1)
            end = pos + (length >> 1)
            if length & 1 or end > len(data):
                raise _Unreadable("bad token length")
            token = data[pos:end]
            token.decode()  # must be UTF-8, as for the full decode
            due = shift = 0
            while True:  # the due time: an epoch-ms long takes six bytes, so inline
                byte = data[end]
                end += 1
                due |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            if shift > 63:
                raise _Unreadable("varint longer than 10 bytes")
            kind = data[end]
            if kind & 1 or kind >> 1 >= len(kinds):  # one byte: a small non-negative index
                raise _Unreadable(f"timer kind {kind}")
            return (due >> 1) ^ -(due & 1), token, kinds[kind >> 1]
        except (IndexError, ValueError):  # _Unreadable, UnicodeDecodeError: let the codec say
            return full(data)

    return read


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The raw (still zig-zag encoded) varint at ``pos``, and the position after it."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Unreadable("varint longer than 10 bytes")


@functools.lru_cache(maxsize=8)
def _layout(catalog: SchemaCatalog) -> _Layout | None:
    current = catalog.current(RecordType.SAGA_STATE)
    skips: list[bool] = []
    for field in current.schema["fields"]:
        if field["name"] == "timer":
            kinds = _timer_kinds(field["type"])
            return None if kinds is None else _Layout(current.header, tuple(skips), kinds)
        kind = _kind(field["type"])
        if kind is None:
            return None
        skips.append(kind)
    return None


def _kind(avro_type: Any) -> bool | None:
    """True for a length-prefixed type, False for a varint, None for anything else."""
    if isinstance(avro_type, Mapping):
        return False if avro_type.get("type") == "enum" else None
    if avro_type in _LENGTH:
        return True
    return False if avro_type in _VARINT else None


def _timer_kinds(avro_type: Any) -> tuple[TimerKind, ...] | None:
    """The TimerKind symbols if ``avro_type`` is ``["null", Timer(token, due_ms, kind)]``."""
    if not (isinstance(avro_type, list) and len(avro_type) == 2 and avro_type[0] == "null"):
        return None
    record = avro_type[1]
    if not isinstance(record, Mapping) or record.get("type") != "record":
        return None
    shape = [(f["name"], f["type"]) for f in record["fields"]]
    if len(shape) != 3 or shape[0] != ("token", "string") or shape[1] != ("due_ms", "long"):
        return None
    name, kind = shape[2]
    if name != "kind" or not isinstance(kind, Mapping) or kind.get("type") != "enum":
        return None
    try:
        return tuple(TimerKind[symbol] for symbol in kind["symbols"])
    except KeyError:
        return None
