"""Run the example order sagas end to end on a secured broker, each process with its own login.

Shared by the SCRAM, TLS and OAUTHBEARER tests: an orchestrator replica and the example
participants run as real processes configured only through ``KSAGA_KAFKA__*``; the harness
publishes, watches and checks with its own login. The test asserts on what it returns (outcomes,
logs), most of it through :meth:`SecuredRun.assert_every_saga_ended_as_expected`. Also the
setup the ACL'd brokers share: the role names ``ksaga acls`` grants, and granting them.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from click.testing import CliRunner
from confluent_kafka import KafkaError, Producer

from connectors.order_participants import ORDER_COMMAND_TOPICS, Behaviour, expected_outcome
from orchestrator.acls import participant_name
from orchestrator.cli import cli
from orchestrator.testing.checker import CheckInput, check
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from orchestrator.testing.system import (
    ChildProcess,
    Observer,
    ParticipantsProcess,
    ReplicaProcess,
    create_all_topics,
    publish_orders,
)

PARTITIONS = 4
# The principals `ksaga acls` grants (orchestrator.acls): one per role.
ORCHESTRATOR = "ksaga-orchestrator"
PARTICIPANTS = {topic: participant_name(topic) for topic in ORDER_COMMAND_TOPICS}
PUBLISHER = "orders-publisher"
OPERATOR = "ksaga-operator"
_quiet = logging.getLogger("ksaga.tests.secured")  # librdkafka's retries go here, not to stderr


@dataclass(frozen=True)
class Participants:
    """One participants process: its name, its command-line options and its KSAGA_* env."""

    name: str
    options: Sequence[str]
    env: Mapping[str, str]


@dataclass(frozen=True)
class SecuredRun:
    outcomes: dict[str, str]
    want: dict[str, str]
    duplicate_commands: list[tuple[str, int]]
    check_report: str
    check_passed: bool
    logs: dict[str, str]

    def assert_every_saga_ended_as_expected(self, participants: Sequence[str]) -> None:
        """Every saga ended as its order's behaviour says (both outcomes seen), no command was
        sent twice, the log checker passed, and every process logged in and started."""
        assert self.outcomes == self.want
        assert sorted(set(self.want.values())) == ["COMPENSATED", "COMPLETED"]
        assert self.duplicate_commands == []
        assert self.check_passed, self.check_report
        assert "orchestrator started" in self.logs["r1"]
        assert all("participant started" in self.logs[name] for name in participants)


Security = TypeVar("Security")


@dataclass
class SecuredBroker(Generic[Security]):
    """The module's broker and the security settings it was started with."""

    broker: KafkaBroker
    security: Security

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers


def grant_roles_and_create_topics(
    bootstrap: str, admin_env: Mapping[str, str], operator: Mapping[str, Any]
) -> None:
    """``ksaga acls apply`` as the super user (logged in through ``KSAGA_KAFKA__*`` like any
    client), then ``PARTITIONS`` partitions of every topic created as the operator role, whose
    ACLs must be enough for it."""
    result = CliRunner().invoke(
        cli, ["acls", "apply", "--bootstrap", bootstrap], env=dict(admin_env)
    )
    assert result.exit_code == 0, result.output
    assert "ACL(s) in place for 6 role(s)" in result.output
    create_all_topics(bootstrap, PARTITIONS, client=dict(operator))


def participants_per_role(client_env: Callable[[str], Mapping[str, str]]) -> list[Participants]:
    """One participants process per command topic, each logged in as that topic's role."""
    return [
        Participants(name, ["--topic", topic, "--group-id", name], client_env(name))
        for topic, name in PARTICIPANTS.items()
    ]


def produce_error(
    config: Mapping[str, Any], topic: str, key: bytes = b"k", timeout_ms: int = 10_000
) -> KafkaError | None:
    """Produce one record and return its delivery error (None if the broker took it)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": timeout_ms, "logger": _quiet})
    producer.produce(topic, key=key, value=b"forged", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(20)
    assert errors, "no delivery report"
    return errors[0]


def run_orchestrator(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator run`` with exactly ``env``, to its exit (a test expects one)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "run"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def as_settings(env: Mapping[str, str]) -> dict[str, str]:
    """``KSAGA_X`` variables as ReplicaProcess keyword settings (it adds ``KSAGA_`` back)."""
    return {key.removeprefix("KSAGA_").lower(): value for key, value in env.items()}


def run_order_sagas(
    bootstrap: str,
    workdir: Path,
    *,
    replica_env: Mapping[str, str],
    participants: Sequence[Participants],
    harness: Mapping[str, Any],
    publisher: Mapping[str, Any],
    order_ids: Sequence[str],
    behaviour: Behaviour,
) -> SecuredRun:
    """Start the processes, publish ``order_ids``, wait for every saga to end, check the log."""
    processes: list[ChildProcess] = [
        ReplicaProcess(bootstrap, "r1", workdir, **as_settings(replica_env))
    ]
    common = ["--seed", str(behaviour.seed), "--decline-rate", str(behaviour.decline_rate)]
    for p in participants:
        options = [*p.options, *common, "--poll-timeout-ms", "50"]
        processes.append(ParticipantsProcess(bootstrap, workdir, *options, name=p.name, env=p.env))
    for process in processes:
        process.start()
    observer = Observer(bootstrap, client=harness)
    want = {f"order/{o}": expected_outcome(o, behaviour) for o in order_ids}
    try:
        publish_orders(bootstrap, order_ids, client=publisher)

        def finished() -> bool:
            observer.poll()
            for process in processes:
                assert process.running(), f"{process.name} exited\n{process.tail()}"
            return set(want) <= set(observer.terminal())

        try:
            wait_for(finished, 120, "every saga to finish", interval=0.1)
        except TimeoutError as exc:
            tails = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in processes)
            raise AssertionError(f"{exc}\n{tails}") from exc
        observer.poll(0.5)
        out = io.StringIO()
        report = check(
            CheckInput(
                bootstrap,
                list(order_ids),
                declined={o for o in order_ids if behaviour.declines(o)},
                client=dict(harness),
            ),
            out=out,
        )
        outcomes = {k: v for k, v in observer.terminal().items() if k in want}
        duplicates = observer.duplicate_commands()
    finally:
        observer.close()
        for process in processes:
            process.terminate(30)
    logs = {p.name: p.log_path.read_text(errors="replace") for p in processes}
    return SecuredRun(outcomes, want, duplicates, out.getvalue(), report.passed, logs)
