"""``ksaga local``'s bookkeeping without a broker: which processes it may signal, which template
a pod gets under a partitioned rollout, and the topics Job reading the replicas' saga list."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.testing.local_cluster import LocalCluster, LocalClusterError, Proc
from tests.system.cli_runner import ksaga


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def ticks_of(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[19])


def test_a_record_signals_only_the_process_it_started(
    sleeper: subprocess.Popen[bytes],
) -> None:
    ours = Proc("p", sleeper.pid, ticks_of(sleeper.pid), "log")
    reused = Proc("p", sleeper.pid, ticks_of(sleeper.pid) + 1, "log")  # same pid, other start
    assert ours.alive
    assert not reused.alive
    reused.signal(signal.SIGKILL)
    assert sleeper.poll() is None  # untouched
    ours.signal(signal.SIGKILL)
    assert sleeper.wait(10) == -signal.SIGKILL
    assert not ours.alive


def test_pods_below_the_rollout_partition_keep_their_revision(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    old = {"KSAGA_SAGAS_MODULE": "sagas"}
    new = {"KSAGA_SAGAS_MODULE": "tests.system.gift_sagas"}
    (tmp_path / "cluster.json").write_text(
        json.dumps({"bootstrap": "127.0.0.1:1", "replicas": 4, "template": new, "partition": 3})
    )
    (tmp_path / "procs").mkdir()
    for ordinal in range(4):
        record = Proc(cluster.pod_name(ordinal), 1, 0, "log", overrides=old)
        (tmp_path / "procs" / f"{record.name}.json").write_text(json.dumps(record.__dict__))
    assert [cluster._pod_overrides(o) for o in range(4)] == [old, old, old, new]
    assert cluster.ordinals() == [0, 1, 2, 3]


def test_commands_without_a_cluster_say_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(LocalClusterError, match="ksaga local up"):
        LocalCluster(tmp_path).scale(2)
    result = ksaga("local", "--workdir", str(tmp_path), "pods")
    assert result.code == 1
    assert "ksaga local up" in result.err


def test_the_topics_job_reads_the_replicas_saga_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSAGA_SAGAS_MODULE", "no_such_sagas")
    result = ksaga("topics", "create", "--bootstrap", "127.0.0.1:1", "--partitions", "3")
    assert result.code == 1
    assert "saga module 'no_such_sagas' not found" in result.err
