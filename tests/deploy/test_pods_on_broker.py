"""The rendered manifests, run: the Job's and three StatefulSet pods' exact command and environment
as local processes against the real broker.

Nothing is started the way the other system tests start it: the argv and environment come from
``kubectl apply -k deploy/k8s`` as rendered (``orchestrator.testing.kustomize``), resolved the
way the kubelet would (``orchestrator.testing.pods``, with the image's ENTRYPOINT/CMD/ENV read
from ``deploy/k8s/Dockerfile``), and only what cannot be the same on one machine is
substituted (``localise`` names each substitution and why). Then, as in a cluster:

1. the Job creates the topics with P from the ConfigMap;
2. three pods start while a previous owner's transaction still holds offsets of every inbox
   partition (``OffsetGate``): every replica owning an inbox partition is stuck restoring and
   answers /ready 503, and turns 200 only after the gate is gone and its restore finished;
3. the group's assignment covers every partition with no overlap, each pod owning some;
4. mid-load, the highest-ordinal pod owning an in-flight saga gets SIGTERM (a scale-down or a
   rolling update) and exits 0 within terminationGracePeriodSeconds; the other two take over
   its partitions, restore them and finish every saga, and the log checker passes.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.order_participants import Behaviour, expected_outcome
from orchestrator.partitioning import partition_for
from orchestrator.testing.checker import CheckInput, check
from orchestrator.testing.kafka_cluster import KafkaBroker, free_ports, wait_for
from orchestrator.testing.manifests import Deployment, load_deployment, localise
from orchestrator.testing.pods import pod_spec
from orchestrator.testing.readiness import assigned_partitions, read_ready
from orchestrator.testing.system import (
    ChildProcess,
    Observer,
    ParticipantsProcess,
    publish_orders,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPLICAS = 3
BEHAVIOUR = Behaviour(seed=11, decline_rate=0.1, silent_rate=0.2)  # silent: in flight >= 5 s
TRIGGERS = "orders"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    # Kafka's default initial rebalance delay (the shared test broker sets 0): pods started
    # together by the StatefulSet's Parallel policy join one generation, as in a cluster.
    broker = KafkaBroker(
        tmp_path_factory.mktemp("k8s-kafka"),
        extra_config={"group.initial.rebalance.delay.ms": "3000"},
    )
    with broker:
        yield broker


class OffsetGate:
    """An open transaction holding the group's offsets of every inbox partition: a previous
    owner that has not finished its last transaction. A restore waits for it (a read_committed
    ``committed()`` is answered only once no transaction holds the partition's offsets)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self._member = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "transactional.id": "k8s-test-previous-owner",
                "transaction.timeout.ms": 120_000,
            }
        )
        self._producer.init_transactions(30)
        self._producer.begin_transaction()
        offsets = [TopicPartition(topic, p, 0) for p in range(partitions)]
        metadata = self._member.consumer_group_metadata()
        self._producer.send_offsets_to_transaction(offsets, metadata, 30)

    def release(self) -> None:
        """Abort: the pending offsets vanish, the committed ones stay as they were."""
        self._producer.abort_transaction(30)
        self._member.close()


def assignment(admin: AdminClient, group: str) -> dict[str, set[tuple[str, int]]]:
    """client.id -> assigned partitions, as the group coordinator sees them."""
    (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    description = future.result(15)
    return {
        m.client_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
        for m in description.members
    }


def test_the_manifests_run_share_partitions_turn_ready_after_restore_and_stop_gracefully(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    deployment: Deployment = load_deployment()
    bootstrap = broker.bootstrap_servers
    job = deployment.topics_job()
    env0 = deployment.replica(0).env
    group, inbox = env0["KSAGA_GROUP_ID"], env0["KSAGA_TOPIC_PREFIX"] + "inbox"
    partitions = int(env0["KSAGA_PARTITIONS"])
    grace = pod_spec(deployment.statefulset)["terminationGracePeriodSeconds"]
    admin = AdminClient({"bootstrap.servers": bootstrap})

    # 1. The Job.
    done = subprocess.run(
        job.argv, env=localise(job, bootstrap), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"created  {inbox}" in done.stdout
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[inbox].partitions) == partitions
    every = {(t, p) for t in (inbox, TRIGGERS) for p in range(len(topics[t].partitions))}

    # 2. Three pods behind a previous owner's open transaction.
    gate: OffsetGate | None = OffsetGate(bootstrap, group, inbox, partitions)
    ports = free_ports(REPLICAS)
    pods: dict[str, ChildProcess] = {}
    seen: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    port_of: dict[str, int] = {}
    observer: Observer | None = None
    participants = ParticipantsProcess(
        bootstrap, tmp_path, "--seed", str(BEHAVIOUR.seed), "--decline-rate",
        str(BEHAVIOUR.decline_rate), "--silent-rate", str(BEHAVIOUR.silent_rate),
    )  # fmt: skip

    def logs() -> str:
        return "\n".join(f"--- {n}\n{p.tail(12)}" for n, p in pods.items())

    def poll() -> dict[str, tuple[int, dict[str, Any]] | None]:
        answers = {name: read_ready(port_of[name]) for name in pods if pods[name].running()}
        for name, answer in answers.items():
            if answer is not None:
                seen[name].append(answer)
        return answers

    try:
        for ordinal, port in enumerate(ports):
            process = deployment.replica(ordinal)
            name = process.env["KSAGA_REPLICA_ID"]
            env = localise(process, bootstrap, port, tmp_path / name / "state")
            pods[name] = ChildProcess(
                name, process.argv, env, tmp_path / f"{name}.log", inherit_env=False
            )
            port_of[name], seen[name] = port, []
            pods[name].start()

        stuck: dict[str, int] = {}  # pod -> polls seen restoring behind the gate

        def gated() -> bool:
            answers = poll()
            for name, answer in answers.items():
                if answer is not None and answer[1]["restoring_partitions"]:
                    stuck[name] = stuck.get(name, 0) + 1
            # All three restoring is the usual picture (one generation). A pod that joined
            # after the first generation formed cannot get partitions while the others are
            # stuck (they cannot answer the rebalance): then it is 503 with nothing assigned.
            return len(answers) == REPLICAS and (
                len(stuck) == REPLICAS or max(stuck.values(), default=0) >= 100
            )

        wait_for(gated, 60, "the pods stuck restoring behind the open transaction")
        for name, history in seen.items():
            assert all(status == 503 for status, _ in history), f"{name} ready while gated"
        assert gate is not None
        gate.release()
        gate = None

        # 3. Ready after restore, and the partitions shared out.
        def settled() -> bool:
            answers = poll()
            members = assignment(admin, group)
            return (
                all(a is not None and a[0] == 200 for a in answers.values())
                and len(members) == REPLICAS
                and set().union(*members.values()) == every
            )

        wait_for(settled, 60, "three ready pods owning every partition", ignore=(KafkaException,))
        members = assignment(admin, group)
        for name, history in seen.items():
            statuses = [status for status, _ in history]
            assert statuses[0] == 503, name
            assert 200 in statuses, name
            for status, body in history:
                if status == 200:  # ready means: every owned inbox partition restored
                    assert body["restoring_partitions"] == []
                    assert set(body["restored_partitions"]) == set(
                        assigned_partitions(body["assigned"], inbox)
                    )
            owned = members[f"ksaga-{name}"]
            assert owned, f"{name} owns nothing"
            assert {f"{t}[{p}]" for t, p in owned} == set(history[-1][1]["assigned"])
        assert sum(len(m) for m in members.values()) == len(every)  # no partition twice

        # 4. Load, then SIGTERM one pod mid-load.
        participants.start()
        observer = Observer(bootstrap)
        first = [f"k8s-{i:04d}" for i in range(150)]
        publish_orders(bootstrap, first, TRIGGERS)

        def some_done() -> bool:
            assert observer is not None
            observer.poll()
            return bool(observer.terminal())

        wait_for(some_done, 60, "a first saga to finish")
        in_flight = {
            partition_for(s, partitions) for s, st in observer.status.items()
            if st not in ("COMPLETED", "COMPENSATED", "FAILED")
        }  # fmt: skip
        candidates = [
            n for n in sorted(pods, reverse=True)
            if {p for t, p in members[f"ksaga-{n}"] if t == inbox} & in_flight
        ]  # fmt: skip
        assert candidates, "no pod owns an in-flight saga: the stop would prove nothing"
        victim = candidates[0]
        moved = {p for t, p in members[f"ksaga-{victim}"] if t == inbox}
        pods[victim].signal(15)
        code = pods[victim].wait(grace)
        assert code == 0, f"{victim} did not stop cleanly within {grace} s\n{logs()}"
        survivors = [n for n in pods if n != victim]

        def taken_over() -> bool:
            answers = poll()
            members = assignment(admin, group)
            return (
                set(members) == {f"ksaga-{n}" for n in survivors}
                and set().union(*members.values()) == every
                and sum(len(m) for m in members.values()) == len(every)
                and all(a is not None and a[0] == 200 for a in answers.values())
            )

        wait_for(taken_over, 60, "the others to own every partition", ignore=(KafkaException,))
        restored = set().union(*(set(seen[n][-1][1]["restored_partitions"]) for n in survivors))
        assert moved <= restored
        second = [f"k8s-{i:04d}" for i in range(150, 210)]
        publish_orders(bootstrap, second, TRIGGERS)

        # Nothing lost, nothing twice: every saga as the participants decided; the log checker.
        orders = first + second
        want = {f"order/{o}": expected_outcome(o, BEHAVIOUR) for o in orders}

        def finished() -> bool:
            observer.poll()
            return set(want) <= set(observer.terminal())

        wait_for(finished, 90, f"{len(want)} sagas to finish")
        observer.poll(0.5)
        assert {s: observer.status[s] for s in want} == want
        assert observer.duplicate_commands() == []
        out = io.StringIO()
        report = check(
            CheckInput(bootstrap, orders, declined={o for o in orders if BEHAVIOUR.declines(o)}),
            out=out,
        )
        assert report.passed, out.getvalue()
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{logs()}") from exc
    finally:
        if gate is not None:
            gate.release()
        for child in [*pods.values(), participants]:
            child.terminate(30)
        if observer is not None:
            observer.close()
