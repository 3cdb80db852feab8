"""``ksaga local``: one command per operator step, on the local stand-in for a cluster.

Each subcommand is the local counterpart of a ``kubectl`` step (named in its help) and prints
what it did; ``orchestrator.testing.local_cluster`` does the work. The work directory
(``--workdir``, ``KSAGA_LOCAL_DIR``) carries the cluster between commands, so the real ``ksaga``
tools (``saga list``, ``dlq redrive``, ...) run in between against the same broker
(``eval "$(ksaga local env)"`` sets ``KSAGA_BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import click

from connectors.order_participants import Behaviour
from orchestrator.testing.local_cluster import LocalCluster, PodStatus
from orchestrator.testing.manifests import JOB, STATEFULSET

__all__ = ["local_command"]

_WAIT = click.option(
    "--wait", "wait_s", type=click.FloatRange(0), default=120.0, show_default=True,
    help="Seconds to wait until every pod is ready and each inbox partition has one owner"
    " (0: do not wait).",
)  # fmt: skip


class _Context:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._cluster: LocalCluster | None = None

    @property
    def cluster(self) -> LocalCluster:
        if self._cluster is None:
            self._cluster = LocalCluster(self.workdir)
        return self._cluster


_pass = click.make_pass_decorator(_Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workdir", envvar="KSAGA_LOCAL_DIR", type=click.Path(path_type=Path),
    default=Path(".cache/ksaga-local"), show_default=True,
    help="Where the local cluster keeps its records, logs and volumes.",
)  # fmt: skip
@click.pass_context
def local_command(ctx: click.Context, workdir: Path) -> None:
    """The rendered deploy/k8s manifests run as local processes: no Kubernetes involved.

    Each pod runs the StatefulSet container's argv and environment as the kubelet would resolve
    them, with only the broker address, the probe port, the volume path and PATH substituted.
    """
    ctx.obj = _Context(workdir)


def _settle(cluster: LocalCluster, wait_s: float) -> None:
    if wait_s > 0:
        took = cluster.wait_settled(wait_s)
        click.echo(f"settled in {took:.1f} s: every pod ready, each inbox partition owned once")
    _print_pods(cluster.status())


def _print_pods(rows: list[PodStatus]) -> None:
    click.echo(f"{'NAME':<22} {'STATUS':<8} {'READY':<6} {'PID':>7} {'TRIGGERS':>8}  INBOX")
    for row in rows:
        status = "Running" if row.proc is not None else "Gone"
        ready = {200: "1/1", None: "-"}.get(row.ready, "0/1")
        pid = str(row.proc.pid) if row.proc is not None else "-"
        owned = ",".join(map(str, row.inbox)) or "-"
        restoring = f"  (restoring {','.join(map(str, row.restoring))})" if row.restoring else ""
        triggers = str(row.triggers) if row.proc is not None else "-"
        click.echo(
            f"{row.name:<22} {status:<8} {ready:<6} {pid:>7} {triggers:>8}  {owned}{restoring}"
        )


@local_command.command()
@click.option("--replicas", type=click.IntRange(0), help="Default: the StatefulSet's replicas.")
@click.option("--bootstrap", help="Use this Kafka instead of starting a local broker.")
@_WAIT
@_pass
def up(obj: _Context, replicas: int | None, bootstrap: str | None, wait_s: float) -> None:
    """kubectl apply -k deploy/k8s: a broker (unless --bootstrap), the topics Job, the pods."""
    cluster = obj.cluster
    started = cluster.up(bootstrap)
    click.echo(f"kafka: {'started, ' if bootstrap is None else ''}bootstrap {started[0]}")
    click.echo(f"job/{JOB}: {' '.join(started[1].args)}")
    click.echo(started[1].stdout.rstrip())
    count = cluster.default_replicas if replicas is None else replicas
    new, _ = cluster.scale(count)
    click.echo(f"statefulset/{STATEFULSET}: started {', '.join(new) or 'none'}")
    _settle(cluster, wait_s if count else 0)


@local_command.command()
@_pass
def env(obj: _Context) -> None:
    """The environment for the ksaga tools: eval "$(ksaga local env)"."""
    click.echo(f"export KSAGA_BOOTSTRAP_SERVERS={obj.cluster.bootstrap}")


@local_command.command()
@_pass
def pods(obj: _Context) -> None:
    """kubectl get pods, plus each pod's inbox partitions from its /ready probe."""
    _print_pods(obj.cluster.status())


@local_command.command()
@click.argument("replicas", type=click.IntRange(0))
@_WAIT
@_pass
def scale(obj: _Context, replicas: int, wait_s: float) -> None:
    """kubectl scale statefulset/ksaga-orchestrator --replicas=N."""
    began = time.monotonic()
    started, removed = obj.cluster.scale(replicas)
    for name in removed:
        click.echo(f"{name}: SIGTERM, exited; volume deleted (whenScaled: Delete)")
    click.echo(f"started: {', '.join(started) or 'none'} ({time.monotonic() - began:.1f} s)")
    _settle(obj.cluster, wait_s if replicas else 0)


@local_command.command()
@click.argument("ordinal", type=click.IntRange(0))
@_pass
def lose(obj: _Context, ordinal: int) -> None:
    """A node dies with its disk: kill -9 the pod and delete its volume. It stays down."""
    pid, volume = obj.cluster.lose(ordinal)
    click.echo(f"{obj.cluster.pod_name(ordinal)}: kill -9 {pid}; deleted {volume}")


@local_command.command()
@_WAIT
@_pass
def recover(obj: _Context, wait_s: float) -> None:
    """What the StatefulSet controller does by itself: recreate every missing pod."""
    started = obj.cluster.recover()
    click.echo(f"started: {', '.join(started) or 'none'}")
    _settle(obj.cluster, wait_s)


@local_command.command()
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="An env variable of the new pod template (repeatable).")  # fmt: skip
@click.option("--partition", type=click.IntRange(0), default=0, show_default=True,
              help="Update only ordinals >= this (rollingUpdate.partition).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(1), default=120.0, show_default=True)
@_pass
def rollout(obj: _Context, pairs: tuple[str, ...], partition: int, timeout: float) -> None:
    """kubectl set env / set image on the StatefulSet: a rolling update, highest ordinal first.

    The topics Job runs again first with the new env (a new release's Job creates its topics).
    Pods already on the new template are left alone, as a StatefulSet leaves pods already at
    the update revision: a second rollout with a lower --partition finishes a canary.
    """
    overrides = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        overrides[key] = value
    job = obj.cluster.set_template(overrides, partition)
    created = [line for line in job.stdout.splitlines() if line.startswith("created")]
    click.echo(f"job/{JOB}: {' '.join(job.args)}: {', '.join(created) or 'nothing new'}")
    for name, seconds in obj.cluster.roll(timeout):
        click.echo(f"{name}: replaced, settled after {seconds:.1f} s")
    click.echo(f"template env: {obj.cluster.state()['template']}; partition {partition}")
    _print_pods(obj.cluster.status())


@local_command.command()
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--decline-rate", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--silent-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@_pass
def participants(obj: _Context, seed: int, decline_rate: float, silent_rate: float) -> None:
    """The example inventory, payments and shipping services (seeded misbehaviour)."""
    proc = obj.cluster.start_participants(
        ["--seed", str(seed), "--decline-rate", str(decline_rate),
         "--silent-rate", str(silent_rate)]
    )  # fmt: skip
    behaviour = {"seed": seed, "decline_rate": decline_rate, "silent_rate": silent_rate}
    _save_json(obj.workdir / "behaviour.json", behaviour)
    click.echo(f"participants: pid {proc.pid}, {behaviour}")


@local_command.command()
@click.argument("count", type=click.IntRange(1))
@click.option("--prefix", default="o", show_default=True, help="Order ids: <prefix>-<n>.")
@click.option("--topic", default="orders", show_default=True)
@_pass
def orders(obj: _Context, count: int, prefix: str, topic: str) -> None:
    """Publish COUNT OrderPlaced events (what the shop's services would do)."""
    from orchestrator.testing.system import publish_orders  # noqa: PLC0415

    path = obj.workdir / "published.json"
    published: dict[str, list[str]] = _load_json(path)
    before = published.setdefault(topic, [])
    ids = [f"{prefix}-{i:04d}" for i in range(len(before), len(before) + count)]
    publish_orders(obj.cluster.bootstrap, ids, topic)
    before.extend(ids)
    _save_json(path, published)
    click.echo(f"published {count} to {topic}: {ids[0]} .. {ids[-1]}")


@local_command.command()
@click.option("--wait", "wait_s", type=click.FloatRange(0), default=120.0, show_default=True,
              help="Seconds to wait for every published order's saga to be terminal.")  # fmt: skip
@_pass
def verify(obj: _Context, wait_s: float) -> None:
    """Wait until every order's saga is terminal, then run the log checker on the topics."""
    from orchestrator.testing.checker import CheckInput, check  # noqa: PLC0415
    from orchestrator.testing.system import Observer  # noqa: PLC0415

    order_ids = _load_json(obj.workdir / "published.json").get("orders", [])
    behaviour = Behaviour(**_load_json(obj.workdir / "behaviour.json"))
    bootstrap = obj.cluster.bootstrap
    want = {f"order/{o}" for o in order_ids}
    observer = Observer(bootstrap)
    deadline = time.monotonic() + wait_s
    try:
        while not want <= set(observer.terminal()) and time.monotonic() < deadline:
            observer.poll(0.5)
    finally:
        observer.close()
    out = io.StringIO()
    declined = {o for o in order_ids if behaviour.declines(o)}
    report = check(CheckInput(bootstrap, order_ids, declined=declined), out=out)
    click.echo(out.getvalue().rstrip())
    if not report.passed:
        raise SystemExit(1)


@local_command.command()
@click.argument("name")
@click.option("--grep", "needle", default="", help="Only lines containing this text.")
@_pass
def logs(obj: _Context, name: str, needle: str) -> None:
    """kubectl logs: a process's log (NAME: a pod ordinal or name, participants, kafka)."""
    if name.isdigit():
        name = obj.cluster.pod_name(int(name))
    path = obj.workdir / "logs" / f"{name}.log"
    if not path.is_file():
        raise click.BadParameter(f"no log {path}", param_hint="NAME")
    for line in path.read_text(errors="replace").splitlines():
        if needle in line:
            click.echo(_compact(line))


@local_command.command()
@_pass
def down(obj: _Context) -> None:
    """kubectl delete -k deploy/k8s (and the broker): stop everything, delete the work dir."""
    stopped = obj.cluster.down()
    click.echo(f"stopped {', '.join(stopped) or 'nothing'}; deleted {obj.workdir}")


def _compact(line: str) -> str:
    """A JSON log line as ``time event key=value ...`` (the noisy keys dropped)."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return line
    if not isinstance(event, dict):
        return line
    head = f"{event.pop('timestamp', '')} {event.pop('event', '')}"
    for noisy in ("level", "logger", "replica", "trace_id", "span_id"):
        event.pop(noisy, None)
    return " ".join([head, *(f"{k}={v}" for k, v in event.items())])


def _load_json(path: Path) -> dict[str, Any]:
    """A JSON object the command saved earlier, or ``{}``."""
    loaded: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return loaded


def _save_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
