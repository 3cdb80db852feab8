"""The README's operations walkthrough, run: ``ksaga local`` commands on the rendered manifests.

The same commands an operator types (through ``ksaga``'s own entry point, in-process): up (a
broker, the topics Job, the StatefulSet's three pods), participants and orders, scale to four,
lose a pod with its volume while sagas are in flight, recover it, and the verdict of the log
checker. Every pod is the container of ``deploy/k8s`` as the kubelet would start it
(``orchestrator.testing.manifests``); the work dir carries the cluster between the commands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.testing.local_cluster import LocalCluster
from orchestrator.testing.manifests import STATEFULSET
from tests.system.cli_runner import CliResult, ksaga

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_deploy_scale_lose_a_node_recover_and_every_saga_ends_checked(tmp_path: Path) -> None:
    workdir = tmp_path / "local"

    def local(*args: str) -> CliResult:
        result = ksaga("local", "--workdir", str(workdir), *args)
        assert result.code == 0, f"ksaga local {' '.join(args)}: {result}\n{logs()}"
        return result

    def logs() -> str:
        folder = workdir / "logs"
        tails = [
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            for log in sorted(folder.glob("*.log"))
        ] if folder.is_dir() else []  # fmt: skip
        return "\n".join(tails)

    try:
        up = local("up")
        assert "created  ksaga.inbox" in up.out
        cluster = LocalCluster(workdir)
        every = list(range(cluster.partitions))
        three = cluster.status()
        assert [r.name for r in three] == [f"{STATEFULSET}-{i}" for i in range(3)]
        assert all(r.ready == 200 for r in three)
        assert sorted(p for r in three for p in r.inbox) == every

        local("participants", "--seed", "7", "--decline-rate", "0.1", "--silent-rate", "0.1")
        local("orders", "120")

        # Scale up: a fourth pod joins and takes a share of the group's partitions.
        scaled = local("scale", "4")
        assert "started: ksaga-orchestrator-3" in scaled.out
        four = cluster.status()
        assert len(four) == 4
        assert all(r.ready == 200 and r.proc for r in four)
        assert sorted(p for r in four for p in r.inbox) == every
        assert four[3].triggers + len(four[3].inbox) > 0, "the new pod got nothing"

        # Lose the pod that owns the most inbox partitions, with its disk, mid-load.
        local("orders", "120")
        victim = max(four, key=lambda r: len(r.inbox))
        lost = local("lose", str(victim.ordinal))
        assert f"{victim.name}: kill -9" in lost.out
        assert not cluster.volume(victim.ordinal).exists()
        gone = {r.name: r for r in cluster.status()}[victim.name]
        assert gone.proc is None

        # Recover: the pod comes back on a new, empty volume and the group settles with it.
        recovered = local("recover")
        assert f"started: {victim.name}" in recovered.out
        back = {r.name: r for r in cluster.status()}[victim.name]
        assert back.proc is not None
        assert back.ready == 200
        assert victim.proc is not None
        assert back.proc.pid != victim.proc.pid
        assert (cluster.volume(victim.ordinal) / "state").is_dir()

        # Every order's saga terminal, as the participants decided; the log checker agrees.
        verdict = local("verify")
        assert "verdict: PASS sagas=240" in verdict.out
    finally:
        if workdir.exists():
            down = ksaga("local", "--workdir", str(workdir), "down")
            assert down.code == 0, down
