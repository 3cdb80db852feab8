"""Every replica's disk lost at once: everything comes back from the topics alone.

Then the operator tools on the result: ``ksaga state rebuild`` reproduces ``ksaga.state``
exactly (and refuses a store a running replica holds), ``ksaga saga list|show|history`` agree
with the topics, and ``ksaga replay`` of the whole run with the same code finds no divergence.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from connectors.order_participants import Behaviour
from orchestrator.config import load_settings
from orchestrator.kafka import watermarks
from orchestrator.ops.inspect import latest_states
from orchestrator.ops.reader import Cluster
from orchestrator.store import RocksSagaStore
from orchestrator.testing.kafka_cluster import wait_for
from tests.system.cli_runner import ksaga
from tests.system.conftest import PARTITIONS, System, orders

pytestmark = pytest.mark.kafka

MIXED = Behaviour(seed=11, decline_rate=0.2, flaky_rate=0.1)


def test_a_replica_set_that_lost_every_disk_recovers_from_the_topics(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(MIXED)
    r1, r2 = system.replica("r1"), system.replica("r2")
    system.start_participants()
    system.publish(orders("lost", 50))
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.terminal()) >= 15, 60, "progress")
    assert len(observer.terminal()) < 50, "some sagas must be in flight when the disks go"

    # The whole replica set crashes and every disk is gone.
    assert r1.kill() == -9
    assert r2.kill() == -9
    for replica in (r1, r2):
        shutil.rmtree(replica.state_dir)
        assert not replica.state_dir.exists()
    r1, r2 = system.replica("r1"), system.replica("r2")
    system.assert_guarantees()  # in-flight sagas finished; the checker's verdict is PASS

    # An offline rebuild of r2's store equals ksaga.state, record for record.
    assert r2.terminate() == 0
    bootstrap = system.bootstrap
    refused = ksaga("state", "rebuild", "--bootstrap", bootstrap, "--state-dir", str(r1.state_dir))
    assert refused.code == 1
    assert "in use (RocksDB lock held)" in refused.err
    rebuilt = ksaga("state", "rebuild", "--bootstrap", bootstrap, "--state-dir", str(r2.state_dir))
    assert rebuilt.code == 0, rebuilt
    assert "50 sagas from" in rebuilt.out
    assert "records/s" in rebuilt.out

    cluster = Cluster(load_settings(bootstrap_servers=bootstrap))
    in_topic = latest_states(cluster)
    ends = watermarks(cluster.admin, [("ksaga.state", p) for p in range(PARTITIONS)])
    with RocksSagaStore(r2.state_dir) as store:
        for partition in range(PARTITIONS):
            stored = {s.saga_id: s for s in store.states(partition)}
            expected = {k: s for k, (p, s) in in_topic.items() if p == partition}
            assert stored == expected
            assert store.checkpoint(partition) == ends[("ksaga.state", partition)]
            timers = {t.saga_id for t in store.due_timers(partition, 2**62, 1_000)}
            assert timers == {k for k, s in expected.items() if s.timer is not None}

    one = ksaga("state", "rebuild", "--bootstrap", bootstrap, "--state-dir", str(r2.state_dir),
                "--partition", "1", "--json").json()  # fmt: skip
    assert one["partitions"] == [1]
    assert one["sagas"] == sum(1 for p, _ in in_topic.values() if p == 1)

    # The restarted replica catches up from the rebuilt store and the system goes on; the
    # replay at the end re-folds the whole log (as the checker does) and finds it identical.
    system.replica("r2")
    system.publish(orders("lost", 10, start=50))
    assert system.wait_all_terminal() == system.expected()
    inspect_and_replay(system)


def inspect_and_replay(system: System) -> None:
    bootstrap = system.bootstrap
    expected = system.expected()
    compensated = sorted(k for k, v in expected.items() if v == "COMPENSATED")
    listed = ksaga("saga", "list", "--bootstrap", bootstrap, "--status", "compensated",
                   "--limit", "1000", "--json").json()  # fmt: skip
    assert sorted(r["saga_id"] for r in listed) == compensated
    assert {r["step"] for r in listed} == {"reserve_stock"}  # declined at payment: stock undone
    assert (
        len(ksaga("saga", "list", "--bootstrap", bootstrap, "--limit", "5", "--json").json()) == 5
    )
    none = ksaga("saga", "list", "--bootstrap", bootstrap, "--older-than", "1h", "--json")
    assert none.json() == []
    table = ksaga("saga", "list", "--bootstrap", bootstrap, "--type", "order")
    assert table.code == 0
    assert "60 saga(s)" in table.out

    saga_id = compensated[0]
    shown = ksaga("saga", "show", "--bootstrap", bootstrap, saga_id, "--json").json()
    assert shown["status"] == "COMPENSATED"
    assert shown["completed"] == ["reserve_stock"]
    assert shown["failure"]["step"] == "charge_payment"  # declined (or timed out, under load)
    assert shown["data"]["order_id"] == saga_id.removeprefix("order/")
    history = ksaga("saga", "history", "--bootstrap", bootstrap, saga_id, "--json").json()
    assert [h["version"] for h in history] == list(range(1, shown["version"] + 1))
    assert history[0]["input"] == "SagaTriggered"
    assert history[0]["status_before"] is None
    assert history[-1]["status_after"] == "COMPENSATED"
    missing = ksaga("saga", "show", "--bootstrap", bootstrap, "order/nobody")
    assert missing.code == 1
    assert "no saga 'order/nobody'" in missing.err

    # The same code re-folds the whole run, two crashes included, exactly as it happened.
    replayed = ksaga("replay", "--bootstrap", bootstrap, "--json")
    report = replayed.json()
    assert replayed.code == 0, report["divergences"][:3]
    assert report["sagas"] == 60
    assert report["divergences"] == []
    assert report["skipped"] == {}
    one = ksaga("replay", "--bootstrap", bootstrap, "--saga", saga_id, "--json").json()
    assert one["sagas"] == 1
    assert one["compared"] >= shown["version"]
    middle = report["window"]["0"][1] // 2  # from mid-log: states seeded from ksaga.state
    tail = ksaga("replay", "--bootstrap", bootstrap, "--from-offset", f"0:{middle}", "--json")
    assert tail.code == 0
    assert tail.json()["window"] == {"0": [middle, report["window"]["0"][1]]}
    assert tail.json()["divergences"] == []
    assert tail.json()["skipped"] == {}
    since = ksaga(
        "replay", "--bootstrap", bootstrap, "--from-timestamp", history[1]["at"], "--json"
    )
    assert since.code == 0
    assert since.json()["divergences"] == []
    assert since.json()["skipped"] == {}
    assert since.json()["records"] < report["records"]
