"""Child process for the kill -9 test of restore's writer: restore an endless log, committing.

``python -m tests.unit.restore_crash_child PATH`` opens the store and restores partition 0 of a
deterministic log (``log_record``) from its checkpoint the way ``restore_partition`` does:
chunks through ``RestoreWriter.apply`` (no write-ahead log), ``commit`` every few chunks, and
after each commit returns it prints the committed offset (flushed), so the parent knows what was
acknowledged before it kills. Big values and a small write buffer make memtables flush between
commits, so a kill leaves the column families torn in every way the writer must survive.
"""

from __future__ import annotations

import sys

from orchestrator.core import Action, SagaState, SagaStatus, Timer, TimerKind
from orchestrator.store import DueTimer, RocksSagaStore, SagaStore
from orchestrator.wire import decode_state, encode_state

CHUNK = 40  # records per apply
COMMIT_EVERY = 7  # chunks per commit
SAGAS = 300


def log_record(offset: int) -> tuple[bytes, bytes | None]:
    """The record at ``offset``: a state of saga ``offset % SAGAS``, or its tombstone."""
    saga_id = f"saga-{offset % SAGAS:04d}"
    if offset % 13 == 12:
        return saga_id.encode(), None
    timer = None if offset % 3 == 0 else Timer(f"t{offset}", offset % 1_000, TimerKind.TIMEOUT)
    state = SagaState(
        saga_id=saga_id, saga_type="crash", status=SagaStatus.RUNNING,
        data=bytes([offset % 256]) * 8_192, step=0, action=Action.DO, attempt=1, timer=timer,
        completed=(), to_compensate=(), failure=None, version=offset, started_ms=0,
        updated_ms=offset,
    )  # fmt: skip
    return saga_id.encode(), encode_state(state)


def fold(end: int) -> tuple[list[SagaState], list[DueTimer]]:
    """The states (by saga id) and pending timers after records ``0 .. end - 1``."""
    last: dict[bytes, bytes | None] = {}
    for offset in range(end):
        key, value = log_record(offset)
        last[key] = value
    states = [decode_state(v) for _, v in sorted(last.items()) if v is not None]
    pending = sorted(
        DueTimer(s.timer.due_ms, s.saga_id, s.timer.token) for s in states if s.timer is not None
    )
    return states, pending


def resume(store: SagaStore, until: int, *, report: bool = False) -> int:
    """Restore partition 0 from its checkpoint up to ``until``; the last committed offset."""
    position = store.checkpoint(0)
    if position is None:
        store.wipe_partition(0)
        position = 0
    writer = store.restore_writer(0)
    chunks = 0
    while position < until:
        end = min(position + CHUNK, until)
        writer.apply([log_record(o) for o in range(position, end)])
        position, chunks = end, chunks + 1
        if chunks % COMMIT_EVERY == 0 or position == until:
            writer.commit(position)
            if report:
                print(position, flush=True)
    return position


def main(path: str) -> None:
    store = RocksSagaStore(path, block_cache_bytes=8 << 20, write_buffer_bytes=2 << 20)
    resume(store, 10**9, report=True)


if __name__ == "__main__":
    main(sys.argv[1])
