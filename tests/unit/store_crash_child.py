"""Child process for the kill -9 test of ``RocksSagaStore``: apply numbered batches forever.

``python -m tests.unit.store_crash_child PATH K`` opens the store, resumes after its checkpoint
``n`` and applies batch ``n + 1, n + 2, ...``: each batch puts K states whose ``version`` and timer
due time are the batch number, plus checkpoint {0: batch number}. After each ``apply`` returns it
prints the batch number (flushed), so the parent knows what was acknowledged before it kills.
"""

from __future__ import annotations

import sys

from orchestrator.core import Action, SagaState, SagaStatus, Timer, TimerKind
from orchestrator.store import RocksSagaStore, StoreBatch


def numbered_state(index: int, batch: int) -> SagaState:
    return SagaState(
        saga_id=f"saga-{index:04d}",
        saga_type="crash",
        status=SagaStatus.RUNNING,
        data=bytes([batch % 256]) * 32_768,
        step=0,
        action=Action.DO,
        attempt=1,
        timer=Timer(f"t{batch}", batch, TimerKind.TIMEOUT),
        completed=(),
        to_compensate=(),
        failure=None,
        version=batch,
        started_ms=0,
        updated_ms=batch,
    )


def main(path: str, k: int) -> None:
    store = RocksSagaStore(path, block_cache_bytes=8 << 20, write_buffer_bytes=4 << 20)
    batch = store.checkpoint(0) or 0
    while True:
        batch += 1
        puts = [(0, numbered_state(i, batch)) for i in range(k)]
        store.apply(StoreBatch.of(puts, checkpoints={0: batch}))
        print(batch, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
