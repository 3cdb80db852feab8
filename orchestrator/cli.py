"""The ``ksaga`` command line (click): wiring only, every command delegates to a module.

Usage errors exit 2 (click's convention); a ``KsagaError`` (bad definition, bad config, broker
trouble) prints its fix-it message and exits 1, without a traceback.
"""

from __future__ import annotations

import contextlib
import getpass
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from connectors.cli import participants_command
from orchestrator.core import SagaCancelled, SagaResumed, SagaStatus, StepKind
from orchestrator.dsl import Saga
from orchestrator.errors import KsagaError
from orchestrator.ops.params import DURATION, INSTANT, POSITION
from orchestrator.registry import load_registry

if TYPE_CHECKING:
    from orchestrator.ops.reader import Cluster

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
@click.option("--bootstrap", envvar="KSAGA_BOOTSTRAP_SERVERS", show_envvar=True, required=True)
@click.option(
    "--partitions",
    type=click.IntRange(1, 10_000),
    envvar="KSAGA_PARTITIONS",
    show_envvar=True,
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
@click.option(
    "--sagas", "module", envvar="KSAGA_SAGAS_MODULE", show_envvar=True, default="sagas",
    show_default=True, help="Saga list module (the replicas' KSAGA_SAGAS_MODULE).",
)  # fmt: skip
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
    from orchestrator.config import load_settings  # noqa: PLC0415
    from orchestrator.kafka import new_admin  # noqa: PLC0415
    from orchestrator.topics import create_topics, plan_topics  # noqa: PLC0415

    settings = load_settings(bootstrap_servers=bootstrap)
    registry = load_registry(module)
    extra = {*registry.trigger_topics, *registry.command_topics} if with_saga_topics else set()
    admin = new_admin(settings)
    results = create_topics(admin, plan_topics(settings, partitions, extra), replication_factor)
    for name, result in sorted(results.items()):
        click.echo(f"{result:<8} {name}")


@cli.group()
def acls() -> None:
    """The Kafka ACLs each role needs (orchestrator, participants, publishers, operator)."""


def _acl_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--sagas", "module", default="sagas", show_default=True),
            click.option(
                "--topic-prefix", envvar="KSAGA_TOPIC_PREFIX", default="ksaga.", show_default=True
            ),
            click.option(
                "--group-id",
                envvar="KSAGA_GROUP_ID",
                default="ksaga-orchestrator",
                show_default=True,
                help="The orchestrator's consumer group (and transactional.id prefix).",
            ),
            click.option(
                "--principal",
                "principals",
                multiple=True,
                metavar="ROLE=PRINCIPAL",
                help="e.g. orchestrator=User:ksaga, participant:inventory=User:stock (repeatable).",
            ),
            click.option(
                "--group",
                "groups",
                multiple=True,
                metavar="PARTICIPANT=GROUP",
                help="A participant's consumer group (default: its name; repeatable).",
            ),
        ]
    ):
        command = option(command)
    return command


def _acl_plan(
    *,
    module: str,
    topic_prefix: str,
    group_id: str,
    principals: tuple[str, ...],
    groups: tuple[str, ...],
) -> Any:
    """The roles the options of :func:`_acl_options` (passed on as keywords) describe."""
    from orchestrator.acls import plan_acls  # noqa: PLC0415
    from orchestrator.config import Topics  # noqa: PLC0415

    def pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
        bad = [item for item in items if "=" not in item]
        if bad:
            raise click.BadParameter(f"expected KEY=VALUE, got {bad[0]!r}", param_hint=option)
        return dict(item.split("=", 1) for item in items)

    registry = load_registry(module)
    try:
        return plan_acls(
            Topics(topic_prefix),
            group_id,
            registry.trigger_topics,
            registry.command_topics,
            principals=pairs(principals, "--principal"),
            groups=pairs(groups, "--group"),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@acls.command("print")
@_acl_options
def acls_print(**plan_options: Any) -> None:
    """Print every role's ACLs as a Markdown table."""
    from orchestrator.acls import render_acls  # noqa: PLC0415

    click.echo(render_acls(_acl_plan(**plan_options)))


@acls.command("apply")
@click.option("--bootstrap", envvar="KSAGA_BOOTSTRAP_SERVERS", required=True)
@_acl_options
def acls_apply(*, bootstrap: str, **plan_options: Any) -> None:
    """Create every role's ACLs (idempotent). Run it as a super user (KSAGA_KAFKA__SASL_*)."""
    from orchestrator.acls import apply_acls  # noqa: PLC0415
    from orchestrator.config import load_settings  # noqa: PLC0415
    from orchestrator.kafka import new_admin  # noqa: PLC0415

    roles = _acl_plan(**plan_options)
    count = apply_acls(new_admin(load_settings(bootstrap_servers=bootstrap)), roles)
    click.echo(f"{count} ACL(s) in place for {len(roles)} role(s)")


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


@cli.group()
def saga() -> None:
    """Sagas: list, show and history (from ksaga.state and ksaga.history); resume or cancel."""


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in this container: say so rather than fail
        return "unknown"


_SIGNAL_OPTIONS = [
    click.argument("saga_id"),
    click.option("--reason", default="", help="Why, for the audit trail (kept in the inbox)."),
    click.option(
        "--by",
        "requested_by",
        default=_whoami,
        show_default="the current user",
        help="Who asks, for the audit trail.",
    ),
    click.option("--bootstrap", envvar="KSAGA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."),
]


def _signal_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SIGNAL_OPTIONS):
        command = option(command)
    return command


def _send(signal: SagaResumed | SagaCancelled, bootstrap: str | None) -> None:
    from orchestrator.clock import wall_ms  # noqa: PLC0415
    from orchestrator.config import load_settings  # noqa: PLC0415
    from orchestrator.ops.control import send_signal  # noqa: PLC0415

    settings = load_settings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
    written = send_signal(settings, signal, requested_ms=wall_ms())
    click.echo(written.describe())
    click.echo(written.outlook())


@saga.command("resume")
@_signal_options
def saga_resume(saga_id: str, reason: str, requested_by: str, bootstrap: str | None) -> None:
    """Resume a FAILED saga after fixing its cause: the command it gave up on is sent again
    (next attempt, fresh retry budget)."""
    _send(SagaResumed(saga_id, requested_by, reason), bootstrap)


@saga.command("cancel")
@_signal_options
def saga_cancel(saga_id: str, reason: str, requested_by: str, bootstrap: str | None) -> None:
    """Cancel a RUNNING saga: compensate now (refused at or past its pivot)."""
    _send(SagaCancelled(saga_id, requested_by, reason), bootstrap)


cli.add_command(participants_command, "participants")


def _forward(name: str, summary: str, load: Callable[[], click.Command]) -> None:
    """Register ``ksaga NAME`` as a pass-through to the click command ``load`` returns.

    The target parses its own options and ``--help``; ``load`` imports it only when the command
    runs, so its heavy imports never slow down ``ksaga --help``.
    """

    @cli.command(
        name,
        help=summary,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.pass_context
    def forward(ctx: click.Context) -> None:
        load().main(args=ctx.args, prog_name=f"ksaga {name}")


def _bench() -> click.Command:
    from orchestrator.bench import bench_command  # noqa: PLC0415  (heavy imports)

    return bench_command


def _chaos() -> click.Command:
    from orchestrator.testing.chaos import chaos_command  # noqa: PLC0415  (heavy imports)

    return chaos_command


def _local() -> click.Command:
    from orchestrator.testing.local_cli import local_command  # noqa: PLC0415  (heavy imports)

    return local_command


_forward(
    "bench", "Throughput, latency and cost of a checked run on a real broker (see --help).", _bench
)
_forward(
    "chaos",
    "Fault-injection run: workload, nemesis, then the log checker's verdict (see --help).",
    _chaos,
)
_forward(
    "local",
    "The deploy/k8s manifests as local processes: up, scale, lose, recover... (see --help).",
    _local,
)


# ------------------------------------------------------------- operations (orchestrator/ops)

_bootstrap = click.option(
    "--bootstrap", envvar="KSAGA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
_sagas = click.option(
    "--sagas", "module", envvar="KSAGA_SAGAS_MODULE", help="Saga list module (the current code)."
)


def _cluster(bootstrap: str | None, **overrides: Any) -> Cluster:
    """Settings from KSAGA_* (options override them), quiet logs, and the cluster handle."""
    from orchestrator.app import configure_logging  # noqa: PLC0415
    from orchestrator.config import load_settings  # noqa: PLC0415
    from orchestrator.ops.reader import Cluster  # noqa: PLC0415

    configure_logging("WARNING", json=False)
    given = {"bootstrap_servers": bootstrap, **overrides}
    return Cluster(load_settings(**{k: v for k, v in given.items() if v is not None}))


@cli.group()
def state() -> None:
    """A replica's RocksDB state store."""


@state.command("rebuild")
@_bootstrap
@click.option("--state-dir", envvar="KSAGA_STATE_DIR", help="The replica's RocksDB directory.")
@click.option("--partition", "partitions", type=click.IntRange(0), multiple=True,
              help="Only these partitions (repeatable); default all.")  # fmt: skip
@_as_json
def state_rebuild(
    bootstrap: str | None, state_dir: str | None, partitions: tuple[int, ...], as_json: bool
) -> None:
    """Rebuild the store from ksaga.state (refused while a replica holds it)."""
    from orchestrator.ops.rebuild import rebuild_state  # noqa: PLC0415
    from orchestrator.ops.views import show_rebuild  # noqa: PLC0415

    cluster = _cluster(bootstrap, state_dir=state_dir)
    show_rebuild(rebuild_state(cluster.settings, partitions or None), as_json)


@cli.group()
def dlq() -> None:
    """Dead letters: list, show, redrive."""


@dlq.command("list")
@_bootstrap
@click.option("--reason", help="Only this reason (ksaga.dlq.reason), e.g. unknown-saga-type.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@_as_json
def dlq_list(bootstrap: str | None, reason: str | None, limit: int, as_json: bool) -> None:
    """Dead letters, oldest first, with their reason and source."""
    from orchestrator.ops.dlq import list_dead_letters  # noqa: PLC0415
    from orchestrator.ops.views import show_dead_letters  # noqa: PLC0415

    rows = list_dead_letters(_cluster(bootstrap), reason=reason)
    show_dead_letters(rows[:limit], as_json, total=len(rows))


@dlq.command("show")
@_bootstrap
@click.argument("position", type=POSITION)
@_as_json
def dlq_show(bootstrap: str | None, position: tuple[int, int], as_json: bool) -> None:
    """One dead letter (PARTITION:OFFSET): headers and decoded payload."""
    from orchestrator.ops.dlq import show_dead_letter  # noqa: PLC0415
    from orchestrator.ops.views import show_dead_letter as view  # noqa: PLC0415

    view(show_dead_letter(_cluster(bootstrap), position), as_json)


@dlq.command("redrive")
@_bootstrap
@click.option("--offset", "positions", type=POSITION, multiple=True,
              help="A dead letter PARTITION:OFFSET (repeatable).")  # fmt: skip
@click.option("--reason", help="Every dead letter with this reason.")
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@_as_json
def dlq_redrive(
    bootstrap: str | None,
    positions: tuple[tuple[int, int], ...],
    reason: str | None,
    everything: bool,
    as_json: bool,
) -> None:
    """Send dead letters back where they came from, once each, in one transaction."""
    from orchestrator.ops.dlq import redrive  # noqa: PLC0415
    from orchestrator.ops.views import show_redrive  # noqa: PLC0415

    if sum((bool(positions), reason is not None, everything)) != 1:
        raise click.UsageError(
            "choose what to redrive: --offset P:O (repeatable), --reason or --all"
        )
    cluster = _cluster(bootstrap)
    outcome = redrive(cluster, positions=positions, reason=reason, everything=everything)
    show_redrive(outcome, as_json)


@saga.command("list")
@_bootstrap
@click.option("--type", "saga_type", help="Only this saga type.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([s.value for s in SagaStatus], case_sensitive=False),
              help="Only this status (repeatable).")  # fmt: skip
@click.option("--older-than", type=DURATION, help="Not updated for at least this long, e.g. 10m.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@_sagas
@_as_json
def saga_list(
    *,
    bootstrap: str | None,
    saga_type: str | None,
    statuses: tuple[str, ...],
    older_than: int | None,
    limit: int,
    module: str | None,
    as_json: bool,
) -> None:
    """Sagas from the latest record per key of ksaga.state."""
    from orchestrator.ops.inspect import list_sagas  # noqa: PLC0415
    from orchestrator.ops.views import show_sagas  # noqa: PLC0415

    cluster = _cluster(bootstrap, sagas_module=module)
    rows = list_sagas(cluster, saga_type=saga_type, statuses=statuses,
                      older_than_ms=older_than, limit=limit)  # fmt: skip
    show_sagas(rows, as_json)


@saga.command("show")
@_bootstrap
@click.argument("saga_id")
@_sagas
@_as_json
def saga_show(bootstrap: str | None, saga_id: str, module: str | None, as_json: bool) -> None:
    """One saga: status, step, action, attempt, timer, data."""
    from orchestrator.ops.inspect import show_saga  # noqa: PLC0415
    from orchestrator.ops.views import show_saga as view  # noqa: PLC0415

    view(show_saga(_cluster(bootstrap, sagas_module=module), saga_id), as_json)


@saga.command("history")
@_bootstrap
@click.argument("saga_id")
@_as_json
def saga_history(bootstrap: str | None, saga_id: str, as_json: bool) -> None:
    """One saga's transitions from ksaga.history, in order."""
    from orchestrator.ops.inspect import saga_history as history  # noqa: PLC0415
    from orchestrator.ops.views import show_history  # noqa: PLC0415

    show_history(history(_cluster(bootstrap), saga_id), as_json, saga_id)


@cli.command()
@_bootstrap
@click.option("--saga", "saga_id", help="Only this saga (its partition, its records).")
@click.option("--from-offset", "from_offsets", type=POSITION, multiple=True,
              help="Start partition P at offset O (repeatable; only those).")  # fmt: skip
@click.option("--from-timestamp", "from_ms", type=INSTANT, help="Start at this time.")
@click.option("--reset-group", is_flag=True,
              help="Rewind the orchestrator group there, to reprocess.")  # fmt: skip
@click.option("--yes", is_flag=True, help="Do not ask before --reset-group.")
@_sagas
@_as_json
def replay(
    *,
    bootstrap: str | None,
    saga_id: str | None,
    from_offsets: tuple[tuple[int, int], ...],
    from_ms: int | None,
    reset_group: bool,
    yes: bool,
    module: str | None,
    as_json: bool,
) -> None:
    """Re-fold the inbox with the current code and show where it diverges (emits nothing).

    Exit status 1 when it diverges. With --reset-group, instead preview and do a rewind.
    """
    from orchestrator.ops import replay as ops_replay  # noqa: PLC0415
    from orchestrator.ops import rewind, views  # noqa: PLC0415

    starts = dict(from_offsets)
    if len(starts) != len(from_offsets):
        raise click.UsageError("--from-offset names a partition twice")
    if from_offsets and from_ms is not None:
        raise click.UsageError("use --from-offset or --from-timestamp, not both")
    cluster = _cluster(bootstrap, sagas_module=module)
    registry = load_registry(cluster.settings.sagas_module)
    if not reset_group:
        report = ops_replay.replay(cluster, registry, saga_id=saga_id,
                                   from_offsets=starts or None, from_ms=from_ms)  # fmt: skip
        views.show_replay(report, as_json)
        sys.exit(1 if report.diverged else 0)
    if saga_id is not None:
        raise click.UsageError("--reset-group rewinds whole partitions; it cannot take --saga")
    rewind.ensure_group_empty(cluster)  # fail fast; reset_group checks again just before
    plan = rewind.plan_rewind(cluster, registry, from_offsets=starts or None, from_ms=from_ms)
    if plan.unsafe:
        views.show_rewind_plan(plan, as_json)
    elif not yes:
        views.show_rewind_plan(plan, as_json)
        click.confirm(f"rewind group {cluster.settings.group_id}?", abort=True)
    moves = rewind.reset_group(cluster, plan)
    views.show_rewind_plan(plan, as_json, done=moves)


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
