"""``ksaga bench --restore``: how fast a replica rebuilds its store from ``ksaga.state``.

One run: a fresh local broker (or ``--bootstrap``, an empty cluster), ksaga's topics with P
partitions, ``ksaga.state`` filled with N sagas' states (``statefill``), then a child process
that does what a replica does when it is given every partition with an empty state directory:
``app.open_store`` with the replica's settings (``KSAGA_*`` of this environment, e.g.
``KSAGA_BLOCK_CACHE_MB``), then ``restore.restore_partition`` for each partition in order with
the replica's restore consumer. A separate process, so its peak RSS (``VmHWM``) is a replica's
and nothing of the fill is counted in it.

Figures (child side): ``restore_seconds`` is the wall-clock time of the restore loop over all
partitions (store already open, consumer created); ``restore_states_per_s`` the state records
applied (earlier versions and tombstones included, as a restore must read them) per second of
it; ``restore_peak_rss_mb`` the child's ``VmHWM`` read right after the last partition, before
the check, and ``peak_rss_after_reads_mb`` after the check (every state read back, a sample
through the state LRU: the block cache and the LRU full); ``restore_store_mb`` the state
directory's size after the store is closed.

The check, after the figures are taken and before any is shown: every stored state is decoded
and equals the state its saga id says it should be (``statefill.final_state``), lives in its
``murmur2`` partition, and there are exactly N of them (so no tombstoned saga came back); each
partition's due-time index equals the timers of its stored states; the checkpoints equal the
partitions' high watermarks; a sample read through ``get`` equals its final state. A failed
check prints no figure and exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator import clock
from orchestrator.bench.statefill import fill_state_topic
from orchestrator.config import load_settings

__all__ = ["RestoreBenchConfig", "run_restore"]

_console = Console(stderr=True)
_BASE_MS = 1_767_225_600_000  # 2026-01-01: the states' clock; nothing depends on the real one


@dataclass(frozen=True)
class RestoreBenchConfig:
    n: int
    partitions: int
    timeout_s: float


def run_restore(bootstrap: str, root: Path, config: RestoreBenchConfig) -> dict[str, Any]:
    """Fill ``ksaga.state``, restore it in a child process, return its figures and verdict."""
    from orchestrator.testing.system import create_all_topics  # noqa: PLC0415  (heavy)

    create_all_topics(bootstrap, config.partitions)
    state_topic = load_settings(bootstrap_servers=bootstrap).topics.state
    _console.print(f"writing {config.n:,} saga states to {state_topic}...")
    began = clock.monotonic()
    fill = fill_state_topic(bootstrap, state_topic, config.partitions, config.n, _BASE_MS)
    _console.print(
        f"  {fill.records:,} records ({fill.value_bytes / 2**20:,.0f} MiB of values) in"
        f" {clock.monotonic() - began:,.0f} s; restoring into an empty store..."
    )
    out = root / "restore-result.json"
    log = root / "restore-child.log"
    env = {
        **os.environ,
        "KSAGA_BOOTSTRAP_SERVERS": bootstrap,
        "KSAGA_STATE_DIR": str(root / "restore-rocksdb"),
        "KSAGA_REPLICA_ID": "bench-restore",
        "KSAGA_PARTITIONS": str(config.partitions),
    }
    argv = [
        sys.executable,
        "-m",
        "orchestrator.bench.restorer",
        str(config.n),
        str(out),
        str(_BASE_MS),
    ]
    with log.open("wb") as sink:
        try:
            code = subprocess.run(
                argv, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=config.timeout_s,
                check=False,
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            code = None
    if code != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        return {"check_passed": False, "problems": [f"restore process exited {code}", tail]}
    result: dict[str, Any] = json.loads(out.read_text())
    result["restore_records"] = fill.records
    result["restore_tombstones"] = fill.tombstones
    result["restore_value_mb"] = round(fill.value_bytes / 2**20, 1)
    if result.get("restore_records_applied") != fill.records:
        result["check_passed"] = False
        result.setdefault("problems", []).append(
            f"restored {result.get('restore_records_applied')} records, wrote {fill.records}"
        )
    return result
