"""The local stand-in for a Kubernetes cluster behind ``ksaga local``: the rendered StatefulSet's
pods as local processes that outlive the command that started them.

Its one job is to do, on one machine, what the StatefulSet controller and the kubelet would do
with ``deploy/k8s``, so that an operator (and CI) can walk through deploy, scale, a lost node,
recovery and a rolling update with one command per step and inspect the system with the real
``ksaga`` tools in between. Every pod runs the argv and environment resolved from the rendered
manifests (``orchestrator.testing.manifests``), with only ``localise``'s substitutions plus the
env a rollout sets; each pod's volume is a directory named like its PersistentVolumeClaim.

State between commands lives in a work directory: ``cluster.json`` (bootstrap, replica count,
the pod template's env overrides and the rollout partition), one JSON record per process (pid
and its start time, so a reused pid is never mistaken for ours) and their logs.

What it never does: pretend to be a cluster. There is no scheduler, no restart on failure and no
controller loop: a pod killed stays down until ``recover`` (the controller's reconcile, by hand).
It never signals a process it did not start (pid + start time must match).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from orchestrator.errors import OperationError
from orchestrator.testing.kafka_cluster import free_ports
from orchestrator.testing.manifests import STATEFULSET, Deployment, load_deployment, localise
from orchestrator.testing.pods import pod_spec
from orchestrator.testing.readiness import assigned_partitions, read_ready

__all__ = ["LocalCluster", "LocalClusterError", "PodStatus", "Proc"]

KAFKA_READY_S = 180.0


class LocalClusterError(OperationError):
    """A step that cannot be done (no cluster in the work dir, a pod that never got ready...)."""


@dataclass
class Proc:
    """A detached process this tool started: enough to find it again and nothing else."""

    name: str
    pid: int
    ticks: int  # its start time in clock ticks since boot (/proc/<pid>/stat field 22)
    log: str
    port: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)  # reap it if it is our own child (in-process use)
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.ticks and stat[0] != "Z"

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)


@dataclass(frozen=True)
class PodStatus:
    name: str
    ordinal: int
    proc: Proc | None
    ready: int | None  # /ready's HTTP status; None when down or not answering
    inbox: tuple[int, ...]  # inbox partitions assigned
    triggers: int  # trigger partitions assigned (routing only: no state)
    restoring: tuple[int, ...]


class LocalCluster:
    def __init__(self, workdir: Path, deployment: Deployment | None = None) -> None:
        self.workdir = workdir
        self.deployment = deployment or load_deployment()
        env0 = self.deployment.replica(0).env
        self.partitions = int(env0["KSAGA_PARTITIONS"])
        self.inbox = env0["KSAGA_TOPIC_PREFIX"] + "inbox"
        self.group = env0["KSAGA_GROUP_ID"]
        self._admin: AdminClient | None = None
        spec = self.deployment.statefulset["spec"]
        self.default_replicas = int(spec["replicas"])
        self.grace = float(pod_spec(self.deployment.statefulset)["terminationGracePeriodSeconds"])
        policy = spec.get("persistentVolumeClaimRetentionPolicy", {})
        self.delete_volume_on_scale = policy.get("whenScaled") == "Delete"

    # ------------------------------------------------------------------ state in the work dir

    @property
    def _state_file(self) -> Path:
        return self.workdir / "cluster.json"

    def exists(self) -> bool:
        return self._state_file.is_file()

    def state(self) -> dict[str, Any]:
        if not self.exists():
            raise LocalClusterError(f"no local cluster in {self.workdir}: run `ksaga local up`")
        loaded: dict[str, Any] = json.loads(self._state_file.read_text())
        return loaded

    def _save(self, state: Mapping[str, Any]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps(state, indent=2))

    def _update(self, **changes: Any) -> dict[str, Any]:
        state = {**self.state(), **changes}
        self._save(state)
        return state

    @property
    def bootstrap(self) -> str:
        return str(self.state()["bootstrap"])

    def record(self, name: str) -> Proc | None:
        path = self.workdir / "procs" / f"{name}.json"
        return Proc(**json.loads(path.read_text())) if path.is_file() else None

    def _keep(self, proc: Proc) -> None:
        path = self.workdir / "procs" / f"{proc.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(proc)))

    def spawn(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        port: int | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> Proc:
        """Start ``argv`` with exactly ``env``, in its own session (Ctrl-C here never reaches
        it), its output appended to ``logs/<name>.log``."""
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        stat = _stat(popen.pid)
        if stat is None:
            raise LocalClusterError(f"{name} exited at once; see {log}")
        proc = Proc(name, popen.pid, stat[1], str(log), port, dict(overrides or {}))
        self._keep(proc)
        return proc

    # ------------------------------------------------------------------ Kafka and the Job

    def start_kafka(self) -> str:
        """``ksaga kafka start`` detached; its bootstrap address once it says it is ready."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = self.spawn("kafka", [sys.executable, "-m", "orchestrator", "kafka", "start"], env)
        deadline = time.monotonic() + KAFKA_READY_S
        while time.monotonic() < deadline:
            for line in Path(proc.log).read_text(errors="replace").splitlines():
                if "bootstrap.servers=" in line:
                    return line.split("bootstrap.servers=", 1)[1].split()[0]
            if not proc.alive:
                break
            time.sleep(0.5)
        stop(proc, 10)
        raise LocalClusterError(f"the local broker did not start; see {proc.log}:\n{_tail(proc)}")

    def up(self, bootstrap: str | None) -> tuple[str, subprocess.CompletedProcess[str]]:
        """The broker (unless given one), then the topics Job; the pods come with ``scale``."""
        if self.exists() and any(p.alive for p in self._all_procs()):
            raise LocalClusterError(f"a local cluster is already up in {self.workdir}")
        self._save({"bootstrap": "", "replicas": 0, "template": {}, "partition": 0})
        if bootstrap is None:
            bootstrap = self.start_kafka()
        self._update(bootstrap=bootstrap)
        return bootstrap, self.run_job()

    def run_job(self) -> subprocess.CompletedProcess[str]:
        job = self.deployment.topics_job()
        env = {**localise(job, self.bootstrap), **self.state()["template"]}
        done = subprocess.run(
            job.argv, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise LocalClusterError(f"the topics Job failed:\n{done.stdout}{done.stderr}")
        return done

    # ------------------------------------------------------------------ pods

    def pod_name(self, ordinal: int) -> str:
        return f"{STATEFULSET}-{ordinal}"

    def volume(self, ordinal: int) -> Path:
        """The pod's PersistentVolumeClaim (``<claim template>-<pod>``) at /var/lib/ksaga."""
        return self.workdir / "volumes" / f"state-{self.pod_name(ordinal)}"

    def _pod_overrides(self, ordinal: int) -> dict[str, str]:
        """The env the pod template adds for this ordinal: a pod below the rollout partition
        keeps the revision it last ran (a StatefulSet's ``rollingUpdate.partition``)."""
        state = self.state()
        if ordinal >= state["partition"]:
            return dict(state["template"])
        previous = self.record(self.pod_name(ordinal))
        return dict(previous.overrides) if previous is not None else {}

    def start_pod(self, ordinal: int) -> Proc:
        name = self.pod_name(ordinal)
        (port,) = free_ports(1)
        process = self.deployment.replica(ordinal)
        state_dir = self.volume(ordinal) / "state"
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        overrides = self._pod_overrides(ordinal)
        env = {**localise(process, self.bootstrap, port, state_dir), **overrides}
        return self.spawn(name, process.argv, env, port=port, overrides=overrides)

    def pod(self, ordinal: int) -> Proc | None:
        proc = self.record(self.pod_name(ordinal))
        return proc if proc is not None and proc.alive else None

    def ordinals(self) -> list[int]:
        """Every ordinal with a record (running or not), ascending."""
        prefix = f"{STATEFULSET}-"
        found = [p.stem[len(prefix) :] for p in (self.workdir / "procs").glob(f"{prefix}*.json")]
        return sorted(int(o) for o in found if o.isdigit())

    def scale(self, replicas: int) -> tuple[list[str], list[str]]:
        """``kubectl scale``: start the missing ordinals below ``replicas``; SIGTERM those at or
        above it together (Parallel policy) and delete their volumes (``whenScaled: Delete``).
        Returns (started, removed) pod names."""
        self._update(replicas=replicas)
        removed = [o for o in self.ordinals() if o >= replicas and self.pod(o) is not None]
        stop_all([p for o in removed if (p := self.pod(o)) is not None], self.grace)
        for ordinal in removed:
            if self.delete_volume_on_scale:
                shutil.rmtree(self.volume(ordinal), ignore_errors=True)
        return self.recover(), [self.pod_name(o) for o in removed]

    def recover(self) -> list[str]:
        """The StatefulSet controller's reconcile: start every ordinal below the replica count
        that is not running, on the volume it has (or a new, empty one)."""
        started = []
        for ordinal in range(int(self.state()["replicas"])):
            if self.pod(ordinal) is None:
                self.start_pod(ordinal)
                started.append(self.pod_name(ordinal))
        return started

    def lose(self, ordinal: int) -> tuple[int, Path]:
        """A node dies with its disk: kill -9 the pod, then delete its volume."""
        proc = self.pod(ordinal)
        if proc is None:
            raise LocalClusterError(f"{self.pod_name(ordinal)} is not running")
        proc.signal(signal.SIGKILL)
        _wait_gone([proc], 30)
        shutil.rmtree(self.volume(ordinal), ignore_errors=True)
        return proc.pid, self.volume(ordinal)

    def set_template(
        self, overrides: Mapping[str, str], partition: int
    ) -> subprocess.CompletedProcess[str]:
        """A new revision of the pod template with ``rollingUpdate.partition``; the topics Job
        runs again with it first, as ``kubectl apply`` of a new release would."""
        state = self.state()
        self._update(template={**state["template"], **overrides}, partition=partition)
        return self.run_job()

    def roll(self, timeout: float) -> Iterator[tuple[str, float]]:
        """A StatefulSet's RollingUpdate: every ordinal at or above the partition that is not on
        the current template, highest first, deleted (SIGTERM), recreated and waited for until
        the group is settled again. Yields (pod, seconds until settled)."""
        state = self.state()
        for ordinal in reversed(range(state["partition"], int(state["replicas"]))):
            began = time.monotonic()
            proc = self.pod(ordinal)
            if proc is not None and proc.overrides == state["template"]:
                continue  # already at the new revision
            if proc is not None:
                stop(proc, self.grace)
            self.start_pod(ordinal)
            self.wait_settled(timeout)
            yield self.pod_name(ordinal), time.monotonic() - began

    def status(self) -> list[PodStatus]:
        self.state()  # no cluster: say how to make one rather than print an empty table
        rows = []
        for ordinal in self.ordinals():
            proc = self.pod(ordinal)
            answer = read_ready(proc.port) if proc is not None and proc.port else None
            code, body = answer if answer is not None else (None, {})
            assigned = body.get("assigned", [])
            inbox = assigned_partitions(assigned, self.inbox)
            rows.append(
                PodStatus(
                    self.pod_name(ordinal), ordinal, proc, code,
                    tuple(inbox), len(assigned) - len(inbox),
                    tuple(body.get("restoring_partitions", [])),
                )
            )  # fmt: skip
        return rows

    def settled(self) -> bool:
        """The group is stable with exactly the running pods as members, every pod is ready,
        and each inbox partition has exactly one owner."""
        rows = [r for r in self.status() if r.proc is not None]
        owned = [p for r in rows for p in r.inbox]
        return (
            bool(rows)
            and all(r.ready == 200 for r in rows)
            and sorted(owned) == list(range(self.partitions))
            and self._members() == {f"ksaga-{r.name}" for r in rows}
        )

    def _members(self) -> set[str] | None:
        """The client ids of the orchestrator group's members, None unless the group is stable."""
        if self._admin is None:  # one per command: each would log its teardown at info level
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 4})
        admin = self._admin
        try:
            (future,) = admin.describe_consumer_groups([self.group], request_timeout=5).values()
            group = future.result(10)
        except KafkaException:
            return None
        if group.state != ConsumerGroupState.STABLE:
            return None
        return {m.client_id for m in group.members}

    def wait_settled(self, timeout: float) -> float:
        began = time.monotonic()
        while not self.settled():
            if time.monotonic() - began > timeout:
                raise LocalClusterError(
                    f"the pods did not settle within {timeout:.0f} s (all ready, every inbox"
                    f" partition owned once); logs in {self.workdir / 'logs'}"
                )
            time.sleep(0.5)
        return time.monotonic() - began

    # ------------------------------------------------------------------ the rest

    def start_participants(self, options: Iterable[str]) -> Proc:
        old = self.record("participants")
        if old is not None and old.alive:
            raise LocalClusterError("the participants are already running")
        argv = [
            sys.executable, "-m", "orchestrator", "participants", "--bootstrap", self.bootstrap,
            "--state-dir", str(self.workdir / "volumes" / "participants"), *options,
        ]  # fmt: skip
        return self.spawn("participants", argv, os.environ)

    def _all_procs(self) -> list[Proc]:
        folder = self.workdir / "procs"
        records = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return [Proc(**json.loads(p.read_text())) for p in records]

    def down(self) -> list[str]:
        """Stop every process (pods first, the broker last) and delete the work dir."""
        procs = [p for p in self._all_procs() if p.alive]
        stop_all([p for p in procs if p.name != "kafka"], self.grace)
        stop_all([p for p in procs if p.name == "kafka"], 60)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return [p.name for p in procs]


def stop(proc: Proc, grace: float) -> None:
    stop_all([proc], grace)


def stop_all(procs: list[Proc], grace: float) -> None:
    """SIGTERM together, SIGKILL whatever is left after ``grace`` (as the kubelet does)."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    if not _wait_gone(procs, grace):
        for proc in procs:
            proc.signal(signal.SIGKILL)
        _wait_gone(procs, 30)


def _wait_gone(procs: list[Proc], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(p.alive for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) of a live pid, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    return fields[0], int(fields[19])


def _tail(proc: Proc, lines: int = 20) -> str:
    return "\n".join(Path(proc.log).read_text(errors="replace").splitlines()[-lines:])
