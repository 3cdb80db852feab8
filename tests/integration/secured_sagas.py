"""Run the example order sagas end to end on a secured broker, each process with its own login.

Shared by the TLS and OAUTHBEARER tests: an orchestrator replica and the example participants
run as real processes configured only through ``KSAGA_KAFKA__*``; the harness publishes, watches
and checks with its own login. The test asserts on what it returns (outcomes, logs).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.order_participants import Behaviour, expected_outcome
from orchestrator.testing.checker import CheckInput, check
from orchestrator.testing.kafka_cluster import wait_for
from orchestrator.testing.system import (
    ChildProcess,
    Observer,
    ParticipantsProcess,
    ReplicaProcess,
    publish_orders,
)


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
