"""Leaving a ``with`` block ends the resource, and never hides the error that left it."""

from __future__ import annotations

from typing import Self

import pytest

from orchestrator.lifecycle import ClosedOnExit, StoppedOnExit


class _Resource(ClosedOnExit):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class _Service(StoppedOnExit):
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> Self:
        self.events.append("start")
        return self

    def stop(self) -> None:
        self.events.append("stop")


def test_a_resource_is_itself_in_the_block_and_closed_once_after() -> None:
    resource = _Resource()
    with resource as inside:
        assert inside is resource
        assert resource.closed == 0
    assert resource.closed == 1


def test_an_error_closes_the_resource_and_still_propagates() -> None:
    resource = _Resource()
    with pytest.raises(RuntimeError, match="boom"), resource:
        raise RuntimeError("boom")
    assert resource.closed == 1


def test_a_service_starts_on_entry_and_stops_after_an_error_too() -> None:
    service = _Service()
    with service as inside:
        assert inside is service
        assert service.events == ["start"]
    assert service.events == ["start", "stop"]
    with pytest.raises(ValueError, match="bad"), service:
        raise ValueError("bad")
    assert service.events == ["start", "stop", "start", "stop"]
