"""The loop watchdog fires on a stale heartbeat, and never while the loop beats."""

from __future__ import annotations

import threading

import pytest

from orchestrator import clock
from orchestrator.watchdog import LoopWatchdog


def test_a_stale_heartbeat_is_reported_once_with_its_age() -> None:
    stalls: list[float] = []
    fired = threading.Event()
    frozen = clock.monotonic()

    def on_stall(age: float) -> None:
        stalls.append(age)
        fired.set()

    dog = LoopWatchdog(lambda: frozen, 0.2, 3, interval_s=0.02, on_stall=on_stall).start()
    assert fired.wait(5)
    dog.stop()
    assert len(stalls) == 1
    assert stalls[0] > 0.2


def test_a_beating_loop_is_never_reported() -> None:
    stalls: list[float] = []
    beat = [clock.monotonic()]
    dog = LoopWatchdog(lambda: beat[0], 0.3, 3, interval_s=0.02, on_stall=stalls.append).start()
    deadline = clock.monotonic() + 1.0
    while clock.monotonic() < deadline:
        beat[0] = clock.monotonic()
        threading.Event().wait(0.01)
    dog.stop()
    assert stalls == []


def test_a_non_positive_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopWatchdog(clock.monotonic, 0, 3)
