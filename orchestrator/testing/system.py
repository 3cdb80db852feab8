"""A whole ksaga system on a real broker, as separate processes: for the demo and the tests.

Orchestrator replicas and example participants run as real OS processes (``python -m
orchestrator run`` / ``participants``), so tests can SIGTERM, kill -9 and restart them exactly as
a supervisor would. The ``Observer`` reads what happened only from the topics, with
read_committed: the latest state per saga, and every command the orchestrator emitted, which is
what the checks judge (never the processes' own accounts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from orchestrator.config import load_settings
from orchestrator.registry import load_registry
from orchestrator.topics import create_topics, plan_topics
from sagas.order import OrderItem, OrderPlaced
from schemas.codec import RecordType, default_catalog

__all__ = [
    "TERMINAL",
    "ChildProcess",
    "CommandSeen",
    "Observer",
    "ParticipantsProcess",
    "ReplicaProcess",
    "create_all_topics",
    "publish_orders",
]

TERMINAL = frozenset({"COMPLETED", "COMPENSATED", "FAILED"})


def create_all_topics(
    bootstrap: str, partitions: int, prefix: str = "ksaga.", client: Mapping[str, Any] = {}
) -> None:
    """``client``: extra librdkafka settings (e.g. a secured broker's admin login)."""
    settings = load_settings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    registry = load_registry(settings.sagas_module)
    extra = {*registry.trigger_topics, *registry.command_topics}
    admin = AdminClient({"bootstrap.servers": bootstrap, **client})
    create_topics(admin, plan_topics(settings, partitions, extra))


class ChildProcess:
    """A child process with its output in a log file, stoppable the way a supervisor does."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        *,
        inherit_env: bool = True,
    ) -> None:
        """``inherit_env=False``: exactly ``env`` and nothing of ours (a container's view)."""
        self.name = name
        self.argv = argv
        self.env = {**os.environ, **env} if inherit_env else dict(env)
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> int | None:
        """kill -9: no cleanup of any kind, as in a crash."""
        self.signal(signal.SIGKILL)
        return self.wait(30)

    def terminate(self, timeout: float = 60) -> int | None:
        """SIGTERM and wait: a graceful stop (a Kubernetes pod deletion)."""
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
        return code

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ReplicaProcess(ChildProcess):
    def __init__(self, bootstrap: str, replica_id: str, workdir: Path, **settings: Any) -> None:
        env = {
            "KSAGA_BOOTSTRAP_SERVERS": bootstrap,
            "KSAGA_REPLICA_ID": replica_id,
            "KSAGA_STATE_DIR": str(workdir / replica_id / "rocksdb"),
            "KSAGA_TRANSACTION_TIMEOUT_MS": "10000",
            "KSAGA_SESSION_TIMEOUT_MS": "6000",
            # The watchdog's limit: above the loop's longest bounded wait (transaction timeout
            # + 30 s), well below the default 120 s so a stalled replica is restarted sooner.
            "KSAGA_LIVENESS_TIMEOUT_S": "45",
            **{f"KSAGA_{k.upper()}": str(v) for k, v in settings.items()},
        }
        protocol = settings.get("group_protocol", os.environ.get("KSAGA_GROUP_PROTOCOL"))
        if protocol == "consumer":  # the broker's session timeout rules (KIP-848)
            del env["KSAGA_SESSION_TIMEOUT_MS"]
        argv = [sys.executable, "-m", "orchestrator", "run", "--log-level", "INFO"]
        super().__init__(replica_id, argv, env, workdir / f"{replica_id}.log")
        self.state_dir = Path(env["KSAGA_STATE_DIR"])


class ParticipantsProcess(ChildProcess):
    def __init__(
        self,
        bootstrap: str,
        workdir: Path,
        *options: str,
        name: str = "participants",
        env: Mapping[str, str] | None = None,
    ) -> None:
        argv = [
            sys.executable, "-m", "orchestrator", "participants", "--bootstrap", bootstrap,
            "--state-dir", str(workdir / name / "rocksdb"), *options,
        ]  # fmt: skip
        super().__init__(name, argv, dict(env or {}), workdir / f"{name}.log")


def publish_orders(
    bootstrap: str,
    order_ids: Iterable[str],
    topic: str = "orders",
    client: Mapping[str, Any] = {},
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **client})
    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    count = 0
    for order_id in order_ids:
        event = OrderPlaced(
            order_id=order_id,
            customer_id=f"c-{order_id}",
            items=[OrderItem(sku="kafka-book", quantity=1)],
            amount_cents=3_999,
            address="1 Log Street",
        )
        producer.produce(
            topic,
            key=order_id.encode(),
            value=event.model_dump_json().encode(),
            on_delivery=delivered,
        )
        producer.poll(0)
        count += 1
    if producer.flush(30):
        raise RuntimeError("triggers not delivered within 30 s")
    if failed:
        raise RuntimeError(f"{len(failed)} trigger(s) refused by the broker: {failed[0]}")
    return count


@dataclass(frozen=True, slots=True)
class CommandSeen:
    saga_id: str
    step: str
    action: str
    attempt: int
    idempotency_key: str
    command_type: str


@dataclass
class Observer:
    """Tails the state and command topics with read_committed and keeps what it saw."""

    bootstrap: str
    command_topics: tuple[str, ...] = (
        "inventory.commands",
        "payments.commands",
        "shipping.commands",
    )
    state_topic: str = "ksaga.state"
    dlq_topic: str = "ksaga.dlq"
    client: Mapping[str, Any] = field(default_factory=dict)  # e.g. a secured broker's login
    status: dict[str, str] = field(default_factory=dict)
    commands: list[CommandSeen] = field(default_factory=list)
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    _consumer: Consumer | None = None

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"ksaga-observer-{os.getpid()}-{id(self)}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **self.client,
            }
        )
        self._consumer.subscribe([self.state_topic, self.dlq_topic, *self.command_topics])

    def poll(self, timeout: float = 0.2) -> int:
        assert self._consumer is not None
        catalog = default_catalog()
        seen = 0
        for msg in self._consumer.consume(1_000, timeout):
            if msg.error() is not None:
                continue
            seen += 1
            topic, value = msg.topic(), msg.value()
            if topic == self.state_topic:
                if value is not None:
                    state = catalog.decode_as(RecordType.SAGA_STATE, value).value
                    self.status[state["saga_id"]] = state["status"]
            elif topic == self.dlq_topic:
                raw: Any = msg.headers() or []
                headers = {k: bytes(v or b"").decode(errors="replace") for k, v in raw}
                self.dead_letters.append(headers)
            elif value is not None:
                c = catalog.decode_as(RecordType.COMMAND, value).value
                self.commands.append(
                    CommandSeen(c["saga_id"], c["step"], c["action"], c["attempt"],
                                c["idempotency_key"], c["command_type"])
                )  # fmt: skip
        return seen

    def terminal(self) -> dict[str, str]:
        return {k: v for k, v in self.status.items() if v in TERMINAL}

    def outcomes(self) -> Counter[str]:
        return Counter(self.status.values())

    def duplicate_commands(self) -> list[tuple[str, int]]:
        """(idempotency key, attempt) pairs emitted more than once: must be empty."""
        counts = Counter((c.idempotency_key, c.attempt) for c in self.commands)
        return sorted(key for key, n in counts.items() if n > 1)

    def undo_order(self, saga_id: str) -> list[str]:
        """The steps compensated, in the order their first UNDO was sent."""
        steps = [c.step for c in self.commands if c.saga_id == saga_id and c.action == "UNDO"]
        return list(dict.fromkeys(steps))

    def attempt_gaps(self) -> list[tuple[str, list[int]]]:
        """Idempotency keys whose attempts, in log order, are not exactly 1, 2, ..., n."""
        attempts: dict[str, list[int]] = {}
        for c in self.commands:
            attempts.setdefault(c.idempotency_key, []).append(c.attempt)
        return sorted((k, a) for k, a in attempts.items() if a != list(range(1, len(a) + 1)))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
