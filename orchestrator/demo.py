"""``ksaga demo``: the main job, live. A real broker, the orchestrator, the participants, orders.

Starts a local Kafka broker (the project's own KRaft node), creates the topics, starts two
orchestrator replicas and the example participants as separate processes, publishes a stream of
``OrderPlaced`` events (some declined at payment, some flaky, some met by a silent inventory that
times out), and shows the sagas running, completing and compensating in a live table. At the end
it checks every saga's terminal state against what the seeded participants decided, and that no
command was emitted twice, and prints ``summary: completed=.. compensated=.. failed=..
check=ok|FAILED``. Everything it started is stopped before it returns.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from connectors.order_participants import Behaviour, expected_outcome
from orchestrator import clock
from orchestrator.testing.kafka_cluster import KafkaBroker
from orchestrator.testing.system import (
    ChildProcess,
    Observer,
    ParticipantsProcess,
    ReplicaProcess,
    create_all_topics,
    publish_orders,
)

__all__ = ["run_demo"]

_console = Console()


def _table(published: int, total: int, outcomes: Counter[str], dlq: int, elapsed: float) -> Table:
    done = sum(outcomes[s] for s in ("COMPLETED", "COMPENSATED", "FAILED"))
    running = outcomes["RUNNING"] + outcomes["COMPENSATING"]
    table = Table(title=f"ksaga demo - {elapsed:5.1f} s", title_justify="left")
    for column in ("published", "running", "completed", "compensated", "failed", "DLQ", "done/s"):
        table.add_column(column, justify="right")
    rate = done / elapsed if elapsed > 0 else 0.0
    table.add_row(
        f"{published}/{total}",
        str(running),
        f"[green]{outcomes['COMPLETED']}[/]",
        f"[yellow]{outcomes['COMPENSATED']}[/]",
        f"[red]{outcomes['FAILED']}[/]",
        str(dlq),
        f"{rate:6.1f}",
    )
    return table


def run_demo(
    *,
    sagas: int = 400,
    rate: float = 100.0,
    replicas: int = 2,
    partitions: int = 8,
    behaviour: Behaviour | None = None,
    timeout_s: float = 180.0,
    workdir: Path | None = None,
) -> bool:
    """Run the demo; True when every saga ended as expected and nothing was sent twice."""
    behaviour = behaviour or Behaviour(seed=42, decline_rate=0.1, flaky_rate=0.1, silent_rate=0.02)
    root = workdir or Path(tempfile.mkdtemp(prefix="ksaga-demo-"))
    order_ids = [f"demo-{i:06d}" for i in range(sagas)]
    expected = {f"order/{o}": expected_outcome(o, behaviour) for o in order_ids}
    processes: list[ChildProcess] = []
    summary = ["summary: completed=0 compensated=0 failed=0 check=FAILED"]
    ok = False
    # The broker harness logs librdkafka's transient start-up retries; not news for a demo.
    logging.getLogger("ksaga.testing.kafka").setLevel(logging.ERROR)
    _console.print("[bold]ksaga demo[/]: starting a local Apache Kafka broker (KRaft)...")
    with KafkaBroker(root / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        _console.print(
            f"Kafka {broker.version} ready at {bootstrap} in {broker.startup_seconds:.1f} s;"
            f" creating topics ({partitions} partitions), starting {replicas} orchestrator"
            " replicas and the inventory/payments/shipping participants"
        )
        create_all_topics(bootstrap, partitions)
        observer = Observer(bootstrap)
        try:
            for i in range(replicas):
                processes.append(ReplicaProcess(bootstrap, f"replica-{i}", root))
            processes.append(
                ParticipantsProcess(
                    bootstrap, root,
                    "--seed", str(behaviour.seed), "--decline-rate", str(behaviour.decline_rate),
                    "--flaky-rate", str(behaviour.flaky_rate),
                    "--silent-rate", str(behaviour.silent_rate),
                )
            )  # fmt: skip
            for process in processes:
                process.start()
            ok = _drive(
                bootstrap, order_ids, expected=expected, observer=observer, rate=rate,
                timeout_s=timeout_s, processes=processes, summary=summary,
            )  # fmt: skip
        finally:
            for process in processes:
                process.terminate(30)
            observer.close()
        _console.print("stopping the broker...")
    if workdir is None and ok:
        shutil.rmtree(root, ignore_errors=True)  # kept when the check failed: logs are there
    print(summary[0])  # the last line, for people and for scripts
    return ok


def _drive(
    bootstrap: str,
    order_ids: list[str],
    *,
    expected: dict[str, str],
    observer: Observer,
    rate: float,
    timeout_s: float,
    processes: list[ChildProcess],
    summary: list[str],
) -> bool:
    published = [0]

    def publish() -> None:
        began = clock.monotonic()
        for start in range(0, len(order_ids), 20):
            publish_orders(bootstrap, order_ids[start : start + 20])
            published[0] = min(len(order_ids), start + 20)
            ahead = began + published[0] / rate - clock.monotonic()
            if ahead > 0:
                threading.Event().wait(ahead)

    publisher = threading.Thread(target=publish, daemon=True)
    began = clock.monotonic()
    publisher.start()
    finished: dict[str, str] = {}
    with Live(
        _table(0, len(order_ids), Counter(), 0, 0.0), console=_console, refresh_per_second=8
    ) as live:
        while clock.monotonic() - began < timeout_s:
            observer.poll(0.1)
            ours = {k: v for k, v in observer.status.items() if k in expected}
            finished = {
                k: v for k, v in ours.items() if v in ("COMPLETED", "COMPENSATED", "FAILED")
            }
            live.update(
                _table(published[0], len(order_ids), Counter(ours.values()),
                       len(observer.dead_letters), clock.monotonic() - began)
            )  # fmt: skip
            if len(finished) == len(expected):
                break
            dead = [p for p in processes if not p.running()]
            if dead:
                _console.print(f"[red]{dead[0].name} exited[/]\n{dead[0].tail()}")
                break
    elapsed = clock.monotonic() - began
    _console.print()
    observer.poll(0.5)
    wrong = {k: (v, finished.get(k)) for k, v in expected.items() if finished.get(k) != v}
    duplicates = observer.duplicate_commands()
    counts = Counter(finished.values())
    check = not wrong and not duplicates and not observer.dead_letters
    _console.print(
        f"{len(finished)} sagas finished in {elapsed:.1f} s ({len(finished) / elapsed:.0f}/s"
        f" including the publishing rate of {rate:.0f}/s); {len(observer.commands)} commands,"
        f" none repeated"
        if not duplicates
        else f"[red]repeated commands: {duplicates[:5]}[/]"
    )
    for saga_id, (want, got) in list(wrong.items())[:10]:
        _console.print(f"[red]{saga_id}: expected {want}, got {got}[/]")
    summary[0] = (
        f"summary: completed={counts['COMPLETED']} compensated={counts['COMPENSATED']}"
        f" failed={counts['FAILED']} check={'ok' if check else 'FAILED'}"
    )
    return check
