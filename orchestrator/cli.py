"""The ``ksaga`` command line (click): wiring only, every command delegates to a module.

Usage errors exit 2 (click's convention); a ``KsagaError`` (bad definition, bad config, broker
trouble) prints its fix-it message and exits 1, without a traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, NoReturn

import click

from connectors.cli import participants_command
from orchestrator.core import StepKind
from orchestrator.dsl import Saga
from orchestrator.errors import KsagaError
from orchestrator.registry import load_registry

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """ksaga: Kafka-native saga orchestration."""


@cli.command()
@click.option("--sagas", "count", type=click.IntRange(1), default=400, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(1),
    default=100.0,
    show_default=True,
    help="Orders published per second.",
)
@click.option("--replicas", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--partitions", type=click.IntRange(1, 64), default=8, show_default=True)
def demo(count: int, rate: float, replicas: int, partitions: int) -> None:
    """The main job: broker, orchestrator replicas, participants and orders, live."""
    from orchestrator.demo import run_demo  # noqa: PLC0415  (keeps `ksaga --help` fast)

    ok = run_demo(sagas=count, rate=rate, replicas=replicas, partitions=partitions)
    sys.exit(0 if ok else 1)


@cli.command()
def stories() -> None:
    """The order saga's happy and failing paths through the state machine (no Kafka)."""
    from orchestrator.stories import run_stories  # noqa: PLC0415

    run_stories()


@cli.command()
@click.option("--sagas", "module", default="sagas", show_default=True, help="Saga list module.")
def check(module: str) -> None:
    """Validate the saga definitions and print their steps."""
    registry = load_registry(module)
    for name, saga in registry.sagas.items():
        _print_saga(name, saga)
    click.secho(f"{len(registry.sagas)} saga(s) valid", fg="green")


def _print_saga(name: str, saga: type[Saga[Any]]) -> None:
    click.secho(
        f"{name}  (trigger: {saga.trigger.event.__name__} on {saga.trigger.topic})", bold=True
    )
    for i, step in enumerate(saga.definition.steps, start=1):
        undo = (
            f"undo {step.compensation.command_type}"
            if step.compensation
            else {StepKind.PIVOT: "pivot", StepKind.READ_ONLY: "read-only"}[step.kind]
        )
        attempts = step.retry.maximum_attempts or "unlimited"
        click.echo(
            f"  {i}. {step.name:<16} {step.command_type} -> {step.command_topic}"
            f"  [{undo}; attempts {attempts}; timeout {step.timeout_ms} ms]"
        )


@cli.command()
@click.option("--sagas", "module", default="sagas", show_default=True, help="Saga list module.")
@click.argument("saga_type")
def graph(module: str, saga_type: str) -> None:
    """Print a saga as a Mermaid flowchart (forward path and compensations)."""
    registry = load_registry(module)
    saga = registry.sagas.get(saga_type)
    if saga is None:
        raise click.BadParameter(f"unknown saga type; known: {', '.join(registry.sagas)}")
    steps = saga.definition.steps
    lines = ["flowchart LR", "  start((start))"]
    prev = "start"
    for step in steps:
        lines.append(f"  {prev} --> {step.name}[{step.command_type}]")
        if step.compensation is not None:
            lines.append(f"  {step.name} -. fails later .-> undo_{step.name}")
            lines.append(f"  undo_{step.name}[{step.compensation.command_type}]")
        prev = step.name
    lines.append(f"  {prev} --> done((COMPLETED))")
    click.echo("\n".join(lines))


@cli.command()
@click.option("--bootstrap", envvar="KSAGA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
@click.option("--replica-id", envvar="KSAGA_REPLICA_ID", help="Stable replica identity.")
@click.option("--state-dir", envvar="KSAGA_STATE_DIR", help="RocksDB directory of this replica.")
@click.option("--log-level", envvar="KSAGA_LOG_LEVEL", default="INFO", show_default=True)
@click.option(
    "--log-format",
    envvar="KSAGA_LOG_FORMAT",
    type=click.Choice(["json", "console"]),
    default="json",
    show_default=True,
)
def run(
    bootstrap: str | None,
    replica_id: str | None,
    state_dir: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run one orchestrator replica (settings from KSAGA_* variables; options override them)."""
    from orchestrator.app import configure_logging, run_replica  # noqa: PLC0415
    from orchestrator.config import load_settings  # noqa: PLC0415

    overrides = {
        k: v
        for k, v in {
            "bootstrap_servers": bootstrap, "replica_id": replica_id, "state_dir": state_dir,
        }.items()
        if v is not None
    }  # fmt: skip
    settings = load_settings(**overrides)
    configure_logging(log_level, json=log_format == "json")
    sys.exit(run_replica(settings))


@cli.group()
def topics() -> None:
    """Administer ksaga's topics."""


@topics.command("create")
@click.option("--bootstrap", envvar="KSAGA_BOOTSTRAP_SERVERS", required=True)
@click.option(
    "--partitions",
    type=click.IntRange(1, 10_000),
    required=True,
    help="P for inbox and state (fixed forever: choose it for the largest deployment).",
)
@click.option(
    "--replication-factor",
    type=int,
    default=-1,
    show_default=True,
    help="-1: the broker's default.",
)
@click.option("--sagas", "module", default="sagas", show_default=True)
@click.option(
    "--with-saga-topics/--only-ksaga-topics",
    default=True,
    show_default=True,
    help="Also create the sagas' trigger and command topics when missing.",
)
def topics_create(
    bootstrap: str, partitions: int, replication_factor: int, module: str, with_saga_topics: bool
) -> None:
    """Create inbox, state (compacted), history and dlq; idempotent."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    from orchestrator.config import load_settings  # noqa: PLC0415
    from orchestrator.topics import create_topics, plan_topics  # noqa: PLC0415

    settings = load_settings(bootstrap_servers=bootstrap)
    registry = load_registry(module)
    extra = {*registry.trigger_topics, *registry.command_topics} if with_saga_topics else set()
    admin = AdminClient({"bootstrap.servers": bootstrap, **settings.kafka})
    results = create_topics(admin, plan_topics(settings, partitions, extra), replication_factor)
    for name, result in sorted(results.items()):
        click.echo(f"{result:<8} {name}")


@cli.group()
def kafka() -> None:
    """The project's own local Apache Kafka (KRaft) for development."""


@kafka.command("jars")
def kafka_jars_command() -> None:
    """Resolve the broker jars with Maven into the cache (offline afterwards)."""
    from orchestrator.testing.kafka_cluster import kafka_jars  # noqa: PLC0415

    jars = kafka_jars()
    click.echo(f"Kafka {jars.version} jars in {jars.libs_dir}")


@kafka.command("start")
@click.option("--nodes", type=click.IntRange(1, 5), default=1, show_default=True)
def kafka_start(nodes: int) -> None:
    """Run a local broker (or a 3+ node cluster) in the foreground until Ctrl-C."""
    from orchestrator.testing.kafka_cluster import KafkaBroker, KafkaCluster  # noqa: PLC0415

    cluster = KafkaBroker() if nodes == 1 else KafkaCluster(size=nodes)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with cluster:
        click.secho(
            f"Kafka {cluster.version} ready: bootstrap.servers={cluster.bootstrap_servers}"
            f" (started in {cluster.startup_seconds:.1f} s; logs in {cluster.log_dir})",
            fg="green",
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        click.echo("stopping...")


cli.add_command(participants_command, "participants")


@cli.command(
    "bench",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Throughput, latency and cost of a checked run on a real broker (see --help)."""
    from orchestrator.bench import bench_command  # noqa: PLC0415  (heavy imports)

    bench_command.main(args=ctx.args, prog_name="ksaga bench")


@cli.command(
    "chaos",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def chaos(ctx: click.Context) -> None:
    """Fault-injection run: workload, nemesis, then the log checker's verdict (see --help)."""
    from orchestrator.testing.chaos import chaos_command  # noqa: PLC0415  (heavy imports)

    chaos_command.main(args=ctx.args, prog_name="ksaga chaos")


def main() -> NoReturn:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KsagaError as exc:
        click.secho(f"ksaga: {exc}", fg="red", err=True)
        sys.exit(1)
    sys.exit(0)
