"""``ksaga bench``: how fast is ksaga on this machine, measured on a checked run.

One run: a fresh local broker (or ``--bootstrap``, which must be an empty cluster), topics with
P partitions, R orchestrator replicas (each with /metrics) and the example participants as
separate processes (no real work; 10 % of orders declined at payment, so compensated), a few
warm-up sagas, then N measured ``OrderPlaced`` triggers. It waits until every saga is terminal,
stops the replicas and runs the log checker; outcomes must equal ``expected_outcome`` and the
checker must pass, otherwise no figure is printed and it exits 1.

How each figure is measured (the measured window starts at ``t0``, the wall-clock time of the
first measured trigger, after the warm-up sagas finished):

* ``sagas_per_s`` = N / (last measured terminal state record's timestamp - t0). Record timestamps
  of ``ksaga.state`` are CreateTime, stamped by the orchestrator's producer when it produced the
  record inside its transaction (the commit follows within one commit latency).
* latency (``--rate X``, open loop): trigger i is *scheduled* at t0 + i/X and sent then (never
  held back by slow sagas); its latency is its first terminal state record's timestamp minus its
  scheduled time, so a stall delays the sends it should have made and shows in the latency of
  every saga behind it (no coordinated omission). Quantiles are nearest-rank over all N. The
  p50 is split into time with the participants and the rest (:func:`participant_ms`).
* records in / out: see :func:`count_records`.
* ``mean_batch_records``, ``commit_p50_ms``/``commit_p99_ms``: the difference of the replicas'
  ``ksaga_batch_records`` / ``ksaga_commit_seconds`` histograms scraped at t0 and at the end,
  summed over replicas; quantiles interpolated inside buckets (``report.bucket_quantile``).
* CPU: utime + stime from ``/proc/<pid>/stat`` at t0 and just before the replicas are stopped,
  for the replicas, the participants and the broker JVM; peak RSS is ``VmHWM`` of each replica
  (whole lifetime, including start-up and the warm-up).
* RSS over time (``--rate`` only): ``rss.RssSampler`` reads each replica's and the
  participants' ``VmRSS`` every ``--rss-interval`` s from t0 until every saga finished;
  ``rss.summarise`` reports first/last/max and the least-squares slope (MiB/min, MiB per 100k
  sagas) after a warm-up (the first minute, or half of a shorter window).
* ``--ceiling``: ``copier.run_copier`` on the same broker after the replicas stopped.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from confluent_kafka import Message, Producer
from rich.console import Console

from connectors.order_participants import ORDER_COMMAND_TOPICS, Behaviour, expected_outcome
from orchestrator import clock
from orchestrator.bench.copier import run_copier
from orchestrator.bench.report import (
    Histogram,
    compare_table,
    cpu_seconds,
    parse_histograms,
    peak_rss_mb,
    result_table,
    sample_quantile,
)
from orchestrator.bench.restore import RestoreBenchConfig, run_restore
from orchestrator.bench.rss import RssSampler, summarise, write_csv
from orchestrator.kafka import produce_when_room
from orchestrator.testing.checker import CheckInput, check, read_to_end
from orchestrator.testing.kafka_cluster import KafkaBroker, free_ports, wait_for
from orchestrator.testing.system import (
    TERMINAL,
    ChildProcess,
    ParticipantsProcess,
    ReplicaProcess,
    create_all_topics,
)
from sagas.order import OrderItem, OrderPlaced
from schemas.codec import RecordType, default_catalog

__all__ = ["BenchConfig", "bench_command", "count_records", "run_bench"]

_console = Console(stderr=True)
TRIGGER_TOPIC = "orders"
WARMUP = 1_000
_HISTOGRAMS = ("ksaga_batch_records", "ksaga_commit_seconds")


@dataclass(frozen=True)
class BenchConfig:
    n: int = 20_000
    replicas: int = 1
    partitions: int = 8
    rate: float | None = None
    ceiling: bool = False
    bootstrap: str | None = None
    seed: int = 7
    timeout_s: float = 900.0
    workdir: Path | None = None
    restore: bool = False
    restore_states: int = 1_000_000
    warmup: int = WARMUP
    rss_interval_s: float = 5.0
    rss_csv: Path | None = None


class BenchFailed(Exception):
    """The run could not be judged correct: no figures."""


@dataclass
class _Replica:
    process: ReplicaProcess
    port: int

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def histograms(self) -> dict[str, Histogram]:
        return parse_histograms(self.get("/metrics")[1].decode(), _HISTOGRAMS)

    def finished(self) -> float:
        text = self.get("/metrics")[1].decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ksaga_sagas_finished_total{")
        )


@dataclass
class _Window:
    """What is snapshotted at t0 and at the end of the measured window."""

    cpu: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)


def _order(order_id: str) -> bytes:
    return (
        OrderPlaced(
            order_id=order_id,
            customer_id=f"c-{order_id}",
            items=[OrderItem(sku="kafka-book", quantity=1)],
            amount_cents=3_999,
            address="1 Log Street",
        )
        .model_dump_json()
        .encode()
    )


def _publish(
    bootstrap: str, order_ids: Sequence[str], rate: float | None, t0_ms: list[int]
) -> None:
    """Send the triggers: as fast as possible, or trigger i at its scheduled time t0 + i/rate.

    ``t0_ms[0]`` receives the wall-clock time of the first (scheduled) send.
    """
    values = [(o.encode(), _order(o)) for o in order_ids]  # encoded before the clock starts
    # Not idempotent: at a few records per second librdkafka's idempotent producer held some
    # records ~0.5 s before sending (measured: idempotent + poll(0), 40 records 150 ms apart,
    # max 520-650 ms from CreateTime to a consumer; the same without idempotence, max 60-68 ms),
    # which latency mode would charge to ksaga. A trigger sent twice on a retry is harmless:
    # a saga starts once per id.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all", "linger.ms": 0}
    )
    start_mono = clock.monotonic()
    t0_ms.append(clock.wall_ms())
    pause = threading.Event()
    for i, (key, value) in enumerate(values):
        if rate is not None:
            ahead = start_mono + i / rate - clock.monotonic()
            if ahead > 0:
                pause.wait(ahead)
        produce_when_room(producer, TRIGGER_TOPIC, poll_s=0.01, key=key, value=value)
        producer.poll(0)
    if producer.flush(60):
        raise BenchFailed("triggers not delivered within 60 s")


def count_records(
    messages: Sequence[Message],
    t0_ms: int,
    *,
    inbox: str = "ksaga.inbox",
    state: str = "ksaga.state",
    history: str = "ksaga.history",
    dlq: str = "ksaga.dlq",
) -> dict[str, int]:
    """Records through the orchestrator in the measured window, by topic, from the log itself.

    Records in = the trigger records and every inbox record (StartSaga and TimerFired the
    orchestrator wrote to itself, Reply from the participants): everything its consumer reads.
    Records out = state + history + command + the inbox records the orchestrator produced
    (StartSaga, TimerFired) + dead letters.

    Method: the topics' end offsets bound the window, and the records between them are read
    back with read_committed (``checker.read_to_end``) and counted, keeping those whose
    timestamp (inbox: LogAppendTime; others: CreateTime) is at or after t0; inbox records are
    told apart by their envelope type. End offsets alone over-count: every transaction also
    writes a commit marker, which takes an offset, into each partition it touched (with the
    orchestrator's small batches that is a large share of the offsets).
    """
    catalog = default_catalog()
    counts: Counter[str] = Counter()
    for msg in messages:
        if msg.timestamp()[1] < t0_ms:
            continue
        topic = msg.topic() or ""
        if topic == inbox:
            kind = catalog.decode(msg.value()).record_type
            counts["inbox_replies" if kind == RecordType.REPLY else "inbox_own"] += 1
        elif topic in (state, history, dlq, TRIGGER_TOPIC):
            counts[topic] += 1
        else:
            counts["commands"] += 1
    records_in = counts[TRIGGER_TOPIC] + counts["inbox_own"] + counts["inbox_replies"]
    records_out = (
        counts[state] + counts[history] + counts["commands"] + counts["inbox_own"] + counts[dlq]
    )
    return {**counts, "records_in": records_in, "records_out": records_out}


def participant_ms(messages: Sequence[Message], inbox: str = "ksaga.inbox") -> dict[str, int]:
    """Per saga, the milliseconds its commands spent with the participants.

    A saga has one command in flight, so its commands and replies alternate: each command's
    CreateTime (the orchestrator's producer) to the LogAppendTime of the saga's next reply in the
    inbox. This includes the orchestrator's commit of the command's transaction (the
    participants read with read_committed) and the participants' own batching. The rest of a
    saga's latency is the orchestrator and Kafka (routing, folds, transactions, fetches).
    """
    catalog = default_catalog()
    events: dict[str, list[tuple[int, bool]]] = defaultdict(list)  # (ts, is_reply)
    for msg in messages:
        topic = msg.topic()
        if topic in ORDER_COMMAND_TOPICS:
            saga_id = catalog.decode_as(RecordType.COMMAND, msg.value()).value["saga_id"]
            events[saga_id].append((msg.timestamp()[1], False))
        elif topic == inbox and msg.value() is not None:
            decoded = catalog.decode(msg.value())
            if decoded.record_type == RecordType.REPLY:
                events[decoded.value["saga_id"]].append((msg.timestamp()[1], True))
    spent: dict[str, int] = {}
    for saga_id, seq in events.items():
        total, sent = 0, None
        for ts, is_reply in sorted(seq, key=lambda e: (e[0], e[1])):
            if not is_reply:
                sent = ts if sent is None else sent
            elif sent is not None:
                total, sent = total + ts - sent, None
        spent[saga_id] = total
    return spent


def _terminal_states(messages: Sequence[Message], state_topic: str) -> dict[str, tuple[str, int]]:
    """saga id -> (last status, timestamp of its first terminal state record)."""
    catalog = default_catalog()
    last: dict[str, str] = {}
    first_terminal: dict[str, int] = {}
    by_partition: dict[int, list[Message]] = defaultdict(list)
    for msg in messages:
        if msg.topic() == state_topic and msg.value() is not None:
            by_partition[msg.partition() or 0].append(msg)
    for msgs in by_partition.values():
        for msg in sorted(msgs, key=lambda m: m.offset() or 0):
            value = catalog.decode_as(RecordType.SAGA_STATE, msg.value()).value
            saga_id, status = value["saga_id"], value["status"]
            last[saga_id] = status
            if status in TERMINAL and saga_id not in first_terminal:
                first_terminal[saga_id] = msg.timestamp()[1]
    return {s: (last[s], first_terminal.get(s, -1)) for s in last}


@contextlib.contextmanager
def _system(config: BenchConfig, root: Path) -> Iterator[tuple[str, KafkaBroker | None]]:
    broker: KafkaBroker | None = None
    if config.bootstrap is None:
        _console.print("starting a local Apache Kafka broker (KRaft)...")
        broker = KafkaBroker(root / "kafka").start()
    try:
        yield broker.bootstrap_servers if broker else str(config.bootstrap), broker
    finally:
        if broker is not None:
            broker.stop()


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """One checked run; the result mapping (``check_passed`` False and no figures on failure).

    Raises ``BenchFailed`` when the system could not even finish the sagas (a process died, a
    timeout); everything started is stopped in every case.
    """
    logging.getLogger("ksaga.testing.kafka").setLevel(logging.ERROR)
    root = config.workdir or Path(tempfile.mkdtemp(prefix="ksaga-bench-"))
    if config.restore:
        return _run_restore(config, root)
    with _system(config, root) as (bootstrap, broker):
        run = _Run(config, bootstrap, broker, root)
        try:
            ok = run.execute()
        except BenchFailed as exc:
            raise BenchFailed(f"{exc}\n(logs kept in {root})") from exc
        finally:
            run.stop()
    if ok and config.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    elif not ok:
        run.result["workdir"] = str(root)  # logs kept
    return run.result


def _run_restore(config: BenchConfig, root: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "mode": "restore",
        "n": config.restore_states,
        "partitions": config.partitions,
        "check_passed": False,
    }
    with _system(config, root) as (bootstrap, broker):
        if broker is not None:
            result["kafka_version"] = broker.version
        restore = RestoreBenchConfig(config.restore_states, config.partitions, config.timeout_s)
        result.update(run_restore(bootstrap, root, restore))
    if result["check_passed"] and config.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    elif not result["check_passed"]:
        result["workdir"] = str(root)  # logs kept
    return result


_TOPICS = ("ksaga.inbox", "ksaga.state", "ksaga.history", "ksaga.dlq")


class _Run:
    def __init__(
        self, config: BenchConfig, bootstrap: str, broker: KafkaBroker | None, root: Path
    ) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.broker = broker
        self.root = root
        self.behaviour = Behaviour(
            seed=config.seed, decline_rate=0.1, flaky_rate=0.0, silent_rate=0.0
        )
        self.warm = [f"warm-{i:06d}" for i in range(config.warmup)]
        self.measured = [f"bench-{i:07d}" for i in range(config.n)]
        self.wanted = {f"order/{o}" for o in [*self.warm, *self.measured]}
        self.result: dict[str, Any] = {
            "mode": "latency" if config.rate else "throughput",
            "n": config.n,
            "replicas": config.replicas,
            "partitions": config.partitions,
            "rate": config.rate,
            "warmup": config.warmup,
            "check_passed": False,
        }
        if broker is not None:
            self.result["kafka_version"] = broker.version
        self.replicas: list[_Replica] = []
        self.participants: ParticipantsProcess | None = None
        self.processes: list[ChildProcess] = []
        self.pids: dict[str, int] = {}

    def execute(self) -> bool:
        self.start()
        self.warm_up()
        start = self.snapshot()
        sampler = self.rss_sampler()
        try:
            t0_ms = self.publish_and_wait()
        finally:
            samples = sampler.stop() if sampler else []
        messages, states = self.read_log()
        end = self.snapshot()
        rss = [round(peak_rss_mb(r.process.proc.pid), 1) for r in self.replicas if r.process.proc]
        self.stop()  # quiescence for the checker
        if not self.verify(states):
            return False
        self.figures(t0_ms, messages, states, start, end)
        self.result["replica_peak_rss_mb"] = rss
        if samples:
            self.result["rss"] = {"interval_s": self.config.rss_interval_s, **summarise(samples)}
            if self.config.rss_csv is not None:
                write_csv(samples, self.config.rss_csv)
        if self.config.ceiling:
            self.ceiling(messages)
        return True

    def rss_sampler(self) -> RssSampler | None:
        """Constant load only (``--rate``): the replicas' and participants' RSS over time."""
        if not self.config.rate:
            return None
        pids = {k.removeprefix("replica:"): p for k, p in self.pids.items() if k != "broker"}

        def sagas() -> float:
            return sum(r.finished() for r in self.replicas)

        return RssSampler(pids, sagas, self.config.rss_interval_s).start()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate(30)

    def alive(self) -> None:
        for process in self.processes:
            if not process.running():
                raise BenchFailed(f"{process.name} exited\n{process.tail()}")

    def start(self) -> None:
        config = self.config
        create_all_topics(self.bootstrap, config.partitions)
        for i, port in enumerate(free_ports(config.replicas)):
            replica = ReplicaProcess(
                self.bootstrap, f"replica-{i}", self.root, http_port=port,
                partitions=config.partitions,
            )  # fmt: skip
            self.replicas.append(_Replica(replica, port))
        self.participants = ParticipantsProcess(
            self.bootstrap, self.root, "--seed", str(self.behaviour.seed),
            "--decline-rate", "0.1", "--flaky-rate", "0", "--silent-rate", "0",
            "--poll-timeout-ms", "20",  # measure ksaga, not the example participants' batching
        )  # fmt: skip
        self.processes = [*(r.process for r in self.replicas), self.participants]
        _console.print(f"starting {config.replicas} replica(s) and the participants...")
        for process in self.processes:
            process.start()
            assert process.proc is not None
            kind = "participants" if process is self.participants else f"replica:{process.name}"
            self.pids[kind] = process.proc.pid
        if self.broker is not None and self.broker.nodes[0].pid is not None:
            self.pids["broker"] = self.broker.nodes[0].pid

        def ready() -> bool:
            self.alive()
            assigned: set[str] = set()
            for replica in self.replicas:
                code, body = replica.get("/ready")
                if code != 200:
                    return False
                assigned |= {a for a in json.loads(body)["assigned"] if a.startswith("ksaga.inbox")}
            return len(assigned) == config.partitions

        wait_for(ready, 120, "every replica ready and every inbox partition assigned",
                 interval=0.2, ignore=(OSError,))  # fmt: skip

    def finished_at_least(self, count: int) -> bool:
        self.alive()
        return sum(r.finished() for r in self.replicas) >= count

    def warm_up(self) -> None:
        """Connections, group joins, the first transactions and the broker's JIT (C2 compiles
        the hot request paths over the first seconds of load) all happen before t0."""
        _publish(self.bootstrap, self.warm, None, [])
        wait_for(lambda: self.finished_at_least(len(self.warm)), 300, "the warm-up sagas",
                 interval=0.1, ignore=(OSError,))  # fmt: skip

    def snapshot(self) -> _Window:
        histograms = {name: Histogram() for name in _HISTOGRAMS}
        for replica in self.replicas:
            for name, hist in replica.histograms().items():
                histograms[name] = histograms[name] + hist
        return _Window({k: cpu_seconds(p) for k, p in self.pids.items()}, histograms)

    def publish_and_wait(self) -> int:
        config = self.config
        mode = f"at {config.rate:g}/s (open loop)" if config.rate else "as fast as possible"
        _console.print(f"publishing {config.n:,} triggers {mode}...")
        t0: list[int] = []
        errors: list[BaseException] = []

        def publish() -> None:
            try:
                _publish(self.bootstrap, self.measured, config.rate, t0)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        publisher = threading.Thread(target=publish, name="bench-publisher", daemon=True)
        publisher.start()
        total = len(self.wanted)
        try:
            wait_for(lambda: self.finished_at_least(total), config.timeout_s,
                     f"{config.n} sagas to finish", interval=0.25, ignore=(OSError,))  # fmt: skip
        except TimeoutError as exc:
            raise BenchFailed(str(exc)) from exc
        publisher.join(60)
        if errors or not t0:
            raise BenchFailed(f"publishing failed: {errors[0] if errors else 'no trigger'!r}")
        return t0[0]

    def read_log(self) -> tuple[list[Message], dict[str, tuple[str, int]]]:
        """Every record, once every saga is terminal in the log (the metric may count a saga
        re-run after a rebalance twice, so it only says when to look)."""
        topics = [TRIGGER_TOPIC, *_TOPICS, *ORDER_COMMAND_TOPICS]

        def everything_terminal() -> tuple[list[Message], dict[str, tuple[str, int]]] | None:
            self.alive()
            messages = read_to_end(self.bootstrap, topics)
            states = _terminal_states(messages, "ksaga.state")
            done = all(states.get(s, ("", -1))[0] in TERMINAL for s in self.wanted)
            return (messages, states) if done else None

        try:
            return wait_for(everything_terminal, 120, "every saga terminal in the log",
                            interval=1.0)  # fmt: skip
        except TimeoutError as exc:
            raise BenchFailed(str(exc)) from exc

    def verify(self, states: dict[str, tuple[str, int]]) -> bool:
        """Outcomes as the participants decided, and the log checker's verdict."""
        wrong = []
        for saga_id in sorted(self.wanted):
            want = expected_outcome(saga_id.removeprefix("order/"), self.behaviour)
            got = states.get(saga_id, ("missing", -1))[0]
            if got != want:
                wrong.append(f"{saga_id}: expected {want}, got {got}")
        ids = [*self.warm, *self.measured]
        declined = {o for o in ids if self.behaviour.declines(o)}
        out = io.StringIO()
        report = check(CheckInput(self.bootstrap, ids, declined=declined), out=out)
        self.result["check_passed"] = report.passed and not wrong
        if not self.result["check_passed"]:
            self.result["problems"] = (wrong + report.problems)[:50]
            _console.print(out.getvalue()[-5000:])
            for line in wrong[:20]:
                _console.print(f"[red]{line}[/]")
        return bool(self.result["check_passed"])

    def figures(
        self,
        t0_ms: int,
        messages: list[Message],
        states: dict[str, tuple[str, int]],
        start: _Window,
        end: _Window,
    ) -> None:
        config, result = self.config, self.result
        ends = [states[f"order/{o}"][1] for o in self.measured]
        duration_s = (max(ends) - t0_ms) / 1000
        result["outcomes"] = dict(Counter(states[f"order/{o}"][0] for o in self.measured))
        result["duration_s"] = round(duration_s, 3)
        result["sagas_per_s"] = round(config.n / duration_s, 2)
        if config.rate:
            latencies = [e - (t0_ms + i * 1000 / config.rate) for i, e in enumerate(ends)]
            for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "max")):
                value = sample_quantile(q, latencies)
                result[f"latency_{key}_ms"] = round(value, 1) if value is not None else None
            spent = participant_ms(messages)
            own = [spent.get(f"order/{o}", 0) for o in self.measured]
            rest = [lat - p for lat, p in zip(latencies, own, strict=True)]
            for key, values in (("participants", own), ("orchestrator_kafka", rest)):
                value = sample_quantile(0.5, values)
                result[f"latency_{key}_p50_ms"] = round(value, 1) if value is not None else None
        counts = count_records(messages, t0_ms)
        result["records"] = {k: v for k, v in counts.items() if not k.startswith("records_")}
        result["records_in"] = counts["records_in"]
        result["records_out"] = counts["records_out"]
        moved = counts["records_in"] + counts["records_out"]
        result["records_per_s"] = round(moved / duration_s, 1)
        batch = end.histograms["ksaga_batch_records"] - start.histograms["ksaga_batch_records"]
        commit = end.histograms["ksaga_commit_seconds"] - start.histograms["ksaga_commit_seconds"]
        result["mean_batch_records"] = round(batch.mean, 2) if batch.mean is not None else None
        result["transactions"] = int(commit.count)
        for q, key in ((0.5, "commit_p50_ms"), (0.99, "commit_p99_ms")):
            value = commit.quantile(q)
            result[key] = round(value * 1000, 2) if value is not None else None
        cpu = {k: end.cpu[k] - start.cpu[k] for k in self.pids}
        orchestrator_cpu = sum(v for k, v in cpu.items() if k.startswith("replica:"))
        result["orchestrator_cpu_s"] = round(orchestrator_cpu, 2)
        result["orchestrator_cpu_s_per_1000_sagas"] = round(orchestrator_cpu / config.n * 1000, 3)
        result["participants_cpu_s"] = round(cpu.get("participants", 0.0), 2)
        if "broker" in cpu:
            result["broker_cpu_s"] = round(cpu["broker"], 2)

    def ceiling(self, messages: list[Message]) -> None:
        result = self.result
        records_in = int(result["records_in"])
        fanout = max(1, round(result["records_out"] / max(1, records_in)))
        inbox = [m for m in messages if m.topic() == "ksaga.inbox" and m.value() is not None]
        size = round(sum(len(m.value() or b"") for m in inbox) / max(1, len(inbox)))
        records = max(1_000, records_in)
        _console.print(f"ceiling: a bare transactional copier, {records:,} records x{fanout}...")
        copier = run_copier(
            self.bootstrap, partitions=self.config.partitions, records=records, fanout=fanout,
            value_size=max(1, size), batch_max_records=500,
        )  # fmt: skip
        result["ceiling_records"] = copier.records_in
        result["ceiling_fanout"] = fanout
        result["ceiling_transactions"] = copier.transactions
        result["ceiling_records_per_s"] = round(copier.records_per_s, 1)
        result["ceiling_ratio"] = round(result["records_per_s"] / copier.records_per_s, 4)


# --------------------------------------------------------------------------- the command


@click.command("bench")
@click.option("-n", "--sagas", "n", type=click.IntRange(1), default=20_000, show_default=True,
              help="Sagas measured (after the --warmup sagas, not measured).")  # fmt: skip
@click.option("--warmup", type=click.IntRange(1), default=WARMUP, show_default=True,
              help="Sagas run to completion before the measured window opens.")  # fmt: skip
@click.option("--replicas", type=click.IntRange(1, 8), default=1, show_default=True)
@click.option("--partitions", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Latency mode: open loop, trigger i sent at i/RATE s; reports saga latency p50..max."
    " Without it: throughput mode (publish as fast as possible).",
)
@click.option(
    "--ceiling",
    is_flag=True,
    help="After the run, time a bare transactional copier on the same broker (ceiling_ratio).",
)
@click.option(
    "--restore",
    is_flag=True,
    help="Restore mode: fill ksaga.state with --restore-states sagas, then time a replica's"
    " rebuild of its RocksDB store from it (states/s, peak RSS) in a separate process.",
)
@click.option("--restore-states", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Sagas in ksaga.state for --restore.")  # fmt: skip
@click.option(
    "--bootstrap",
    default=None,
    help="Use this cluster instead of starting a broker. It must be an EMPTY cluster: the bench"
    " creates and counts ksaga's topics and the order saga's topics.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Participants' seed.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1), default=900.0, show_default=True)
@click.option("--rss-interval", "rss_interval_s", type=click.FloatRange(min=0.1), default=5.0,
              show_default=True, help="With --rate: seconds between RSS samples.")  # fmt: skip
@click.option("--rss-csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --rate: write the RSS timeline (CSV) to this file.")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the result as a JSON object to this file.")  # fmt: skip
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Show two earlier --json results side by side (B/A ratios); runs nothing.",
)
def bench_command(
    *,
    n: int,
    replicas: int,
    partitions: int,
    rate: float | None,
    ceiling: bool,
    restore: bool,
    restore_states: int,
    warmup: int,
    bootstrap: str | None,
    seed: int,
    timeout_s: float,
    rss_interval_s: float,
    rss_csv: Path | None,
    json_path: Path | None,
    compare: tuple[Path, Path] | None,
) -> None:
    """Measure sagas/s, latency, CPU and records/s on a run whose log the checker passes.

    With --restore: the rate at which a replica rebuilds its store from ksaga.state instead,
    checked state by state. A failed check prints no figures and exits 1.
    """
    console = Console()
    if compare is not None:
        a, b = (json.loads(p.read_text()) for p in compare)
        console.print(compare_table(a, b, (compare[0].name, compare[1].name)))
        return
    if restore and (rate is not None or ceiling):
        raise click.UsageError("--restore measures a restore only; drop --rate and --ceiling")
    config = BenchConfig(
        n=n, replicas=replicas, partitions=partitions, rate=rate, ceiling=ceiling,
        bootstrap=bootstrap, seed=seed, timeout_s=timeout_s, restore=restore,
        restore_states=restore_states, warmup=warmup, rss_interval_s=rss_interval_s,
        rss_csv=rss_csv,
    )  # fmt: skip
    try:
        result = run_bench(config)
    except BenchFailed as exc:
        _console.print(f"[red]bench failed: {exc}[/]")
        result = {"n": n, "replicas": replicas, "partitions": partitions, "check_passed": False,
                  "problems": [str(exc)[:2000]]}  # fmt: skip
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if not result["check_passed"]:
        console.print("[red]check FAILED: no figures[/]")
        sys.exit(1)
    console.print(result_table(result))
    console.print("check: ok")
