"""The ``with`` block of a resource the runtime or the test harness owns: leaving it ends it.

Its one job: the ``__enter__``/``__exit__`` pair, written once, for the two lifecycles ksaga has:
a resource opened by its constructor and ended by ``close()`` (stores, participants), and a
service started by ``start()`` and ended by ``stop()`` (test brokers, proxies). What it never does:
swallow the exception that left the block (``__exit__`` returns None) or end anything twice on its
own (``close``/``stop`` are the subclasses', and idempotent where they need to be).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

__all__ = ["ClosedOnExit", "StoppedOnExit"]


class ClosedOnExit(ABC):
    """``with resource:`` yields the resource itself and closes it on the way out."""

    __slots__ = ()

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class StoppedOnExit(ABC):
    """``with service:`` starts the service, yields what ``start()`` returns, stops it after."""

    __slots__ = ()

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
