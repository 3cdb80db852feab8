"""A saga type the running code does not know: dead-lettered, then recovered after a deploy.

Gift sagas are started (as a newer router would) while the replica still runs the old saga list;
they are dead-lettered as ``unknown-saga-type``. ``ksaga replay`` with the new code points at
exactly those records; the operator deploys the new code, redrives some dead letters (twice:
the second run sends nothing) and rewinds the orchestrator group to reprocess the others in
place. Every gift completes, and no command is ever emitted twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from connectors.order_participants import Behaviour
from orchestrator.config import load_settings
from orchestrator.ops.dlq import REDRIVEN_FROM
from orchestrator.ops.reader import Cluster, headers_of, read_to_end
from orchestrator.ops.replay import committed_offsets
from orchestrator.partitioning import partition_for
from orchestrator.testing.kafka_cluster import wait_for
from sagas.order import OrderItem
from schemas.codec import RecordType, default_catalog
from tests.system.cli_runner import ksaga
from tests.system.conftest import PARTITIONS, System, orders
from tests.system.gift_sagas import GiftOrdered

pytestmark = pytest.mark.kafka

NEW_CODE = "tests.system.gift_sagas"
GIFTS = [f"gift/g{i}" for i in range(6)]


def start_gift(saga_id: str) -> bytes:
    order_id = saga_id.removeprefix("gift/")
    data = GiftOrdered(order_id=order_id, items=[OrderItem(sku="kite", quantity=1)],
                       address="2 Log Lane")  # fmt: skip
    return default_catalog().encode(
        RecordType.START_SAGA,
        {"saga_id": saga_id, "saga_type": "gift", "data": data.model_dump_json().encode(),
         "trigger_topic": "gifts", "trigger_partition": 0, "trigger_offset": 0,
         "triggered_ms": 0},
    )  # fmt: skip


def test_an_unknown_saga_type_is_recovered_by_redrive_and_by_a_rewind(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(Behaviour(seed=5, decline_rate=0.0))
    bootstrap = system.bootstrap
    system.broker.create_topic("gifts", partitions=PARTITIONS)  # the new code's trigger topic
    replica = system.replica("r1")
    system.start_participants()
    system.publish(orders("dlq", 10))
    producer = Producer({"bootstrap.servers": bootstrap})
    for saga_id in GIFTS:
        partition = partition_for(saga_id, PARTITIONS)
        producer.produce("ksaga.inbox", partition=partition, key=saga_id.encode(),
                         value=start_gift(saga_id))  # fmt: skip
    assert producer.flush(10) == 0
    observer = system.watch()
    wait_for(lambda: observer.poll() >= 0 and len(observer.dead_letters) >= 6, 60, "dead letters")
    system.wait_all_terminal()
    cluster = Cluster(load_settings(bootstrap_servers=bootstrap))

    letters = ksaga("dlq", "list", "--bootstrap", bootstrap, "--reason", "unknown-saga-type",
                    "--json").json()  # fmt: skip
    assert sorted(r["key"] for r in letters) == GIFTS
    assert {r["source_topic"] for r in letters} == {"ksaga.inbox"}
    assert {r["redriven"] for r in letters} == {None}
    first = letters[0]
    shown = ksaga("dlq", "show", "--bootstrap", bootstrap, first["position"], "--json").json()
    assert shown["payload"]["format"] == "avro StartSaga"
    assert shown["payload"]["value"]["saga_type"] == "gift"
    assert shown["payload"]["value"]["data"]["address"] == "2 Log Lane"
    assert ("ksaga.dlq.reason", "unknown-saga-type") in [tuple(h) for h in shown["headers"]]

    # The new code diverges from what happened exactly at the gift starts; the old one nowhere.
    assert ksaga("replay", "--bootstrap", bootstrap).code == 0
    dry = ksaga("replay", "--bootstrap", bootstrap, "--sagas", NEW_CODE, "--json")
    assert dry.code == 1
    divergences = dry.json()["divergences"]
    assert sorted(d["saga_id"] for d in divergences) == GIFTS
    assert {d["recorded"] for d in divergences} == {"dead letter unknown-saga-type"}
    assert all(d["replayed"].startswith("v1 RUNNING [send ReserveStock") for d in divergences)
    # A rewind is refused while the group has a member.
    busy = ksaga("replay", "--bootstrap", bootstrap, "--reset-group", "--yes")
    assert busy.code == 1
    assert "active member" in busy.err

    # Deploy: the replica now runs the saga list that knows gifts.
    assert replica.terminate() == 0
    replica = system.replica("r1", sagas_module=NEW_CODE)

    def redrive(*positions: str) -> dict[str, list[dict[str, str]]]:
        args = [a for p in positions for a in ("--offset", p)]
        result: dict[str, list[dict[str, str]]] = ksaga(
            "dlq", "redrive", "--bootstrap", bootstrap, *args, "--json"
        ).json()
        return result

    positions = [r["position"] for r in letters]
    once = redrive(*positions[:2])
    assert [r["position"] for r in once["redriven"]] == positions[:2]
    assert once["skipped"] == []
    twice = redrive(*positions[:4])  # two already redriven: skipped, two new
    assert [r["position"] for r in twice["redriven"]] == positions[2:4]
    assert sorted(r["position"] for r in twice["skipped"]) == sorted(positions[:2])
    assert all("already redriven" in r["outcome"] for r in twice["skipped"])
    assert redrive(*positions[:4])["redriven"] == []  # a third run sends nothing
    redriven = {r["key"] for r in letters[:4]}
    wait_for(
        lambda: (
            observer.poll() >= 0 and all(observer.status.get(s) == "COMPLETED" for s in redriven)
        ),
        60,
        "redriven gifts to complete",
    )
    copies = [
        value.decode()
        for m in read_to_end(bootstrap, ["ksaga.inbox"])
        for name, value in headers_of(m)
        if name == REDRIVEN_FROM and value is not None
    ]
    assert sorted(copies) == sorted(positions[:4])  # one copy each, whatever ran twice

    # The two gifts left in the DLQ: reprocessed in place by rewinding the orchestrator group.
    while observer.poll(0.5):  # drain: every command committed so far is counted
        pass
    sent = len(observer.commands)
    assert replica.terminate() == 0
    rewind = ksaga("replay", "--bootstrap", bootstrap, "--sagas", NEW_CODE, "--reset-group",
                   "--yes", "--json")  # fmt: skip
    plan = rewind.json()
    assert rewind.code == 0, plan
    assert sorted(r["saga_id"] for r in plan["act"]) == sorted(r["key"] for r in letters[4:])
    assert plan["unsafe"] == []
    assert plan["dead_again"] == []
    assert plan["reset"] is True
    system.replica("r1", sagas_module=NEW_CODE)
    wait_for(
        lambda: observer.poll() >= 0 and all(observer.status.get(s) == "COMPLETED" for s in GIFTS),
        60,
        "rewound gifts to complete",
    )
    system.wait_all_terminal()
    while observer.poll(0.5):
        pass
    again = [
        c for c in observer.commands[sent:] if c.saga_id not in {r["key"] for r in letters[4:]}
    ]
    assert again == []  # reprocessing the whole inbox re-sent nothing that had been sent
    assert observer.duplicate_commands() == []
    assert observer.attempt_gaps() == []

    # A rewind that would make an input act twice is refused, and changes nothing. Here the
    # state of a finished order is gone (as a retention tombstone would remove it): its start,
    # folded long ago, would start it again.
    assert system.replicas["r1"].terminate() == 0
    gone = "order/dlq-00000"
    producer.produce("ksaga.state", partition=partition_for(gone, PARTITIONS), key=gone.encode(),
                     value=None)  # fmt: skip
    assert producer.flush(10) == 0
    before = committed_offsets(cluster, range(PARTITIONS))
    refused = ksaga("replay", "--bootstrap", bootstrap, "--reset-group", "--yes", "--json")
    assert refused.code == 1
    assert "refusing to rewind" in refused.err
    unsafe = json.loads(refused.out)["unsafe"]
    assert {r["saga_id"] for r in unsafe} == {gone}
    assert unsafe[0]["recorded"] == "transition"
    assert unsafe[0]["will"].startswith("v1 RUNNING")
    assert committed_offsets(cluster, range(PARTITIONS)) == before
