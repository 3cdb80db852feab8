"""``ksaga state rebuild``: a replica's RocksDB store rebuilt from ``ksaga.state`` alone.

The same path a replica takes when it restores a partition (``app.open_store``, then
``restore.restore_partition`` per partition), so the rebuilt store is exactly the one a replica
would build, checkpoints and due-time index included; only each selected partition is wiped
first, so it is read from the beginning of the state topic rather than caught up from a
checkpoint. A replica started on the directory afterwards only catches up from there.

Why a tool when a replica restores by itself: to prepare a volume before a replica starts (a
new node, a suspect disk) and to see how long a restore from nothing takes (the final line).

What it must never do: touch a store a running replica has open. RocksDB's ``LOCK`` file says
so, and opening a locked directory fails before anything is written: the rebuild stops there
with a message naming the directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from orchestrator import clock
from orchestrator.app import open_store
from orchestrator.config import Settings
from orchestrator.errors import ConfigError, KsagaError
from orchestrator.kafka import new_restore_consumer
from orchestrator.ops.reader import Cluster
from orchestrator.restore import restore_partition
from orchestrator.store import RocksSagaStore

__all__ = ["RebuildResult", "rebuild_state"]


@dataclass(frozen=True, slots=True)
class RebuildResult:
    state_dir: str
    partitions: tuple[int, ...]
    sagas: int
    records: int
    seconds: float

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"rebuilt {self.state_dir}: {self.sagas:,} sagas from {self.records:,} state records"
            f" in {len(self.partitions)} partition(s), {self.seconds:.2f} s"
            f" ({self.records_per_second:,.0f} records/s)"
        )


def _open(settings: Settings, partitions: int) -> RocksSagaStore:
    try:
        return open_store(settings, partitions)
    except Exception as exc:
        if "lock" in str(exc).lower():
            raise KsagaError(
                f"state dir {settings.state_dir} is in use (RocksDB lock held): a replica is"
                " running on it. Stop that replica first; rebuilding a store under a running"
                f" replica would corrupt it. ({exc})"
            ) from exc
        raise KsagaError(f"cannot open the store in {settings.state_dir}: {exc}") from exc


def rebuild_state(
    settings: Settings,
    partitions: Sequence[int] | None = None,
    *,
    progress_console: Console | None = None,
) -> RebuildResult:
    """Wipe and restore each selected partition (default: all) of the store in ``state_dir``."""
    cluster = Cluster(settings)
    count = cluster.partitions
    chosen = tuple(sorted(set(range(count) if partitions is None else partitions)))
    outside = [p for p in chosen if not 0 <= p < count]
    if outside:
        raise ConfigError(
            f"partition(s) {outside} outside 0..{count - 1} of {settings.topics.state}"
        )
    store = _open(settings, count)
    consumer = new_restore_consumer(settings)
    topic = settings.topics.state
    lows = cluster.beginnings([(topic, p) for p in chosen])
    highs = cluster.ends([(topic, p) for p in chosen])
    totals = {p: highs[(topic, p)] - lows[(topic, p)] for p in chosen}
    done = dict.fromkeys(chosen, 0)
    began = clock.monotonic()
    records = sagas = 0
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("offsets"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=progress_console or Console(stderr=True), transient=False,
    )  # fmt: skip
    try:
        with bar:
            task = bar.add_task(f"{topic} -> {settings.state_dir}", total=sum(totals.values()))
            for partition in chosen:

                def moved(read: int, total: int, p: int = partition) -> None:
                    done[p], totals[p] = read, total
                    bar.update(task, completed=sum(done.values()), total=sum(totals.values()))

                store.wipe_partition(partition)
                result = restore_partition(store, consumer, cluster.admin, topic, partition,
                                           on_progress=moved)  # fmt: skip
                records += result.records
                sagas += sum(1 for _ in store.states(partition))
    finally:
        consumer.close()
        store.close()
    return RebuildResult(str(settings.state_dir), chosen, sagas, records, clock.monotonic() - began)
