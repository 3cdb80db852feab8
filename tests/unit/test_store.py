"""The store contract, run against every implementation, plus the two properties restore needs.

* One contract suite over ``MemorySagaStore`` and ``RocksSagaStore``.
* A Hypothesis state machine applying random batches, wipes and reopens to both stores and a
  plain dict model: all three stay equal, and the due-time index equals the pending timers of
  the stored states (I3).
* kill -9 during a loop of ``apply`` calls never leaves a torn batch, and loses nothing that
  ``apply`` acknowledged (``sync=False``, process kill only).
* Restore's writer (raw records, no write-ahead log until ``commit``) has the same effect as
  ``apply``; and whatever a kill -9 in the middle of a restore leaves, a restore resumed from
  the checkpoint yields exactly the fold of the log.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from orchestrator.core import Action, SagaState, SagaStatus, Timer, TimerKind
from orchestrator.errors import KsagaError
from orchestrator.restore import _records
from orchestrator.store import (
    STORE_FORMAT_VERSION,
    DueTimer,
    MemorySagaStore,
    RocksSagaStore,
    SagaStore,
    StoreBatch,
    StoreMeta,
)
from orchestrator.wire import encode_state

ROOT = Path(__file__).resolve().parents[2]
# A tiny state cache, so the suites run through cache hits, misses and evictions alike.
SMALL = {"block_cache_bytes": 4 << 20, "write_buffer_bytes": 2 << 20, "state_cache_entries": 3}


def state(saga_id: str, version: int = 1, timer: Timer | None = None) -> SagaState:
    return SagaState(
        saga_id=saga_id,
        saga_type="test",
        status=SagaStatus.RUNNING,
        data=b"payload-" + saga_id.encode(),
        step=0,
        action=Action.DO,
        attempt=1,
        timer=timer,
        completed=(),
        to_compensate=(),
        failure=None,
        version=version,
        started_ms=0,
        updated_ms=version,
    )


def timer(due_ms: int, token: str = "tok") -> Timer:
    return Timer(token, due_ms, TimerKind.TIMEOUT)


def open_rocks(path: Path) -> RocksSagaStore:
    return RocksSagaStore(path, **SMALL)


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SagaStore]:
    made: SagaStore = MemorySagaStore() if request.param == "memory" else open_rocks(tmp_path)
    yield made
    made.close()


# --------------------------------------------------------------------------- contract


def test_put_get_get_many(store: SagaStore) -> None:
    assert store.get(0, "a") is None
    assert store.get_many(0, []) == {}
    a, b = state("a", timer=timer(5)), state("b", version=7)
    store.apply(StoreBatch.of([(0, a), (0, b)]))
    assert store.get(0, "a") == a
    assert store.get(1, "a") is None  # states live per partition
    assert store.get_many(0, ["b", "missing", "a"]) == {"a": a, "b": b}
    a2 = replace(a, version=2, timer=None)
    store.apply(StoreBatch.of([(0, a2)]))
    assert store.get(0, "a") == a2
    assert list(store.states(0)) == [a2, b]


def test_delete(store: SagaStore) -> None:
    store.apply(StoreBatch.of([(0, state("a", timer=timer(5))), (0, state("b"))]))
    store.apply(StoreBatch.of(deletes=[(0, "a"), (0, "never-stored")]))
    assert store.get(0, "a") is None
    assert [s.saga_id for s in store.states(0)] == ["b"]
    assert store.due_timers(0, 10**12, 100) == []


def test_checkpoints_per_partition(store: SagaStore) -> None:
    assert store.checkpoint(0) is None
    store.apply(StoreBatch.of(checkpoints={0: 10, 3: 4}))
    store.apply(StoreBatch.of([(0, state("a"))], checkpoints={0: 11}))
    assert (store.checkpoint(0), store.checkpoint(3), store.checkpoint(1)) == (11, 4, None)


def test_due_timers_order_limit_until(store: SagaStore) -> None:
    dues = {"c": 30, "a": 10, "b": 10, "d": 40, "e": 5}
    store.apply(StoreBatch.of([(1, state(s, timer=timer(d, f"t-{s}"))) for s, d in dues.items()]))
    store.apply(StoreBatch.of([(2, state("other", timer=timer(1)))]))
    assert store.due_timers(1, 10**12, 100) == [
        DueTimer(5, "e", "t-e"),
        DueTimer(10, "a", "t-a"),
        DueTimer(10, "b", "t-b"),
        DueTimer(30, "c", "t-c"),
        DueTimer(40, "d", "t-d"),
    ]
    assert [t.saga_id for t in store.due_timers(1, 10, 100)] == ["e", "a", "b"]  # inclusive
    assert [t.saga_id for t in store.due_timers(1, 9, 100)] == ["e"]
    assert [t.saga_id for t in store.due_timers(1, 10**12, 2)] == ["e", "a"]
    assert store.due_timers(1, 4, 100) == []
    assert store.due_timers(1, 100, 0) == []
    assert store.due_timers(0, 100, 10) == []


def test_a_timer_earlier_than_any_scanned_is_still_found(store: SagaStore) -> None:
    """The RocksDB store seeks from a floor its last scan learnt; an earlier timer lowers it."""
    store.apply(StoreBatch.of([(0, state("a", timer=timer(50))), (0, state("b", timer=timer(60)))]))
    assert [t.saga_id for t in store.due_timers(0, 10, 10)] == []  # floor now 50
    store.apply(StoreBatch.of([(0, state("a", 2, timer(70)))]))  # the first entry goes
    assert [t.saga_id for t in store.due_timers(0, 100, 10)] == ["b", "a"]
    store.apply(StoreBatch.of([(0, state("c", timer=timer(5)))]))  # below the floor
    assert [t.saga_id for t in store.due_timers(0, 10, 10)] == ["c"]
    store.apply(StoreBatch.of(deletes=[(0, "a"), (0, "b"), (0, "c")]))
    assert store.due_timers(0, 10**12, 10) == []  # an empty partition: floor at the top
    store.apply(StoreBatch.of([(0, state("d", timer=timer(1)))]))
    assert store.due_timers(0, 10**12, 10) == [DueTimer(1, "d", "tok")]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from("abcdef"), st.one_of(st.none(), st.integers(0, 40)), st.integers(0, 40)
        ),
        max_size=40,
    )
)
def test_due_timers_equal_a_full_scan_whatever_was_armed_and_removed(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int | None, int]]
) -> None:
    rocks = open_rocks(tmp_path_factory.mktemp("floor"))
    memory = MemorySagaStore()
    try:
        for version, (saga_id, due, until) in enumerate(steps, start=1):
            put = state(saga_id, version, None if due is None else timer(due))
            for made in (rocks, memory):
                made.apply(StoreBatch.of([(2, put)]))
            assert rocks.due_timers(2, until, 100) == memory.due_timers(2, until, 100)
    finally:
        rocks.close()


def test_index_follows_timer_changes_and_deletes(store: SagaStore) -> None:
    store.apply(StoreBatch.of([(0, state("a", timer=timer(10, "x"))), (0, state("b"))]))
    store.apply(StoreBatch.of([(0, state("a", 2, timer(20, "y"))), (0, state("b", 2, timer(5)))]))
    assert store.due_timers(0, 100, 10) == [DueTimer(5, "b", "tok"), DueTimer(20, "a", "y")]
    # Same due time, new token: the entry is replaced, not duplicated.
    store.apply(StoreBatch.of([(0, state("a", 3, timer(20, "z")))]))
    assert store.due_timers(0, 100, 10) == [DueTimer(5, "b", "tok"), DueTimer(20, "a", "z")]
    store.apply(StoreBatch.of([(0, state("a", 4, None))], deletes=[(0, "b")]))
    assert store.due_timers(0, 100, 10) == []


def test_wipe_partition_touches_only_that_partition(store: SagaStore) -> None:
    for p in (0, 1, 2):
        store.apply(
            StoreBatch.of(
                [(p, state(f"s{p}", timer=timer(p))), (p, state(f"u{p}"))], checkpoints={p: 100 + p}
            )
        )
    store.wipe_partition(1)
    assert list(store.states(1)) == []
    assert store.due_timers(1, 100, 10) == []
    assert store.checkpoint(1) is None
    for p in (0, 2):
        assert [s.saga_id for s in store.states(p)] == [f"s{p}", f"u{p}"]
        assert store.due_timers(p, 100, 10) == [DueTimer(p, f"s{p}", "tok")]
        assert store.checkpoint(p) == 100 + p
    store.apply(StoreBatch.of([(1, state("s1", 2))], checkpoints={1: 7}))  # usable after a wipe
    assert store.get(1, "s1") == state("s1", 2)
    assert store.checkpoint(1) == 7


def raw(s: SagaState) -> tuple[bytes, bytes]:
    return s.saga_id.encode(), encode_state(s)


def test_restore_writer_has_the_effect_of_applying_the_records_in_order(store: SagaStore) -> None:
    store.apply(StoreBatch.of([(1, state("a", 1, timer(10, "x"))), (1, state("b", 1, timer(7)))]))
    store.apply(StoreBatch.of([(2, state("z", 1, timer(3)))], checkpoints={2: 5}))
    writer = store.restore_writer(1)
    writer.apply(
        [
            raw(state("a", 2, timer(20, "y"))),  # a's old entry (10) must go
            raw(state("c", 1, timer(20, "c1"))),
            (b"b", None),  # tombstone: b and its entry (7) go
            raw(state("c", 2, timer(30, "c2"))),  # twice in one call: the later one wins
        ]
    )
    writer.apply([raw(state("a", 3)), raw(state("d", 1, timer(1, "d")))])  # a: no timer now
    writer.commit(42)
    assert [s.saga_id for s in store.states(1)] == ["a", "c", "d"]
    assert store.get(1, "a") == state("a", 3)
    assert store.get(1, "c") == state("c", 2, timer(30, "c2"))
    assert store.due_timers(1, 10**12, 100) == [DueTimer(1, "d", "d"), DueTimer(30, "c", "c2")]
    assert store.checkpoint(1) == 42
    # Other partitions are untouched.
    assert [s.saga_id for s in store.states(2)] == ["z"]
    assert store.due_timers(2, 10**12, 100) == [DueTimer(3, "z", "tok")]
    assert store.checkpoint(2) == 5
    # apply works on what the writer wrote (the old index entry is found from the raw bytes).
    store.apply(StoreBatch.of([(1, state("c", 3))]))
    assert store.due_timers(1, 10**12, 100) == [DueTimer(1, "d", "d")]


def test_restore_writer_refuses_what_apply_refuses(store: SagaStore) -> None:
    with pytest.raises(ValueError, match="partition"):
        store.restore_writer(-1)
    writer = store.restore_writer(0)
    with pytest.raises(ValueError, match="offset"):
        writer.commit(-1)
    with pytest.raises(ValueError, match="due_ms"):
        writer.apply([raw(state("a", timer=timer(-5)))])


def test_meta_round_trip(store: SagaStore) -> None:
    assert store.get_meta() is None
    meta = StoreMeta(STORE_FORMAT_VERSION, "ksaga.state", 32)
    store.set_meta(meta)
    assert store.get_meta() == meta
    store.set_meta(replace(meta, partitions=8))
    assert store.get_meta() == replace(meta, partitions=8)


def test_invalid_batches_raise_before_writing() -> None:
    with pytest.raises(ValueError, match="twice"):
        StoreBatch.of([(0, state("a"))], deletes=[(0, "a")])
    with pytest.raises(ValueError, match="twice"):
        StoreBatch(checkpoints=((0, 1), (0, 2)))
    with pytest.raises(ValueError, match="partition"):
        StoreBatch.of([(-1, state("a"))])
    with pytest.raises(ValueError, match="due_ms"):
        StoreBatch.of([(0, state("a", timer=timer(-1)))])
    with pytest.raises(ValueError, match="offset"):
        StoreBatch.of(checkpoints={0: -1})


def test_rocks_reopen_keeps_everything(tmp_path: Path) -> None:
    meta = StoreMeta(STORE_FORMAT_VERSION, "ksaga.state", 4)
    a, b = state("a", 3, timer(50, "ta")), state("ü-b", 1)
    with open_rocks(tmp_path) as store:
        store.apply(StoreBatch.of([(2, a), (3, b)], checkpoints={2: 9, 3: 1}))
        store.set_meta(meta)
    with open_rocks(tmp_path) as store:
        assert store.get(2, "a") == a
        assert store.get(3, "ü-b") == b
        assert (store.checkpoint(2), store.checkpoint(3)) == (9, 1)
        assert store.due_timers(2, 100, 10) == [DueTimer(50, "a", "ta")]
        assert store.get_meta() == meta
        store.close()  # idempotent with the context manager's close


def _rocksdb_options(path: Path) -> dict[str, dict[str, str]]:
    """The sections of the newest OPTIONS file RocksDB wrote: what it really runs with."""
    text = max(path.glob("OPTIONS-*")).read_text()
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip(), {})
        elif "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition("=")
            current[key] = value
    return sections


def test_rocks_memory_is_bounded_by_the_settings(tmp_path: Path) -> None:
    """KSAGA_BLOCK_CACHE_MB and KSAGA_WRITE_BUFFER_MB are what RocksDB runs with: one block
    cache for every column family (index and filter blocks in it), memtables of half the write
    buffer per column family, two at most, and the total capped by the write buffer."""
    with RocksSagaStore(tmp_path, block_cache_bytes=24 << 20, write_buffer_bytes=6 << 20) as rocks:
        for name in ("states", "timers", "checkpoints", "meta"):
            view = rocks._cf[name]
            assert view.property_int_value("rocksdb.block-cache-capacity") == 24 << 20
        options = _rocksdb_options(tmp_path)
    assert options["[DBOptions]"]["db_write_buffer_size"] == str(6 << 20)
    for name in ("states", "timers", "checkpoints", "meta"):
        assert options[f'[CFOptions "{name}"]']["write_buffer_size"] == str(3 << 20)
        assert options[f'[CFOptions "{name}"]']["max_write_buffer_number"] == "2"
        table = options[f'[TableOptions/BlockBasedTable "{name}"]']
        assert table["cache_index_and_filter_blocks"] == "true"


def test_the_decoded_state_cache_holds_at_most_its_entries(tmp_path: Path) -> None:
    with open_rocks(tmp_path) as rocks:  # state_cache_entries=3
        rocks.apply(StoreBatch.of([(0, state(f"s{i}")) for i in range(10)]))
        for i in range(10):
            assert rocks.get(0, f"s{i}") == state(f"s{i}")
        assert len(rocks._cache) == 3


# --------------------------------------------------------------------------- property

SAGAS = [f"s{i}" for i in range(8)]
PARTITIONS = (0, 1, 2)


def partition_of(saga_id: str) -> int:
    return int(saga_id[1:]) % len(PARTITIONS)


timers = st.one_of(
    st.none(),
    st.builds(timer, st.integers(0, 40), st.sampled_from(["a", "b"])),
)
change = st.one_of(st.none(), st.tuples(st.integers(0, 9), timers))  # None: a tombstone
changes = st.dictionaries(
    st.sampled_from(SAGAS),
    st.one_of(st.none(), st.tuples(st.integers(0, 9), timers)),  # None: a tombstone
    max_size=6,
)
checkpoint_maps = st.dictionaries(st.sampled_from(PARTITIONS), st.integers(0, 1000), max_size=3)


class StoresAgree(RuleBasedStateMachine):
    """Both stores and a dict model see the same batches; they must never disagree.

    One RocksDB serves every example (opening one costs ~15 ms): each example starts by wiping
    its partitions, which is then part of what is tested.
    """

    def __init__(self, rocks: list[RocksSagaStore]) -> None:
        super().__init__()
        self.shared = rocks
        for p in PARTITIONS:
            self.rocks.wipe_partition(p)
        self.memory = MemorySagaStore()
        self.model: dict[str, SagaState] = {}
        self.model_checkpoints: dict[int, int] = {}
        self.reopen_calls = 0

    @property
    def rocks(self) -> RocksSagaStore:
        return self.shared[0]

    @rule(change=changes, checkpoints=checkpoint_maps)
    def apply(
        self, change: dict[str, tuple[int, Timer | None] | None], checkpoints: dict[int, int]
    ) -> None:
        puts = [(partition_of(s), state(s, c[0], c[1])) for s, c in change.items() if c is not None]
        deletes = [(partition_of(s), s) for s, c in change.items() if c is None]
        batch = StoreBatch.of(puts, deletes, checkpoints)
        self.rocks.apply(batch)
        self.memory.apply(batch)
        self.model.update({s.saga_id: s for _, s in puts})
        for _, saga_id in deletes:
            self.model.pop(saga_id, None)
        self.model_checkpoints.update(checkpoints)

    @rule(
        partition=st.sampled_from(PARTITIONS),
        records=st.lists(
            st.tuples(
                st.sampled_from(SAGAS), st.one_of(st.none(), st.tuples(st.integers(0, 9), timers))
            ),
            max_size=8,
        ),
        checkpoint=st.one_of(st.none(), st.integers(0, 1000)),
    )
    def restore(
        self,
        partition: int,
        records: list[tuple[str, tuple[int, Timer | None] | None]],
        checkpoint: int | None,
    ) -> None:
        """Restore's writer: raw records of one partition in log order, sagas repeating."""
        ours = [(s, c) for s, c in records if partition_of(s) == partition]
        chunk = [
            (s.encode(), None if c is None else encode_state(state(s, c[0], c[1]))) for s, c in ours
        ]
        for store in (self.rocks, self.memory):
            writer = store.restore_writer(partition)
            writer.apply(chunk[:3])
            writer.apply(chunk[3:])
            if checkpoint is not None:
                writer.commit(checkpoint)
        for saga_id, change in ours:
            if change is None:
                self.model.pop(saga_id, None)
            else:
                self.model[saga_id] = state(saga_id, change[0], change[1])
        if checkpoint is not None:
            self.model_checkpoints[partition] = checkpoint

    @rule(partition=st.sampled_from(PARTITIONS))
    def wipe(self, partition: int) -> None:
        self.rocks.wipe_partition(partition)
        self.memory.wipe_partition(partition)
        self.model = {s: v for s, v in self.model.items() if partition_of(s) != partition}
        self.model_checkpoints.pop(partition, None)

    @rule()
    def reopen(self) -> None:
        self.reopen_calls += 1
        if self.reopen_calls % 8 == 1:  # a reopen costs ~20 ms: the first and every 8th call
            path = self.rocks.path
            self.rocks.close()
            self.shared[0] = open_rocks(path)

    @invariant()
    def stores_equal_model_and_index_equals_pending_timers(self) -> None:
        for p in PARTITIONS:
            expected = [self.model[s] for s in sorted(self.model) if partition_of(s) == p]
            pending = sorted(
                DueTimer(s.timer.due_ms, s.saga_id, s.timer.token)
                for s in expected
                if s.timer is not None
            )
            for store in (self.rocks, self.memory):
                assert list(store.states(p)) == expected
                assert store.checkpoint(p) == self.model_checkpoints.get(p)
                assert store.due_timers(p, 10**12, 1000) == pending  # I3
                assert store.due_timers(p, 20, 2) == [t for t in pending if t.due_ms <= 20][:2]
                ids = [*SAGAS, "nope"]
                assert store.get_many(p, ids) == {s.saga_id: s for s in expected}


def test_random_batches_keep_stores_equal_and_index_exact(tmp_path: Path) -> None:
    rocks = [open_rocks(tmp_path)]

    class OnThisStore(StoresAgree):
        def __init__(self) -> None:
            super().__init__(rocks)

    try:
        run_state_machine_as_test(
            OnThisStore,
            settings=settings(
                max_examples=200,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        rocks[0].close()


# --------------------------------------------------------------------------- kill -9

K = 50  # states per batch, 32 KiB each: batches span memtable flushes


def kill_9_after_first_ack(module_args: list[str], delay_s: float) -> int:
    """Run ``python -m <module_args>`` until it prints its first acknowledgement, SIGKILL it
    ``delay_s`` later, and return the last number it acknowledged (one per line) before dying."""
    child = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()  # blocks until the child acknowledged something
        assert first, f"the child died before its first acknowledgement (exit {child.wait()})"
        time.sleep(delay_s)
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return int((first + rest).split()[-1])


def test_write_batch_is_atomic_under_kill_9(tmp_path: Path) -> None:
    """Five SIGKILLs at random moments: never a torn batch, never a lost acknowledged one."""
    rng = random.Random()
    path = tmp_path / "db"
    acknowledged = 0
    for _ in range(5):
        # once one batch of this run is applied, at a random moment up to 80 ms later
        acknowledged = kill_9_after_first_ack(
            ["tests.unit.store_crash_child", str(path), str(K)], rng.uniform(0.0, 0.08)
        )

        with open_rocks(path) as store:
            batch = store.checkpoint(0)
            assert batch is not None
            assert batch >= acknowledged  # a process kill loses nothing apply acknowledged
            states = list(store.states(0))
            assert len(states) == K
            assert {s.version for s in states} == {batch}  # states agree with the checkpoint
            assert {s.data for s in states} == {bytes([batch % 256]) * 32_768}
            due = store.due_timers(0, 10**12, 10 * K)
            assert {(t.due_ms, t.token) for t in due} == {(batch, f"t{batch}")}
            assert len(due) == K  # old index entries went with the old states


# --------------------------------------------------------------------------- kill -9, restore


def test_a_restore_killed_anywhere_resumes_from_its_checkpoint_to_the_exact_fold(
    tmp_path: Path,
) -> None:
    """Five SIGKILLs of a restoring process (no write-ahead log between its commits), each at a
    random moment: the checkpoint never goes back past an acknowledged commit, and a restore
    resumed from it always ends in exactly the fold of the log, index included (I3)."""
    from tests.unit.restore_crash_child import (  # noqa: PLC0415
        CHUNK,
        COMMIT_EVERY,
        fold,
        log_record,
        resume,
    )

    rng = random.Random()
    path = tmp_path / "db"
    for _ in range(5):
        # once a commit of this run returned, at a random moment up to 300 ms later
        acknowledged = kill_9_after_first_ack(
            ["tests.unit.restore_crash_child", str(path)], rng.uniform(0.0, 0.3)
        )

        with open_rocks(path) as store:
            checkpoint = store.checkpoint(0)
            assert checkpoint is not None
            assert checkpoint >= acknowledged  # a kill loses no commit that returned
            # As a real restore does: on to the topic's end, past whatever the child applied
            # after its last commit (at most COMMIT_EVERY chunks).
            end = resume(store, checkpoint + (COMMIT_EVERY + 2) * CHUNK)
            states, pending = fold(end)
            assert list(store.states(0)) == states
            assert store.due_timers(0, 10**12, 10**6) == pending
            assert store.checkpoint(0) == end
    assert log_record(0)[0] == b"saga-0000"  # the log the child and this test share


def test_restore_skips_a_transient_consumer_error_and_raises_on_a_fatal_one() -> None:
    """``ksaga bench`` caught a replica exiting on a NOT_LEADER_FOR_PARTITION during restore."""

    class _Msg:
        def __init__(self, key: bytes | None, value: bytes | None, err: KafkaError | None) -> None:
            self._key, self._value, self._err = key, value, err

        def key(self) -> bytes | None:
            return self._key

        def value(self) -> bytes | None:
            return self._value

        def error(self) -> KafkaError | None:
            return self._err

    transient = KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)
    chunk = [_Msg(b"a", b"1", None), _Msg(None, None, transient), _Msg(b"b", None, None)]
    assert _records(chunk, "ksaga.state", 0) == [(b"a", b"1"), (b"b", None)]  # type: ignore[arg-type]
    fatal = KafkaError(KafkaError._FENCED, fatal=True)
    with pytest.raises(KsagaError, match="failed"):
        _records([_Msg(None, None, fatal)], "ksaga.state", 0)  # type: ignore[list-item]
