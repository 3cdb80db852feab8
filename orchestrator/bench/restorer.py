"""The restoring process of ``ksaga bench --restore``: a replica's restore, then the check.

``python -m orchestrator.bench.restorer N RESULT_JSON BASE_MS``, with the replica's ``KSAGA_*``
environment: opens the store as ``app.open_store`` does, restores every partition in order with
the replica's restore consumer (``restore.restore_partition``), takes the figures, then checks
the store against the states ``statefill`` wrote and writes figures and verdict as JSON. Its own
process, so its peak RSS is a restoring replica's (see ``bench/restore.py``). After the check,
which reads every state back (and a sample through the state LRU), the peak RSS is measured
again: a replica holding the N states with its block cache and LRU full.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator import clock
from orchestrator.app import configure_logging, open_store
from orchestrator.bench.report import cpu_seconds, peak_rss_mb
from orchestrator.bench.statefill import bench_index, final_state
from orchestrator.config import Settings, load_settings
from orchestrator.kafka import new_admin, new_restore_consumer
from orchestrator.partitioning import partition_for
from orchestrator.restore import restore_partition
from orchestrator.store import MAX_DUE_MS, DueTimer, SagaStore

__all__ = ["check_restored", "main"]


def _restore_all(settings: Settings, partitions: int) -> tuple[SagaStore, dict[str, Any]]:
    """What a replica given every partition does before serving: open the store, restore."""
    store = open_store(settings, partitions)
    consumer = new_restore_consumer(settings)
    admin = new_admin(settings)
    pid = os.getpid()
    rss_before = _rss_mb(pid)
    load_before = os.getloadavg()[0]
    cpu0, began = cpu_seconds(pid), clock.monotonic()
    results = [
        restore_partition(store, consumer, admin, settings.topics.state, p)
        for p in range(partitions)
    ]
    seconds = clock.monotonic() - began
    figures: dict[str, Any] = {
        "restore_seconds": round(seconds, 3),
        "restore_cpu_s": round(cpu_seconds(pid) - cpu0, 2),
        "restore_peak_rss_mb": round(peak_rss_mb(pid), 1),
        "rss_before_restore_mb": round(rss_before, 1),
        "restore_records_applied": sum(r.records for r in results),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "restore_block_cache_mb": settings.block_cache_mb,
        "restore_write_buffer_mb": settings.write_buffer_mb,
        "restore_state_cache_entries": settings.state_cache_entries,
    }
    figures["restore_states_per_s"] = round(figures["restore_records_applied"] / seconds, 1)
    consumer.close()
    checkpoints = {
        p: (store.checkpoint(p), r.target) for p, r in zip(range(partitions), results, strict=True)
    }
    figures["checkpoint_problems"] = [
        f"partition {p}: checkpoint {c}, high watermark {t}"
        for p, (c, t) in checkpoints.items()
        if c != t
    ]
    return store, figures


def check_restored(store: SagaStore, partitions: int, n: int, base_ms: int) -> list[str]:
    """Everything wrong with a restored store (``[]``: it holds exactly the N final states)."""
    problems: list[str] = []
    seen = bytearray(n)
    for partition in range(partitions):
        timers: list[DueTimer] = []
        for state in store.states(partition):
            i = bench_index(state.saga_id)
            if i is None or not 0 <= i < n:
                problems.append(f"partition {partition}: unexpected saga {state.saga_id!r}")
                continue
            if seen[i]:
                problems.append(f"{state.saga_id} stored twice")
            seen[i] = 1
            if state != final_state(i, base_ms):
                problems.append(f"{state.saga_id}: {state} is not its final state")
            if partition_for(state.saga_id, partitions) != partition:
                problems.append(f"{state.saga_id} stored in partition {partition}")
            if state.timer is not None:
                timers.append(DueTimer(state.timer.due_ms, state.saga_id, state.timer.token))
            if len(problems) > 20:
                return problems
        index = store.due_timers(partition, MAX_DUE_MS, n + 1)
        if index != sorted(timers):
            problems.append(
                f"partition {partition}: due-time index has {len(index)} entries, its states"
                f" {len(timers)} timers (or they differ)"
            )
    missing = n - sum(seen)
    if missing:
        problems.append(f"{missing} of {n} sagas missing")
    return problems + _check_reads(store, partitions, n, base_ms)


READ_SAMPLE = 25_000
"""Sagas read back through ``get`` (the loop's path): more than the default state LRU holds."""


def _check_reads(store: SagaStore, partitions: int, n: int, base_ms: int) -> list[str]:
    problems = []
    for i in range(0, n, max(1, n // READ_SAMPLE)):
        want = final_state(i, base_ms)
        got = store.get(partition_for(want.saga_id, partitions), want.saga_id)
        if got != want:
            problems.append(f"get({want.saga_id!r}) returned {got}")
    return problems[:20]


def _rss_mb(pid: int) -> float:
    """Resident set size now (``VmRSS``) in MiB: the interpreter, libraries and an open store."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv: Sequence[str]) -> int:
    n, out, base_ms = int(argv[0]), Path(argv[1]), int(argv[2])
    configure_logging("INFO", json=True)
    settings = load_settings()
    partitions = settings.partitions or 1
    store, figures = _restore_all(settings, partitions)
    try:
        problems = figures.pop("checkpoint_problems") + check_restored(
            store, partitions, n, base_ms
        )
        # Every state read back, a sample through the LRU: block cache and LRU now full.
        figures["peak_rss_after_reads_mb"] = round(peak_rss_mb(os.getpid()), 1)
    finally:
        store.close()
    figures["restore_store_mb"] = round(_dir_mb(settings.state_dir), 1)
    figures["check_passed"] = not problems
    if problems:
        figures["problems"] = problems[:20]
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
