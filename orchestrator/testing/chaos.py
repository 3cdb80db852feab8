"""``ksaga chaos``: a seeded fault-injection run of a whole ksaga system, judged by the checker.

Its one job: start a real broker (one node or three), R orchestrator replicas and the example
participants as processes, publish a stream of orders (with some repeated triggers), break things
on a schedule drawn from the seed (kill -9, exact crash points, SIGSTOP past the session timeout,
a lost disk, a cut network link, a participants crash anywhere or right after doing the work, a
broker crash aimed at a partition leader, the group coordinator or a transaction coordinator),
heal everything, wait until every saga is terminal and hand the topics to
``orchestrator.testing.checker``. The participants also answer some commands slowly and some
twice, so stale and duplicate replies are part of every run.

Reproducible from the seed: the fault plan (instants, kinds, targets, delays, crash points) and
the publication sequence (order ids, which ones are repeated) are pure functions of the seed
(``plan_faults``, ``plan_workload``), drawn from SHA-256 streams, never from a global random.
What the seed cannot fix is the real timing of processes and the broker: a crash point that is
not reached in time is reported as missed, not counted.

What it never does: overlap two faults on the same process, leave a process or broker behind
(everything is stopped in ``finally``; a fault still healing when the run ends may not start
anything new), or judge the outcome itself: the verdict is the checker's.
"""

from __future__ import annotations

import hashlib
import io
import math
import queue
import shutil
import signal
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import click
from confluent_kafka import KafkaException

from connectors.order_participants import Behaviour
from orchestrator import clock
from orchestrator.crashpoints import PARTICIPANT_POINTS, POINTS
from orchestrator.testing.coordinators import group_coordinator, transaction_coordinator
from orchestrator.testing.kafka_cluster import KafkaBroker, KafkaCluster, KRaftCluster
from orchestrator.testing.system import (
    TERMINAL,
    ChildProcess,
    Observer,
    ParticipantsProcess,
    ReplicaProcess,
    create_all_topics,
    publish_orders,
)

if TYPE_CHECKING:
    from orchestrator.testing.checker import CheckReport

__all__ = [
    "FAULT_KINDS",
    "ChaosConfig",
    "ChaosResult",
    "Fault",
    "SeededRandom",
    "chaos_command",
    "plan_faults",
    "plan_workload",
    "run_chaos",
]

FAULT_KINDS = (
    "kill9-replica",  # kill -9 a replica, restart it (same id) after a short delay
    "crashpoint-replica",  # restart it with KSAGA_CRASH_AT=<point>:<n>; after it dies, normally
    "pause-replica",  # SIGSTOP past the session timeout (6 s), then SIGCONT: a zombie
    "wipe-replica",  # SIGTERM, delete its RocksDB directory, restart: a lost disk
    "kill9-participants",  # kill -9 the participants, restart them on the same state dir
    "crashpoint-participants",  # they die after storing an outcome, before replying; restart
    "cut-replica",  # cut a replica's network link to every broker (a TCP proxy), then mend it
    "broker-kill9",  # three nodes only: kill -9 a leader or a coordinator, restart it
)
BROKER_ROLES = ("inbox-leader", "group-coordinator", "txn-coordinator")
GROUP_ID = "ksaga-orchestrator"
THREE_NODE_ONLY = frozenset({"broker-kill9"})
WARM_UP_S = 4.0  # no fault before the replicas had time to join the group
CRASH_WAIT_S = 40.0  # how long a crash-point replica may take to reach its point
PROGRESS_EVERY_S = 10.0
INBOX = "ksaga.inbox"
SLOW_MS = 300.0  # a slow reply's delay: well inside the 5 s step timeout, so outcomes hold
T = TypeVar("T")


class SeededRandom:
    """A reproducible stream of uniform numbers: SHA-256 of (seed, stream name, counter)."""

    def __init__(self, seed: int, stream: str) -> None:
        self._prefix = f"{seed}\x00{stream}\x00".encode()
        self._n = 0

    def random(self) -> float:
        digest = hashlib.sha256(self._prefix + str(self._n).encode()).digest()
        self._n += 1
        return int.from_bytes(digest[:8], "big") / 2**64

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        return low + min(high - low, int(self.random() * (high - low + 1)))

    def choice(self, items: Sequence[T]) -> T:
        return items[self.randint(0, len(items) - 1)]

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.random())


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    seed: int = 1
    duration_s: float = 60.0
    sagas: int = 400
    rate: float = 20.0
    replicas: int = 2
    partitions: int = 4
    cluster: Literal["single", "three"] = "single"
    decline_rate: float = 0.1
    silent_rate: float = 0.02
    flaky_rate: float = 0.1
    slow_rate: float = 0.02  # first ReserveStock answered after SLOW_MS
    duplicate_reply_rate: float = 0.03  # replies produced twice
    duplicate_trigger_rate: float = 0.02
    faults: tuple[str, ...] | None = None  # None: every kind the cluster supports
    fault_interval_s: float = 6.0  # mean time between two fault starts (exponential)
    quiesce_timeout_s: float = 300.0
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if self.cluster not in ("single", "three"):
            raise ValueError(f"cluster must be 'single' or 'three', got {self.cluster!r}")
        if self.replicas < 1 or self.partitions < 1 or self.sagas < 1 or self.rate <= 0:
            raise ValueError("replicas, partitions, sagas and rate must be positive")
        if not 0.0 <= self.duplicate_trigger_rate <= 1.0:
            raise ValueError("duplicate_trigger_rate must be between 0 and 1")
        if self.fault_interval_s <= 0:
            raise ValueError("fault_interval_s must be positive")
        unknown = set(self.faults or ()) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if self.cluster == "single" and set(self.faults or ()) & THREE_NODE_ONLY:
            raise ValueError("broker-kill9 needs cluster='three'")
        self.behaviour  # noqa: B018  (validates the participants' rates)

    @property
    def behaviour(self) -> Behaviour:
        return Behaviour(
            self.seed, self.decline_rate, self.silent_rate, self.flaky_rate,
            slow_rate=self.slow_rate, slow_ms=SLOW_MS, duplicate_rate=self.duplicate_reply_rate,
        )  # fmt: skip

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        if self.faults is not None:
            return self.faults
        return tuple(k for k in FAULT_KINDS if self.cluster == "three" or k not in THREE_NODE_ONLY)

    @property
    def replica_ids(self) -> tuple[str, ...]:
        return tuple(f"r{i}" for i in range(self.replicas))


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault: when (seconds after the workload starts), what, on whom, how long."""

    at_s: float
    kind: str
    target: str  # a replica id, "participants" or "broker"
    hold_s: float  # the delay before healing (restart, SIGCONT)
    point: str = ""  # crashpoint-*: where
    count: int = 0  # crashpoint-*: at the n-th pass
    partition: int = 0  # broker-kill9 of an inbox-leader: the inbox partition whose leader dies
    role: str = ""  # broker-kill9: which broker (BROKER_ROLES); "txn-coordinator" of `replica`
    replica: str = ""  # broker-kill9 of a txn-coordinator: whose transactional id

    def describe(self) -> str:
        match self.kind:
            case "crashpoint-replica" | "crashpoint-participants":
                return f"{self.kind} {self.target} at {self.point}:{self.count}"
            case "pause-replica" | "cut-replica":
                return f"{self.kind} {self.target} for {self.hold_s:.1f} s"
            case "broker-kill9":
                whom = {
                    "inbox-leader": f"leader of {INBOX}-{self.partition}",
                    "group-coordinator": f"coordinator of group {GROUP_ID}",
                    "txn-coordinator": f"transaction coordinator of {self.replica}",
                }[self.role]
                return f"{self.kind} {whom}, {self.hold_s:.1f} s down"
            case _:
                return f"{self.kind} {self.target}, back after {self.hold_s:.1f} s"


def plan_faults(config: ChaosConfig) -> list[Fault]:
    """The whole fault schedule, a pure function of the config (and so of the seed)."""
    rng = SeededRandom(config.seed, "faults")
    kinds, replicas = config.fault_kinds, config.replica_ids
    plan: list[Fault] = []
    at = WARM_UP_S
    while kinds:
        at += max(1.0, rng.exponential(config.fault_interval_s))
        if at >= config.duration_s:
            break
        # Every parameter is drawn for every fault, so the stream stays aligned across kinds.
        kind, replica = rng.choice(kinds), rng.choice(replicas)
        point, count = rng.choice(POINTS), rng.randint(1, 8)
        short, pause, down = rng.uniform(0.5, 4.0), rng.uniform(8.0, 10.0), rng.uniform(3.0, 8.0)
        partition = rng.randint(0, config.partitions - 1)
        # A cut shorter than the session timeout (6 s) is survived in place; a longer one makes
        # the replica a zombie that must be fenced when its link comes back.
        cut, role, stored = rng.uniform(2.0, 12.0), rng.choice(BROKER_ROLES), rng.randint(1, 40)
        match kind:
            case "crashpoint-replica":
                count = 1 + count % 2 if point == "during-restore" else count
                plan.append(Fault(at, kind, replica, 0.0, point, count))
            case "crashpoint-participants":
                where = PARTICIPANT_POINTS[0]
                plan.append(Fault(at, kind, "participants", short, where, stored))
            case "pause-replica":
                plan.append(Fault(at, kind, replica, pause))
            case "cut-replica":
                plan.append(Fault(at, kind, replica, cut))
            case "kill9-participants":
                plan.append(Fault(at, kind, "participants", short))
            case "broker-kill9":
                plan.append(
                    Fault(at, kind, "broker", down, partition=partition, role=role, replica=replica)
                )
            case _:
                plan.append(Fault(at, kind, replica, short))
    return plan


def plan_workload(config: ChaosConfig) -> list[str]:
    """The publication sequence: ``chaos-<seed>-<i>`` for i < K, some ids published again."""
    rng = SeededRandom(config.seed, "workload")
    sequence: list[str] = []
    for i in range(config.sagas):
        sequence.append(f"chaos-{config.seed}-{i:05d}")
        if i > 0 and rng.random() < config.duplicate_trigger_rate:
            sequence.append(f"chaos-{config.seed}-{rng.randint(0, i - 1):05d}")
    return sequence


@dataclass
class ChaosResult:
    config: ChaosConfig
    plan: list[Fault]
    faults: dict[str, int]  # injected, by kind
    missed: dict[str, int]  # planned but not injected (a crash point not reached in time)
    restarts: dict[str, int]  # processes that exited on their own and were restarted
    published: int  # unique order ids published
    duplicates: int  # extra publications of earlier ids
    terminal: int
    quiesced: bool
    seconds: float
    workdir: Path
    errors: list[str] = field(default_factory=list)
    report: CheckReport | None = None

    @property
    def passed(self) -> bool:
        return self.quiesced and self.report is not None and self.report.passed

    def summary(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"seed={self.config.seed} sagas={self.published} (+{self.duplicates} repeated)"
            f" terminal={self.terminal} quiesced={self.quiesced} faults: {faults};"
            f" missed={self.missed or 0} restarts={self.restarts or 0} in {self.seconds:.0f} s"
        )


class _Run:
    """The moving parts of one run, shared by the main loop, the publisher and the nemesis."""

    def __init__(self, config: ChaosConfig, root: Path, echo: Callable[[str], None]) -> None:
        self.config = config
        self.root = root
        self._echo = echo
        self._echo_lock = threading.Lock()
        self.began = clock.monotonic()
        self.t0 = self.began  # workload start; the plan's instants count from here
        self.lock = threading.Condition()
        self.busy: set[str] = set()
        self.closing = threading.Event()
        self.stop_faults = threading.Event()
        self.publisher_done = threading.Event()
        self.cluster: KRaftCluster | None = None
        self.replicas: dict[str, ReplicaProcess] = {}
        self.participants: ParticipantsProcess | None = None
        self.faults: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.published: list[str] = []  # unique, in first-publication order
        self.duplicates = 0
        self.observer: Observer | None = None
        self.threads: list[threading.Thread] = []
        self._last_progress = self.began
        self._main_calls: queue.SimpleQueue[tuple[Callable[[], object], threading.Event]] = (
            queue.SimpleQueue()
        )

    @property
    def bootstrap(self) -> str:
        assert self.cluster is not None
        return self.cluster.bootstrap_servers

    def say(self, message: str) -> None:
        with self._echo_lock:
            self._echo(f"[{clock.monotonic() - self.began:6.1f}s] {message}")

    def _count(self, counter: Counter[str], key: str) -> None:
        with self.lock:
            counter[key] += 1

    def on_main_thread(self, call: Callable[[], object]) -> bool:
        """Run ``call`` in the main loop and wait for it; False if the run closes first.

        A broker JVM must be started from the main thread: its ``PR_SET_PDEATHSIG`` fires when
        the *thread* that forked it exits, so a node restarted by a fault thread would die with
        that thread.
        """
        done = threading.Event()
        self._main_calls.put((call, done))
        while not done.wait(0.2):
            if self.closing.is_set():
                return False
        return True

    def _run_main_calls(self) -> None:
        while True:
            try:
                call, done = self._main_calls.get_nowait()
            except queue.Empty:
                return
            try:
                call()
            except Exception as exc:
                self.errors.append(f"{call}: {type(exc).__name__}: {exc}")
                self.say(f"harness error: {exc}")
            finally:
                done.set()

    # -- processes (started only under the lock, never once the run is closing)

    def start_replica(self, replica_id: str, **settings: object) -> ReplicaProcess | None:
        with self.lock:
            if self.closing.is_set():
                return None
            assert self.cluster is not None
            bootstrap = self.cluster.proxied.bootstrap(replica_id)  # cuttable: cut-replica
            replica = ReplicaProcess(bootstrap, replica_id, self.root, **settings)
            replica.start()
            self.replicas[replica_id] = replica
            return replica

    def start_participants(self, crash_at: str = "") -> ParticipantsProcess | None:
        """Start the participants (again), optionally told to kill themselves at a point."""
        with self.lock:
            if self.closing.is_set():
                return None
            b = self.config.behaviour
            self.participants = ParticipantsProcess(
                self.bootstrap, self.root,
                "--seed", str(b.seed), "--decline-rate", str(b.decline_rate),
                "--silent-rate", str(b.silent_rate), "--flaky-rate", str(b.flaky_rate),
                "--slow-rate", str(b.slow_rate), "--slow-ms", str(b.slow_ms),
                "--duplicate-rate", str(b.duplicate_rate),
                "--session-timeout-ms", "6000",  # a killed participant is replaced fast
                env={"KSAGA_CRASH_AT": crash_at} if crash_at else None,
            )  # fmt: skip
            self.participants.start()
            return self.participants

    def supervise(self) -> None:
        """Restart what exited on its own (a fenced zombie exits non-zero), as Kubernetes would."""
        with self.lock:
            if self.closing.is_set():
                return
            dead: list[tuple[str, int | None]] = []
            for replica_id, replica in self.replicas.items():
                if replica_id not in self.busy and not replica.running():
                    dead.append((replica_id, replica.proc.poll() if replica.proc else None))
            participants = self.participants
            if (
                participants is not None
                and "participants" not in self.busy
                and not participants.running()
            ):
                code = participants.proc.poll() if participants.proc else None
                dead.append(("participants", code))
        for name, code in dead:
            self._count(self.restarts, name)
            self.say(f"supervisor: {name} exited with {code}; restarting it")
            if name == "participants":
                self.start_participants()
            else:
                self.start_replica(name)

    # -- the workload

    def publish(self, sequence: list[str]) -> None:
        seen: set[str] = set()
        done = 0
        try:
            while done < len(sequence) and not self.closing.is_set():
                due = min(len(sequence), int((clock.monotonic() - self.t0) * self.config.rate) + 1)
                if due <= done:
                    self.closing.wait(0.1)
                    continue
                chunk = sequence[done:due]
                try:
                    publish_orders(self.bootstrap, chunk)
                except (RuntimeError, KafkaException, BufferError) as exc:
                    self.say(f"publisher: {exc}; retrying")
                    self.closing.wait(1.0)
                    continue
                for order_id in chunk:
                    if order_id in seen:
                        self.duplicates += 1
                    else:
                        seen.add(order_id)
                        self.published.append(order_id)
                done = due
        finally:
            self.publisher_done.set()

    # -- the nemesis

    def _free(self, fault: Fault) -> bool:
        if fault.target in self.replicas:  # keep at least one replica out of any fault
            busy_replicas = sum(1 for r in self.busy if r in self.replicas)
            return busy_replicas < max(1, self.config.replicas - 1)
        return True

    def nemesis(self, plan: list[Fault]) -> None:
        """One worker per target: its faults in plan order, never two at once on it."""
        by_target: dict[str, list[Fault]] = {}
        for fault in plan:
            by_target.setdefault(fault.target, []).append(fault)
        workers = [
            threading.Thread(target=self._worker, args=(faults,), name=f"nemesis-{target}")
            for target, faults in by_target.items()
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _worker(self, faults: list[Fault]) -> None:
        for fault in faults:  # late if the previous fault on this target is still healing
            if self.stop_faults.wait(max(0.0, self.t0 + fault.at_s - clock.monotonic())):
                return
            with self.lock:
                while not self._free(fault) and not self.stop_faults.is_set():
                    self.lock.wait(0.5)
                if self.stop_faults.is_set():
                    return
                self.busy.add(fault.target)
            self._inject(fault)

    def _inject(self, fault: Fault) -> None:
        try:
            self.say(f"fault: {fault.describe()}")
            match fault.kind:
                case "kill9-replica":
                    self._kill9_replica(fault)
                case "crashpoint-replica":
                    self._crashpoint_replica(fault)
                case "pause-replica":
                    self._pause_replica(fault)
                case "wipe-replica":
                    self._wipe_replica(fault)
                case "kill9-participants":
                    self._kill9_participants(fault)
                case "crashpoint-participants":
                    self._crashpoint_participants(fault)
                case "cut-replica":
                    self._cut_replica(fault)
                case "broker-kill9":
                    self._broker_kill9(fault)
                case _:
                    raise ValueError(f"unknown fault kind {fault.kind!r}")
        except Exception as exc:  # a harness failure: reported, never silently swallowed
            self.errors.append(f"{fault.describe()}: {type(exc).__name__}: {exc}")
            self.say(f"fault {fault.describe()} failed: {exc}")
        finally:
            with self.lock:
                self.busy.discard(fault.target)
                self.lock.notify_all()

    def _kill9_replica(self, fault: Fault) -> None:
        code = self.replicas[fault.target].kill()
        self._count(self.faults, fault.kind)
        self.closing.wait(fault.hold_s)
        self.start_replica(fault.target)
        self.say(f"healed: {fault.target} (exit {code}) restarted")

    def _crashpoint_replica(self, fault: Fault) -> None:
        replica = self.replicas[fault.target]
        replica.kill()
        if fault.point == "during-restore":  # a full restore, so the point is surely reached
            shutil.rmtree(replica.state_dir, ignore_errors=True)
        crashing = self.start_replica(fault.target, crash_at=f"{fault.point}:{fault.count}")
        if not self._await_crash(crashing, fault):
            return
        self.start_replica(fault.target)

    def _await_crash(self, crashing: ChildProcess | None, fault: Fault) -> bool:
        """Wait (bounded) for a process started with KSAGA_CRASH_AT to kill itself; count it as
        injected or missed. False when the run is closing (nothing may be started any more)."""
        if crashing is None:
            return False
        deadline = clock.monotonic() + CRASH_WAIT_S
        while crashing.running() and clock.monotonic() < deadline:
            if self.closing.wait(0.1):
                return False
        code = crashing.wait(0) if not crashing.running() else None
        if code == -signal.SIGKILL:
            self._count(self.faults, fault.kind)
            self.say(f"crashed: {fault.target} at {fault.point}:{fault.count}")
        else:
            self._count(self.missed, fault.kind)
            crashing.kill()
            self.say(f"missed: {fault.target} never reached {fault.point}:{fault.count} ({code})")
        return True

    def _pause_replica(self, fault: Fault) -> None:
        replica = self.replicas[fault.target]
        if not replica.running():  # exited on its own; the supervisor restarts it
            self._count(self.missed, fault.kind)
            return
        replica.signal(signal.SIGSTOP)
        self._hold_then_undo(fault, lambda: replica.signal(signal.SIGCONT))
        self.say(f"healed: {fault.target} continued (a zombie until it notices)")

    def _hold_then_undo(self, fault: Fault, undo: Callable[[], object]) -> None:
        """Count a reversible fault just injected, keep it for its hold time (less when the run
        closes), then undo it, even if the wait is interrupted: a paused replica or a cut link
        must never outlive the run."""
        self._count(self.faults, fault.kind)
        try:
            self.closing.wait(fault.hold_s)
        finally:
            undo()

    def _wipe_replica(self, fault: Fault) -> None:
        replica = self.replicas[fault.target]
        replica.terminate(30)
        shutil.rmtree(replica.state_dir, ignore_errors=True)
        self._count(self.faults, fault.kind)
        self.closing.wait(fault.hold_s)
        self.start_replica(fault.target)
        self.say(f"healed: {fault.target} restarted on an empty store")

    def _kill9_participants(self, fault: Fault) -> None:
        assert self.participants is not None
        self.participants.kill()
        self._count(self.faults, fault.kind)
        self.closing.wait(fault.hold_s)
        self.start_participants()
        self.say("healed: participants restarted")

    def _crashpoint_participants(self, fault: Fault) -> None:
        assert self.participants is not None
        self.participants.kill()
        crashing = self.start_participants(crash_at=f"{fault.point}:{fault.count}")
        if not self._await_crash(crashing, fault):
            return
        self.closing.wait(fault.hold_s)
        self.start_participants()
        self.say("healed: participants restarted; the redelivered commands meet the store")

    def _cut_replica(self, fault: Fault) -> None:
        assert self.cluster is not None
        proxied = self.cluster.proxied
        proxied.cut(fault.target)
        self._hold_then_undo(fault, lambda: proxied.restore(fault.target))
        self.say(f"healed: {fault.target}'s link to the brokers restored")

    def _broker_to_kill(self, cluster: KafkaCluster, fault: Fault) -> int:
        admin = cluster.admin()
        match fault.role:
            case "group-coordinator":
                found = group_coordinator(admin, GROUP_ID)
            case "txn-coordinator":
                found = transaction_coordinator(admin, f"{GROUP_ID}-{fault.replica}")
            case _:
                found = -1
        return found if found > 0 else cluster.leader_of(INBOX, fault.partition, timeout=30)

    def _broker_kill9(self, fault: Fault) -> None:
        cluster = self.cluster
        assert isinstance(cluster, KafkaCluster)
        node_id = self._broker_to_kill(cluster, fault)
        cluster.kill_node(node_id)
        self._count(self.faults, fault.kind)
        self.closing.wait(fault.hold_s)
        if self.on_main_thread(lambda: cluster.restart_node(node_id, wait=False)):
            cluster.wait_ready(cluster.ready_timeout, [cluster.node(node_id)])
            self.say(f"healed: broker {node_id} restarted")

    # -- the run

    def drive(self, plan: list[Fault], sequence: list[str]) -> tuple[bool, int]:
        """Workload and faults until both are over; heal; wait for quiescence (bounded)."""
        config = self.config
        for replica_id in config.replica_ids:
            self.start_replica(replica_id)
        self.start_participants()
        self.t0 = clock.monotonic()
        publisher = threading.Thread(target=self.publish, args=(sequence,), daemon=True)
        nemesis = threading.Thread(target=self.nemesis, args=(plan,), daemon=True)
        self.threads = [publisher, nemesis]
        for thread in self.threads:
            thread.start()
        while not (self.publisher_done.is_set() and self._elapsed() >= config.duration_s):
            self._tick()
        self.stop_faults.set()
        self.say("faults stopped; healing and waiting for every saga to finish")
        while nemesis.is_alive():
            nemesis.join(0.2)
            self._tick()
        if isinstance(self.cluster, KafkaCluster):
            self.cluster.heal()
        assert self.observer is not None
        want = {f"order/{o}" for o in self.published}
        deadline = clock.monotonic() + config.quiesce_timeout_s
        terminal = 0
        while clock.monotonic() < deadline:
            self._tick()
            terminal = len(want & self.observer.terminal().keys())
            if terminal == len(want):
                break
        else:
            stuck = sorted(want - self.observer.terminal().keys())[:10]
            self.say(f"NOT quiescent after {config.quiesce_timeout_s:g} s; not terminal: {stuck}")
        self.say(self._progress())
        self.say(
            f"faults injected {dict(sorted(self.faults.items()))}, missed {dict(self.missed)},"
            f" restarts {dict(self.restarts)}, harness errors {len(self.errors)}"
        )
        return terminal == len(want), terminal

    def _elapsed(self) -> float:
        return clock.monotonic() - self.t0

    def _tick(self) -> None:
        assert self.observer is not None
        self.observer.poll(0.2)
        self._run_main_calls()
        self.supervise()
        if clock.monotonic() - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = clock.monotonic()
            self.say(self._progress())

    def _progress(self) -> str:
        assert self.observer is not None
        status = self.observer.status
        terminal = sum(1 for o in self.published if status.get(f"order/{o}") in TERMINAL)
        return (
            f"published {len(self.published)}/{self.config.sagas} (+{self.duplicates} repeated),"
            f" terminal {terminal}, faults {sum(self.faults.values())},"
            f" restarts {sum(self.restarts.values())}"
        )

    def join_threads(self) -> None:
        for thread in self.threads:
            thread.join(30)

    # -- teardown

    def stop_processes(self) -> None:
        """No fault may start anything from now on; continue the paused, stop everything."""
        with self.lock:
            self.closing.set()
            self.stop_faults.set()
            processes: list[ChildProcess] = [*self.replicas.values()]
            if self.participants is not None:
                processes.append(self.participants)
        for process in processes:
            process.signal(signal.SIGCONT)
            process.signal(signal.SIGTERM)
        for process in processes:
            if process.wait(30) is None:
                process.kill()


def run_chaos(config: ChaosConfig, echo: Callable[[str], None] = print) -> ChaosResult:
    """Run the system under the seeded faults, quiesce it and judge it with the checker.

    ``echo`` receives every progress line; the checker's output (ending with its verdict line)
    comes last.
    """
    root = config.workdir or Path(tempfile.mkdtemp(prefix=f"ksaga-chaos-{config.seed}-"))
    root.mkdir(parents=True, exist_ok=True)
    run = _Run(config, root, echo)
    plan, sequence = plan_faults(config), plan_workload(config)
    echo(
        f"chaos: seed={config.seed} {config.cluster} cluster, {config.replicas} replicas,"
        f" {config.partitions} partitions, {config.sagas} sagas at {config.rate:g}/s"
        f" (+{len(sequence) - config.sagas} repeated triggers), {len(plan)} faults planned"
        f" over {config.duration_s:g} s; work dir {root}"
    )
    for fault in plan:
        echo(f"  plan +{fault.at_s:5.1f}s {fault.describe()}")
    quiesced, terminal = False, 0
    report: CheckReport | None = None
    checker_output: list[str] = []
    try:
        proxied = config.replica_ids  # each replica reaches the brokers through its own proxy
        if config.cluster == "single":
            run.cluster = KafkaBroker(root / "kafka", proxied=proxied).start()
        else:
            run.cluster = KafkaCluster(root / "kafka", proxied=proxied).start()
        run.say(
            f"Kafka {run.cluster.version} up at {run.bootstrap}"
            f" in {run.cluster.startup_seconds:.1f} s"
        )
        create_all_topics(run.bootstrap, config.partitions)
        run.observer = Observer(run.bootstrap)
        quiesced, terminal = run.drive(plan, sequence)
        run.stop_processes()  # the checker reads a log nobody writes any more
        report = _check(run, checker_output)
    finally:
        run.stop_processes()
        run.join_threads()
        if run.observer is not None:
            run.observer.close()
        if run.cluster is not None:
            run.cluster.stop()
    result = ChaosResult(
        config=config,
        plan=plan,
        faults=dict(run.faults),
        missed=dict(run.missed),
        restarts=dict(run.restarts),
        published=len(run.published),
        duplicates=run.duplicates,
        terminal=terminal,
        quiesced=quiesced,
        seconds=clock.monotonic() - run.began,
        workdir=root,
        errors=list(run.errors),
        report=report,
    )
    echo(result.summary())
    for line in checker_output:  # the verdict line is the last line of the run
        echo(line)
    if report is not None and report.passed and not quiesced:
        echo(f"verdict: FAIL not quiescent: {terminal}/{result.published} sagas terminal")
    if result.passed and config.workdir is None:
        shutil.rmtree(root, ignore_errors=True)  # kept on failure: the logs are there
    return result


def _check(run: _Run, output: list[str]) -> CheckReport | None:
    from orchestrator.testing.checker import CheckInput, check  # noqa: PLC0415 (parallel work)

    behaviour = run.config.behaviour
    declined = {o for o in run.published if behaviour.declines(o)}
    run.say(f"checking {len(run.published)} sagas ({len(declined)} declined by the participants)")
    buffer = io.StringIO()
    try:
        given = CheckInput(
            bootstrap=run.bootstrap, order_ids=list(run.published), declined=declined, poison={}
        )
        return check(given, faults=dict(run.faults), out=buffer)
    except Exception as exc:
        buffer.write(f"verdict: FAIL the checker raised {type(exc).__name__}: {exc}\n")
        return None
    finally:
        output.extend(buffer.getvalue().splitlines())


@click.command("chaos")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--duration", type=click.FloatRange(1), default=60.0, show_default=True)
@click.option("--sagas", type=click.IntRange(1), default=400, show_default=True)
@click.option("--rate", type=click.FloatRange(0.1), default=20.0, show_default=True)
@click.option("--replicas", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--partitions", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--cluster", type=click.Choice(["single", "three"]), default="single", show_default=True
)
@click.option("--fault-interval", type=click.FloatRange(0.5), default=6.0, show_default=True)
@click.option(
    "--faults",
    default="",
    help="Comma-separated fault kinds (default: all the cluster supports): "
    + ", ".join(FAULT_KINDS),
)
@click.option("--decline-rate", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--silent-rate", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--slow-rate", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option(
    "--duplicate-reply-rate", type=click.FloatRange(0, 1), default=0.03, show_default=True
)
@click.option("--duplicate-rate", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--quiesce-timeout", type=click.FloatRange(1), default=300.0, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where logs and state go (default: a temporary directory, deleted after a PASS).",
)
def chaos_command(
    *,
    seed: int,
    duration: float,
    sagas: int,
    rate: float,
    replicas: int,
    partitions: int,
    cluster: Literal["single", "three"],
    fault_interval: float,
    faults: str,
    decline_rate: float,
    silent_rate: float,
    flaky_rate: float,
    slow_rate: float,
    duplicate_reply_rate: float,
    duplicate_rate: float,
    quiesce_timeout: float,
    workdir: Path | None,
) -> None:
    """A seeded fault-injection run; the last line is the checker's verdict (exit 0 on PASS)."""
    try:
        config = ChaosConfig(
            seed=seed, duration_s=duration, sagas=sagas, rate=rate, replicas=replicas,
            partitions=partitions, cluster=cluster, decline_rate=decline_rate,
            silent_rate=silent_rate, flaky_rate=flaky_rate, slow_rate=slow_rate,
            duplicate_reply_rate=duplicate_reply_rate, duplicate_trigger_rate=duplicate_rate,
            faults=tuple(k.strip() for k in faults.split(",") if k.strip()) or None,
            fault_interval_s=fault_interval, quiesce_timeout_s=quiesce_timeout, workdir=workdir,
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    result = run_chaos(config, echo=click.echo)
    sys.stdout.flush()
    sys.exit(0 if result.passed else 1)
