"""A replica's network link is cut (a TCP proxy between it and the broker) and mended.

A short cut (under the 6 s session timeout) is survived in place; a long one gets the replica
expelled, its partitions move to the other replica, and when the link comes back the old
replica is a zombie whose open transaction must be fenced or aborted, never committed over the
new owner's work. Whatever happens, the log must hold: every saga terminal as the participants
decided, no command twice, the checker's fold equal to the topics.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from connectors.order_participants import Behaviour
from tests.system.conftest import System, orders

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _publish_during(system: System, prefix: str, seconds: float, rate: float) -> None:
    batch = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        system.check_alive()  # supervise: restart a replica that exited
        system.publish(orders(prefix, max(1, int(rate / 2)), start=batch * 1000))
        batch += 1
        time.sleep(0.5)


@pytest.mark.timeout(300)
def test_cut_links_short_and_long_lose_nothing(
    system_factory: Callable[[Behaviour], System],
) -> None:
    system = system_factory(Behaviour(seed=41, decline_rate=0.2, flaky_rate=0.1))
    system.supervised = True  # a replica that hits a fatal error while cut off exits 3
    system.replica("r0", via_proxy=True)
    system.replica("r1", via_proxy=True)
    system.start_participants()
    system.publish(orders("cut-warm", 40))
    system.wait_all_terminal()

    proxied = system.broker.proxied
    for name, hold in (("short", 3.0), ("long", 10.0)):
        proxied.cut("r1")
        try:
            _publish_during(system, f"cut-{name}", hold, rate=20)
        finally:
            proxied.restore("r1")
        _publish_during(system, f"cut-{name}-after", 3.0, rate=20)

    system.assert_guarantees()
    print(f"replicas restarted after a fatal error: {system.restarts}")
