"""The trigger gate's hysteresis (the loop pauses and resumes trigger partitions on its word)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.admission import TriggerGate


def test_closes_above_high_and_opens_at_low() -> None:
    gate = TriggerGate(100)
    assert gate.low == 50
    assert gate.update(100) is None  # at the mark: still open
    assert gate.update(101) is True
    assert gate.closed
    assert gate.update(400) is None
    assert gate.update(51) is None  # between the marks: stays closed
    assert gate.update(50) is False
    assert not gate.closed
    assert gate.update(99) is None


def test_zero_never_closes() -> None:
    gate = TriggerGate(0)
    assert gate.update(10**9) is None
    assert not gate.closed


@pytest.mark.parametrize(("high", "low"), [(-1, None), (10, 11), (10, -1)])
def test_bad_marks_are_refused(high: int, low: int | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        TriggerGate(high, low)


@given(st.integers(1, 1000), st.lists(st.integers(0, 3000), max_size=60))
def test_reported_changes_alternate_and_match_the_state(high: int, backlogs: list[int]) -> None:
    gate = TriggerGate(high)
    closed = False
    for backlog in backlogs:
        change = gate.update(backlog)
        if change is not None:
            assert change is not closed  # only real changes are reported
            closed = change
        assert gate.closed is closed
        if backlog > high:
            assert gate.closed  # never open above the high mark
        if backlog <= gate.low:
            assert not gate.closed  # never closed at or below the low mark
