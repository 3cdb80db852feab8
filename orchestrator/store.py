"""The replica's local materialization of *committed* saga state: one job, one rule.

Its one job: keep, per inbox/state partition, the fold of the committed ``ksaga.state`` records up
to a checkpoint (the next state-topic offset to read), plus the due-time index of the pending
timers of those states, so the loop can look states up without reading Kafka and the timer scan can
find what is due.

What it must never do: hold data of an open or aborted transaction. The loop calls ``apply`` with a
batch's overlay only *after* ``commit_transaction`` returns, never before (invariant I2 of
``exactly-once.md``); on abort the overlay is dropped and the store is not touched. So the store
never needs a wipe after a crash: at worst it lags, and restore catches up from its checkpoint.

Invariants every implementation keeps (one contract suite, ``tests/unit/test_store.py``):

* ``apply`` is all or nothing: states, tombstones, index entries and checkpoints of one
  ``StoreBatch`` become visible together (RocksDB: one ``WriteBatch``).
* I3: the due-time index equals the pending timers of the stored states. ``apply`` removes the
  previous index entry of a saga whose timer changed or which was deleted; ``wipe_partition``
  removes the partition's states, index entries and checkpoint together.
* Everything is per partition, so one partition can be wiped, rebuilt or verified alone.

Restore writes through a ``RestoreWriter`` instead of ``apply``: it takes the state topic's
records as they are (key and encoded value, never decoded: the timer for the index is read from
the bytes, ``statepeek``) and makes them durable in bulk. Its rule is the one that makes a
checkpoint trustworthy: ``commit(offset)`` first makes every record applied so far durable, and
only then writes the checkpoint, so a checkpoint is never durable ahead of the states it covers.
Records applied after the last commit may be lost by a crash or may survive; either way they are
at or after the checkpoint, and the next restore replays them from there.

``MemorySagaStore`` is the in-memory twin with the same behaviour, for unit tests of the loop.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

from rocksdict import (
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from orchestrator.core import SagaState
from orchestrator.lifecycle import ClosedOnExit
from orchestrator.statepeek import timer_reader
from orchestrator.wire import decode_state, encode_state

__all__ = [
    "STORE_FORMAT_VERSION",
    "DueTimer",
    "MemorySagaStore",
    "RestoreWriter",
    "RocksSagaStore",
    "SagaStore",
    "StoreBatch",
    "StoreMeta",
]

STORE_FORMAT_VERSION = 1
"""Bump when the key layout or value encoding changes: restore wipes a store of another version."""

MAX_PARTITION = 99_999  # keys hold the partition in five digits
MAX_DUE_MS = 10**20 - 1  # keys hold the due time in twenty digits


# --------------------------------------------------------------------------- values


class DueTimer(NamedTuple):
    """One entry of the due-time index: saga ``saga_id`` waits on ``token`` until ``due_ms``."""

    due_ms: int
    saga_id: str
    token: str


@dataclass(frozen=True, slots=True)
class StoreMeta:
    """What the store was built for; restore wipes it when any field differs from the config."""

    format_version: int
    state_topic: str
    partitions: int

    def to_bytes(self) -> bytes:
        record = {
            "format_version": self.format_version,
            "state_topic": self.state_topic,
            "partitions": self.partitions,
        }
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> StoreMeta:
        record = json.loads(data)
        return cls(
            format_version=int(record["format_version"]),
            state_topic=str(record["state_topic"]),
            partitions=int(record["partitions"]),
        )


@dataclass(frozen=True, slots=True)
class StoreBatch:
    """The committed effect of one Kafka transaction (or one restore chunk) on the store.

    ``puts`` are (partition, new state), ``deletes`` are (partition, saga id) tombstones, and
    ``checkpoints`` are (partition, next state-topic offset to read). ``encoded`` may hold, by
    saga id, a put state's bytes as the loop already encoded them for ``ksaga.state`` (the same
    encoding), so a committed state is encoded once, not twice. A saga appears at most once
    (the loop's overlay already holds each saga's last state), and a partition at most once in
    ``checkpoints``; a batch that breaks this is a programming error and raises ``ValueError``
    when it is built, before anything is written.
    """

    puts: tuple[tuple[int, SagaState], ...] = ()
    deletes: tuple[tuple[int, str], ...] = ()
    checkpoints: tuple[tuple[int, int], ...] = ()
    encoded: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        saga_ids = [s.saga_id for _, s in self.puts] + [saga_id for _, saga_id in self.deletes]
        for saga_id in saga_ids:
            if saga_id in seen:
                raise ValueError(f"saga {saga_id!r} appears twice in one StoreBatch")
            seen.add(saga_id)
        for partition, state in self.puts:
            _check_partition(partition)
            if state.timer is not None and not 0 <= state.timer.due_ms <= MAX_DUE_MS:
                raise ValueError(f"timer due_ms {state.timer.due_ms} of {state.saga_id!r}")
        for partition, _ in self.deletes:
            _check_partition(partition)
        partitions = [p for p, _ in self.checkpoints]
        if len(set(partitions)) != len(partitions):
            raise ValueError(f"a partition appears twice in checkpoints {self.checkpoints}")
        for partition, offset in self.checkpoints:
            _check_partition(partition)
            if offset < 0:
                raise ValueError(f"checkpoint offset {offset} of partition {partition} < 0")

    @classmethod
    def of(
        cls,
        puts: Iterable[tuple[int, SagaState]] = (),
        deletes: Iterable[tuple[int, str]] = (),
        checkpoints: Mapping[int, int] | None = None,
        encoded: Mapping[str, bytes] | None = None,
    ) -> StoreBatch:
        return cls(
            tuple(puts),
            tuple(deletes),
            tuple(sorted((checkpoints or {}).items())),
            encoded or {},
        )


def _check_partition(partition: int) -> None:
    if not 0 <= partition <= MAX_PARTITION:
        raise ValueError(f"partition {partition} outside 0..{MAX_PARTITION}")


# --------------------------------------------------------------------------- interface


class RestoreWriter(Protocol):
    """Restore's way into one partition of a store; nothing else writes the partition meanwhile.

    ``records`` are ``ksaga.state`` records in log order: (key, value) with the saga id's UTF-8
    bytes as key and an encoded ``SagaState`` as value, or None for a tombstone. The effect is
    that of applying them one by one (a saga may appear several times). The key must be the
    value's saga id, as in every record the loop writes: the in-memory twin checks it, RocksDB,
    which does not decode the value, trusts it.
    """

    def apply(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Apply records; atomic per call, but not durable until ``commit``."""
        ...

    def commit(self, checkpoint: int) -> None:
        """Make everything applied durable, then record ``checkpoint``: never the reverse."""
        ...


class SagaStore(Protocol):
    """Committed saga states per partition, their due-time index and checkpoints.

    Reads take the partition too: states are keyed per partition (so a partition can be wiped
    or verified alone), and the caller always knows it (the record's inbox partition).
    """

    def get(self, partition: int, saga_id: str) -> SagaState | None: ...

    def get_many(self, partition: int, saga_ids: Sequence[str]) -> dict[str, SagaState]:
        """The stored states of ``saga_ids`` (absent ones are left out), in one multi-get."""
        ...

    def apply(self, batch: StoreBatch) -> None:
        """Write a committed batch atomically; keep the index equal to the pending timers."""
        ...

    def checkpoint(self, partition: int) -> int | None:
        """The next state-topic offset to read for ``partition``; None when never written."""
        ...

    def due_timers(self, partition: int, until_ms: int, limit: int) -> list[DueTimer]:
        """Index entries with ``due_ms <= until_ms``, by (due_ms, saga_id), at most ``limit``."""
        ...

    def states(self, partition: int) -> Iterator[SagaState]:
        """Every stored state of ``partition`` by saga id (inspection and verification)."""
        ...

    def wipe_partition(self, partition: int) -> None:
        """Drop the partition's states, index entries and checkpoint, atomically."""
        ...

    def restore_writer(self, partition: int) -> RestoreWriter:
        """A writer for restore's records of ``partition`` (see ``RestoreWriter``)."""
        ...

    def get_meta(self) -> StoreMeta | None: ...

    def set_meta(self, meta: StoreMeta) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- in memory


class MemorySagaStore(ClosedOnExit):
    """The in-memory twin of ``RocksSagaStore``: same contract, nothing on disk."""

    def __init__(self) -> None:
        self._states: dict[int, dict[str, SagaState]] = {}
        self._index: dict[int, dict[tuple[int, str], str]] = {}
        self._checkpoints: dict[int, int] = {}
        self._meta: StoreMeta | None = None

    def get(self, partition: int, saga_id: str) -> SagaState | None:
        return self._states.get(partition, {}).get(saga_id)

    def get_many(self, partition: int, saga_ids: Sequence[str]) -> dict[str, SagaState]:
        states = self._states.get(partition, {})
        return {s: states[s] for s in saga_ids if s in states}

    def apply(self, batch: StoreBatch) -> None:
        for partition, state in batch.puts:
            self._forget_timer(partition, state.saga_id)
            self._states.setdefault(partition, {})[state.saga_id] = state
            if state.timer is not None:
                index = self._index.setdefault(partition, {})
                index[(state.timer.due_ms, state.saga_id)] = state.timer.token
        for partition, saga_id in batch.deletes:
            self._forget_timer(partition, saga_id)
            self._states.get(partition, {}).pop(saga_id, None)
        self._checkpoints.update(batch.checkpoints)

    def _forget_timer(self, partition: int, saga_id: str) -> None:
        old = self._states.get(partition, {}).get(saga_id)
        if old is not None and old.timer is not None:
            self._index.get(partition, {}).pop((old.timer.due_ms, saga_id), None)

    def checkpoint(self, partition: int) -> int | None:
        return self._checkpoints.get(partition)

    def due_timers(self, partition: int, until_ms: int, limit: int) -> list[DueTimer]:
        due = sorted(
            (k, token) for k, token in self._index.get(partition, {}).items() if k[0] <= until_ms
        )
        return [DueTimer(due_ms, saga_id, token) for (due_ms, saga_id), token in due[:limit]]

    def states(self, partition: int) -> Iterator[SagaState]:
        states = dict(self._states.get(partition, {}))
        return iter([states[s] for s in sorted(states)])

    def wipe_partition(self, partition: int) -> None:
        self._states.pop(partition, None)
        self._index.pop(partition, None)
        self._checkpoints.pop(partition, None)

    def restore_writer(self, partition: int) -> RestoreWriter:
        _check_partition(partition)
        return _MemoryRestoreWriter(self, partition)

    def get_meta(self) -> StoreMeta | None:
        return self._meta

    def set_meta(self, meta: StoreMeta) -> None:
        self._meta = meta

    def close(self) -> None:
        pass


class _MemoryRestoreWriter:
    def __init__(self, store: MemorySagaStore, partition: int) -> None:
        self._store = store
        self._partition = partition

    def apply(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        p = self._partition
        batches = [
            StoreBatch.of(deletes=[(p, key.decode())])
            if value is None
            else StoreBatch.of([(p, _keyed(key, decode_state(value)))])
            for key, value in records
        ]
        for batch in batches:
            self._store.apply(batch)

    def commit(self, checkpoint: int) -> None:
        self._store.apply(StoreBatch.of(checkpoints={self._partition: checkpoint}))


def _keyed(key: bytes, state: SagaState) -> SagaState:
    """``state``, checked to be the one its record's key names (a Kafka key is the saga id)."""
    if state.saga_id.encode() != key:
        raise ValueError(f"state of {state.saga_id!r} under the key {key!r}")
    return state


# --------------------------------------------------------------------------- RocksDB
#
# Key layout (raw mode: keys and values are plain bytes, ordered bytewise):
#   states       b"{partition:05d}|{saga_id}"                  -> an encoded SagaState: apply's
#                                                                  encode_state, or restore's
#                                                                  record value as it was read
#   timers       b"{partition:05d}|{due_ms:020d}|{saga_id}"    -> token (UTF-8)
#   checkpoints  b"{partition:05d}"                            -> next offset (ASCII decimal)
#   meta         b"meta"                                       -> StoreMeta JSON
# The fixed-width prefix makes a partition one contiguous key range (wipe = delete_range), and
# the fixed-width due time makes the timers of a partition sorted by due time, then saga id.

_STATES, _TIMERS, _CHECKPOINTS, _META = "states", "timers", "checkpoints", "meta"
_COLUMN_FAMILIES = (_STATES, _TIMERS, _CHECKPOINTS, _META)
_META_KEY = b"meta"


def _prefix(partition: int) -> bytes:
    return b"%05d|" % partition


def _prefix_end(partition: int) -> bytes:
    return b"%05d}" % partition  # "}" is the byte after "|": the end of the partition's range


def _state_key(partition: int, saga_id: str) -> bytes:
    return _prefix(partition) + saga_id.encode()


def _timer_key(partition: int, due_ms: int, saga_id: str) -> bytes:
    return b"%05d|%020d|" % (partition, due_ms) + saga_id.encode()


def _checkpoint_key(partition: int) -> bytes:
    return b"%05d" % partition


def _as_bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"rocksdict returned {type(value).__name__}, expected bytes (raw mode)")
    return value


def _open_options(
    *, raw: bool, cache: Cache | None, write_buffer_bytes: int, bloom: bool = False
) -> Options:
    options = Options(raw_mode=raw)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    table = BlockBasedOptions()
    if cache is not None:
        table.set_block_cache(cache)
    table.set_cache_index_and_filter_blocks(True)  # index and filters count against the cache
    if bloom:
        table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(write_buffer_bytes)
    options.set_max_write_buffer_number(2)
    options.set_compression_type(DBCompressionType.lz4())
    return options


class RocksSagaStore(ClosedOnExit):
    """``SagaStore`` in one RocksDB (rocksdict, raw mode), one column family per kind of key.

    Memory is bounded: one LRU block cache of ``block_cache_bytes`` shared by every column family
    (index and filter blocks included), and memtables capped at ``write_buffer_bytes`` in total
    (per column family at most half of it, two memtables each).

    Durability: each ``apply`` is one ``WriteBatch`` written with ``sync=False``. The write-ahead
    log makes a batch atomic on a process kill (kill -9 leaves either all of it or none, and
    nothing acknowledged is lost, since the WAL is in the OS page cache; a test confirms it). A
    machine crash or power loss may drop the tail of the WAL: the store then holds an older
    committed prefix with its matching (older) checkpoint, which restore catches up from Kafka.
    Never a torn batch, never an uncommitted record.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        block_cache_bytes: int = 64 * 1024 * 1024,
        write_buffer_bytes: int = 16 * 1024 * 1024,
        state_cache_entries: int = 20_000,
    ) -> None:
        self.path = Path(path)
        # Decoded committed states, most recently used last: a saga is read and rewritten a few
        # times within seconds, so the hot path skips RocksDB and Avro. Only ``apply`` and reads
        # of this store fill it, so it never differs from the DB. Bounded by entries.
        self._cache: OrderedDict[bytes, SagaState] = OrderedDict()
        # partition -> a due time no live timer of it is below (see due_timers); absent: 0
        self._timer_floor: dict[int, int] = {}
        self._cache_entries = state_cache_entries
        cache = Cache(block_cache_bytes)
        per_cf = max(write_buffer_bytes // 2, 1024 * 1024)
        db_options = _open_options(raw=True, cache=cache, write_buffer_bytes=per_cf)
        db_options.set_db_write_buffer_size(write_buffer_bytes)
        # Rarely written column families (meta) pin old WAL files until they are flushed:
        # cap the WAL so RocksDB flushes them instead.
        db_options.set_max_total_wal_size(4 * write_buffer_bytes)
        db_options.set_keep_log_file_num(3)
        column_families = {
            name: _open_options(
                raw=True, cache=cache, write_buffer_bytes=per_cf, bloom=name == _STATES
            )
            for name in _COLUMN_FAMILIES
        }
        self._db: Any = Rdict(str(self.path), db_options, column_families=column_families)
        # Column-family views and handles keep the DB open: close() must drop every one of them.
        self._cf: dict[str, Any] = {n: self._db.get_column_family(n) for n in _COLUMN_FAMILIES}
        self._handle: dict[str, Any] = {
            n: self._db.get_column_family_handle(n) for n in _COLUMN_FAMILIES
        }
        self._write_options: Any = WriteOptions()
        self._write_options.sync = False

    # -- reads

    def get(self, partition: int, saga_id: str) -> SagaState | None:
        key = _state_key(partition, saga_id)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        value = self._cf[_STATES].get(key)
        if value is None:
            return None
        state = decode_state(_as_bytes(value))
        self._remember(key, state)
        return state

    def get_many(self, partition: int, saga_ids: Sequence[str]) -> dict[str, SagaState]:
        keys = [_state_key(partition, s) for s in saga_ids]
        found = self._states_for(keys)
        return {s: found[k] for s, k in zip(saga_ids, keys, strict=True) if k in found}

    def _states_for(self, keys: list[bytes]) -> dict[bytes, SagaState]:
        """Cached states, and one multi-get (then decode) for the rest."""
        found = {k: self._cache[k] for k in keys if k in self._cache}
        missing = [k for k in keys if k not in found]
        for key, value in zip(missing, self._multi_get(_STATES, missing), strict=True):
            if value is not None:
                found[key] = decode_state(value)
        return found

    def _remember(self, key: bytes, state: SagaState) -> None:
        self._cache[key] = state
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    def _multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values = self._cf[cf].get(keys)
        return [None if v is None else _as_bytes(v) for v in values]

    def checkpoint(self, partition: int) -> int | None:
        value = self._cf[_CHECKPOINTS].get(_checkpoint_key(partition))
        return None if value is None else int(_as_bytes(value))

    def due_timers(self, partition: int, until_ms: int, limit: int) -> list[DueTimer]:
        """Seek + explicit stop (rocksdict's ReadOptions bounds are not raw-mode keys).

        The seek starts at the partition's floor, not at its first key: every timer a saga
        leaves is a deletion at the low end of the index, and a seek from the partition's first
        key stepped over all of those tombstones until a compaction dropped them, on every loop
        turn (a tenth of the loop's time in a profile of ``ksaga bench``). The floor is the due
        time of the first live entry the last scan met; ``apply`` lowers it for an earlier timer
        and a restore or wipe forgets it, so no live entry is ever below it.
        """
        out: list[DueTimer] = []
        if limit <= 0:
            return out
        prefix = _prefix(partition)
        floor = self._timer_floor.get(partition, 0)
        first: int | None = None
        for key, value in self._cf[_TIMERS].items(from_key=_timer_key(partition, floor, "")):
            raw_key = _as_bytes(key)
            if not raw_key.startswith(prefix):
                break
            due_ms = int(raw_key[6:26])
            if first is None:
                first = due_ms
            if due_ms > until_ms:
                break
            out.append(DueTimer(due_ms, raw_key[27:].decode(), _as_bytes(value).decode()))
            if len(out) >= limit:
                break
        self._timer_floor[partition] = MAX_DUE_MS if first is None else first
        return out

    def states(self, partition: int) -> Iterator[SagaState]:
        prefix = _prefix(partition)
        for key, value in self._cf[_STATES].items(from_key=prefix):
            if not _as_bytes(key).startswith(prefix):
                return
            yield decode_state(_as_bytes(value))

    def get_meta(self) -> StoreMeta | None:
        value = self._cf[_META].get(_META_KEY)
        return None if value is None else StoreMeta.from_bytes(_as_bytes(value))

    # -- writes

    def apply(self, batch: StoreBatch) -> None:
        states, timers = self._handle[_STATES], self._handle[_TIMERS]
        touched = [(p, s.saga_id) for p, s in batch.puts] + list(batch.deletes)
        old_states = self._states_for([_state_key(p, s) for p, s in touched])
        write = WriteBatch(raw_mode=True)
        # Previous index entries first: a put of the same key later in the batch wins.
        for partition, saga_id in touched:
            old = old_states.get(_state_key(partition, saga_id))
            if old is not None and old.timer is not None:
                write.delete(_timer_key(partition, old.timer.due_ms, saga_id), timers)
        encoded = batch.encoded
        floors = self._timer_floor
        for partition, state in batch.puts:
            value = encoded.get(state.saga_id)
            if value is None:
                value = encode_state(state)
            write.put(_state_key(partition, state.saga_id), value, states)
            if state.timer is not None:
                due_ms = state.timer.due_ms
                key = _timer_key(partition, due_ms, state.saga_id)
                write.put(key, state.timer.token.encode(), timers)
                if due_ms < floors.get(partition, 0):
                    floors[partition] = due_ms
        for partition, saga_id in batch.deletes:
            write.delete(_state_key(partition, saga_id), states)
        for partition, offset in batch.checkpoints:
            write.put(_checkpoint_key(partition), b"%d" % offset, self._handle[_CHECKPOINTS])
        self._db.write(write, self._write_options)
        for partition, state in batch.puts:
            self._remember(_state_key(partition, state.saga_id), state)
        for partition, saga_id in batch.deletes:
            self._cache.pop(_state_key(partition, saga_id), None)

    def wipe_partition(self, partition: int) -> None:
        start, end = _prefix(partition), _prefix_end(partition)
        self._forget_partition(partition)
        write = WriteBatch(raw_mode=True)
        write.delete_range(start, end, self._handle[_STATES])
        write.delete_range(start, end, self._handle[_TIMERS])
        write.delete(_checkpoint_key(partition), self._handle[_CHECKPOINTS])
        self._db.write(write, self._write_options)

    def restore_writer(self, partition: int) -> RestoreWriter:
        _check_partition(partition)
        self._timer_floor.pop(partition, None)  # the restore writes timers of any due time
        return _RocksRestoreWriter(self, partition)

    def _forget_partition(self, partition: int) -> None:
        """Drop the decoded states of ``partition`` from the LRU, and its timer floor."""
        self._timer_floor.pop(partition, None)
        start = _prefix(partition)
        for key in [k for k in self._cache if k.startswith(start)]:
            del self._cache[key]

    def _flush(self, *names: str) -> None:
        for name in names:
            self._cf[name].flush(True)

    def set_meta(self, meta: StoreMeta) -> None:
        write = WriteBatch(raw_mode=True)
        write.put(_META_KEY, meta.to_bytes(), self._handle[_META])
        self._db.write(write, self._write_options)

    def close(self) -> None:
        """Close the DB (idempotent). Every column-family view and handle must go first."""
        if self._db is None:
            return
        for view in self._cf.values():
            view.close()
        self._cf.clear()
        self._handle.clear()
        self._db.close()
        self._db = None


class _RocksRestoreWriter:
    """Bulk restore into one partition of a ``RocksSagaStore``.

    Fast because it does only what the bytes require: the value is stored as read from the
    topic (no decode, no re-encode), the index entry comes from ``state_timer``, and a saga's
    previous index entries are known from a map built once from the partition's index (the
    index is exactly the pending timers of the stored states, I3), so no stored state is read.

    ``apply`` writes one WriteBatch without the write-ahead log: a crash loses whatever of it is
    still in a memtable, and with several column families flushed independently it may keep the
    states of a batch and lose its index entries (or the reverse). That is safe because the
    checkpoint is not in those batches: ``commit`` flushes the states and timers column families
    (the SST files are synced before ``flush`` returns), and only then writes the checkpoint, in
    a WriteBatch with the log, like ``apply``. So whatever a crash leaves, every record before
    the checkpoint is in the store, and anything torn lies after it: the next restore starts at
    the checkpoint and applies those records again, which repairs them, because applying a
    saga's record removes *every* index entry the map has for that saga, whatever state the
    stored one is in. The map is valid while nothing else writes the partition (the loop does
    not write a partition until its restore has finished).
    """

    def __init__(self, store: RocksSagaStore, partition: int) -> None:
        self._store = store
        self._prefix = _prefix(partition)
        self._partition = partition
        store._forget_partition(partition)  # and nothing reads the partition until it is done
        self._timers: dict[bytes, list[bytes]] = {}
        for key in store._cf[_TIMERS].keys(from_key=self._prefix):
            raw = _as_bytes(key)
            if not raw.startswith(self._prefix):
                break
            self._timers.setdefault(raw[27:], []).append(raw)
        self._timer_of = timer_reader()
        self._no_log = cast(Any, WriteOptions())  # the stub calls disable_wal a method
        self._no_log.disable_wal = True
        self._unflushed = False

    def apply(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        store = self._store
        states, timers = store._handle[_STATES], store._handle[_TIMERS]
        index, prefix, timer_of = self._timers, self._prefix, self._timer_of
        write = WriteBatch(raw_mode=True)
        for saga_id, value in records:
            old = index.pop(saga_id, None)
            if old is not None:
                for timer_key in old:
                    write.delete(timer_key, timers)
            if value is None:
                write.delete(prefix + saga_id, states)
                continue
            write.put(prefix + saga_id, value, states)
            timer = timer_of(value)
            if timer is not None:
                due_ms, token, _kind = timer
                if not 0 <= due_ms <= MAX_DUE_MS:
                    raise ValueError(f"timer due_ms {due_ms} of {saga_id!r}")
                timer_key = b"%s%020d|%s" % (prefix, due_ms, saga_id)
                write.put(timer_key, token, timers)
                index[saga_id] = [timer_key]
        store._db.write(write, self._no_log)
        self._unflushed = True

    def commit(self, checkpoint: int) -> None:
        if checkpoint < 0:
            raise ValueError(f"checkpoint offset {checkpoint} of partition {self._partition} < 0")
        if self._unflushed:
            self._store._flush(_STATES, _TIMERS)
            self._unflushed = False
        self._store.apply(StoreBatch.of(checkpoints={self._partition: checkpoint}))
