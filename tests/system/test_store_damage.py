"""A state in a replica's RocksDB that cannot be decoded: the partition is rebuilt, not lost.

The inbox record that reads the damaged state is sound, so it must not be dead-lettered, and the
replica must not die on it (it would die again on the same record after every restart). The
loop aborts the batch, wipes the partition's copy and restores it from ``ksaga.state``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.order_participants import Behaviour
from orchestrator.partitioning import partition_for
from orchestrator.store import _STATES, RocksSagaStore, _state_key
from orchestrator.testing.kafka_cluster import wait_for
from tests.system.conftest import PARTITIONS, System, orders

pytestmark = pytest.mark.kafka


def test_an_unreadable_stored_state_rebuilds_its_partition_and_the_sagas_go_on(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(Behaviour(seed=5, decline_rate=0.2))
    replica = system.replica("r1")
    system.start_participants()
    first = orders("dm", 30)
    system.publish(first)
    system.wait_all_terminal()
    assert replica.terminate() == 0

    damaged = f"order/{first[7]}"
    partition = partition_for(damaged, PARTITIONS)
    with RocksSagaStore(replica.state_dir) as store:
        assert store.get(partition, damaged) is not None
        store._cf[_STATES][_state_key(partition, damaged)] = b"\x00not a saga state"

    replica = system.replica("r1")
    system.publish([first[7]])  # a repeated trigger: its fold reads the damaged state
    system.publish(orders("dm", 20, start=30))
    wait_for(lambda: "rebuilding its partition" in replica.log_path.read_text(), 60, "the rebuild")
    system.assert_guarantees()  # the repeat recognised as such, no dead letter, all finished
    assert replica.running(), replica.tail()
    assert replica.terminate() == 0
    with RocksSagaStore(replica.state_dir) as store:
        state = store.get(partition, damaged)
    assert state is not None
    assert state.status.value == system.expected()[damaged]
