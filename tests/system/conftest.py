"""A fresh broker and a ksaga system per test: replicas and participants as real processes."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.order_participants import Behaviour, expected_outcome
from orchestrator.app import EXIT_FATAL
from orchestrator.testing.checker import CheckInput, check
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from orchestrator.testing.system import (
    Observer,
    ParticipantsProcess,
    ReplicaProcess,
    create_all_topics,
    publish_orders,
)

PARTITIONS = 4
PROXIED = ("r0", "r1")  # replica ids that may reach the broker through a cuttable TCP proxy


@dataclass
class System:
    broker: KafkaBroker
    workdir: Path
    behaviour: Behaviour
    replicas: dict[str, ReplicaProcess] = field(default_factory=dict)
    participants: list[ParticipantsProcess] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    observer: Observer | None = None
    supervised: bool = False
    """Restart a replica that exits with EXIT_FATAL (as Kubernetes would) instead of failing."""
    restarts: list[str] = field(default_factory=list)
    _via_proxy: dict[str, bool] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def replica(
        self, replica_id: str, *, via_proxy: bool = False, **settings: object
    ) -> ReplicaProcess:
        """Start a replica; ``via_proxy``: through its own cuttable link (``PROXIED`` names)."""
        bootstrap = self.broker.proxied.bootstrap(replica_id) if via_proxy else self.bootstrap
        replica = ReplicaProcess(bootstrap, replica_id, self.workdir, **settings)
        self._via_proxy[replica_id] = via_proxy
        replica.start()
        self.replicas[replica_id] = replica
        return replica

    def start_participants(
        self, behaviour: Behaviour | None = None, *, name: str | None = None
    ) -> ParticipantsProcess:
        """Start the example participants (``behaviour`` defaults to the system's; a ``name``
        already used restarts on that one's de-duplication store, as a fixed service would)."""
        b = behaviour or self.behaviour
        process = ParticipantsProcess(
            self.bootstrap, self.workdir,
            "--seed", str(b.seed), "--decline-rate", str(b.decline_rate),
            "--silent-rate", str(b.silent_rate), "--flaky-rate", str(b.flaky_rate),
            "--hung-rate", str(b.hung_rate), "--undo-failing-rate", str(b.undo_failing_rate),
            "--shipping-lost-rate", str(b.shipping_lost_rate),
            name=name or f"participants-{len(self.participants)}",
        )  # fmt: skip
        process.start()
        self.participants.append(process)
        return process

    def publish(self, order_ids: list[str]) -> None:
        publish_orders(self.bootstrap, order_ids)
        self.published.extend(order_ids)

    def watch(self) -> Observer:
        if self.observer is None:
            self.observer = Observer(self.bootstrap)
        return self.observer

    def expected(self) -> dict[str, str]:
        return {f"order/{o}": expected_outcome(o, self.behaviour) for o in self.published}

    def wait_all_terminal(self, timeout: float = 120) -> dict[str, str]:
        observer = self.watch()
        want = set(self.expected())

        def done() -> bool:
            observer.poll()
            self.check_alive()
            return want <= set(observer.terminal())

        try:
            wait_for(done, timeout, f"{len(want)} sagas to finish", interval=0.05)
        except TimeoutError as exc:
            missing = sorted(want - set(observer.terminal()))[:10]
            raise AssertionError(f"{exc}; not terminal: {missing}\n{self.logs()}") from exc
        observer.poll(0.5)  # drain what was committed with the last states
        return {k: v for k, v in observer.terminal().items() if k in want}

    def check_alive(self) -> None:
        if self.supervised:
            for replica_id, replica in list(self.replicas.items()):
                if replica.proc is not None and replica.proc.poll() == EXIT_FATAL:
                    self.restarts.append(replica_id)
                    self.replica(replica_id, via_proxy=self._via_proxy[replica_id])
        for process in [*self.replicas.values(), *self.participants]:
            if process.proc is not None and process.proc.poll() not in (None, 0, -9, -15):
                raise AssertionError(
                    f"{process.name} exited {process.proc.poll()}\n{process.tail()}"
                )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.tail(15)}" for p in [*self.replicas.values(), *self.participants]
        )

    def assert_log_checks(self, poison: dict[str, int] | None = None) -> None:
        """The checker's verdict: the log equals the fold of the inbox (orchestrator/testing)."""
        out = io.StringIO()
        report = check(
            CheckInput(
                self.bootstrap,
                sorted(set(self.published)),
                declined={o for o in self.published if self.behaviour.declines(o)},
                poison=poison or {},
            ),
            out=out,
        )
        assert report.passed, out.getvalue()
        assert report.verdict().startswith("verdict: PASS")

    def assert_guarantees(self, poison: dict[str, int] | None = None) -> None:
        """Outcomes as the participants decided; no command twice; attempts count up; undo right.

        A compensation may be sent again with the next attempt after its timeout (a slow
        participant under load); that is a retry, de-duplicated by the participant's
        idempotency key, not a second compensation. What must hold is which steps are undone.
        """
        outcomes = self.wait_all_terminal()
        assert outcomes == self.expected()
        observer = self.watch()
        assert observer.duplicate_commands() == []
        assert observer.attempt_gaps() == []
        for saga_id, status in outcomes.items():
            if status == "COMPENSATED":  # declined at payment: only the stock is released
                assert observer.undo_order(saga_id) == ["reserve_stock"], saga_id
            else:
                assert observer.undo_order(saga_id) == [], saga_id
        self.assert_log_checks(poison)

    def stop(self) -> None:
        for process in [*self.replicas.values(), *self.participants]:
            process.terminate(30)
        if self.observer is not None:
            self.observer.close()


@pytest.fixture
def system_factory(tmp_path: Path) -> Iterator[Callable[[Behaviour], System]]:
    made: list[System] = []

    def make(behaviour: Behaviour) -> System:
        broker = KafkaBroker(tmp_path / "kafka", proxied=PROXIED).start()
        create_all_topics(broker.bootstrap_servers, PARTITIONS)
        system = System(broker, tmp_path / "ksaga", behaviour)
        made.append(system)
        return system

    yield make
    for system in made:
        system.stop()
        system.broker.stop()


def orders(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(start, start + n)]
