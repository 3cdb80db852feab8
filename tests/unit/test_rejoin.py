"""The rejoin budget and the loop's reading of a refused ``produce``: no broker needed."""

from __future__ import annotations

import threading
import weakref

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from orchestrator.app import _Clients
from orchestrator.budget import WindowBudget
from orchestrator.config import load_settings
from orchestrator.errors import ConfigError
from orchestrator.heap import settle_heap
from orchestrator.kafka import new_consumer, new_restore_consumer
from orchestrator.loop import FatalError, Orchestrator, _Abort
from orchestrator.metrics import Metrics
from orchestrator.records import OutRecord
from orchestrator.registry import load_registry
from orchestrator.rejoin import run_rejoining
from orchestrator.store import MemorySagaStore


def test_the_budget_allows_limit_rejoins_per_window_then_refuses() -> None:
    budget = WindowBudget(limit=2, window_s=100)
    assert budget.take(0.0)
    assert budget.take(10.0)
    assert not budget.take(50.0)  # a third within 100 s: the supervisor's turn
    assert budget.take(100.0)  # the first has left the window
    assert not budget.take(105.0)
    assert budget.take(110.0)


def test_a_zero_budget_never_rejoins() -> None:
    assert not WindowBudget(limit=0, window_s=1).take(0.0)


class _RefusingProducer(Producer):
    def __init__(self, error: KafkaError) -> None:
        super().__init__({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
        self.error = error

    def produce(self, *args: object, **kwargs: object) -> None:
        raise KafkaException(self.error)


def _loop(producer: Producer) -> Orchestrator:
    return Orchestrator(
        settings=load_settings(bootstrap_servers="127.0.0.1:1"), registry=load_registry("sagas"),
        store=MemorySagaStore(), consumer=None, producer=producer,  # type: ignore[arg-type]
        restore_consumer=None, admin=None, partitions=4, metrics=Metrics(),  # type: ignore[arg-type]
    )  # fmt: skip


RECORD = OutRecord("orders", 0, b"k", b"v")


def test_produce_refused_because_the_transaction_failed_aborts_the_batch() -> None:
    """The CI failure: records timed out in flight, the transaction went abortable, and the next
    produce() raised a bare _STATE, which was taken for fatal and ended the replica."""
    loop = _loop(_RefusingProducer(KafkaError(KafkaError._STATE, "Erroneous state")))
    with pytest.raises(_Abort):
        loop._produce(RECORD)


def test_produce_refused_by_a_fatal_error_is_fatal() -> None:
    loop = _loop(_RefusingProducer(KafkaError(KafkaError._FENCED, "fenced", fatal=True)))
    with pytest.raises(FatalError):
        loop._produce(RECORD)
    assert loop.metrics.fatal._value.get() == 1


class _FatalOnFlush(Producer):
    """confluent-kafka raises a fatal error from inside flush(); a delivery report served after
    it in the same call turns it into a SystemError caused by that KafkaException."""

    def __init__(self, wrapped: bool) -> None:
        super().__init__({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
        self.wrapped = wrapped

    def flush(self, *args: object, **kwargs: object) -> int:
        fenced = KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
        if not self.wrapped:
            raise fenced
        try:
            raise fenced
        except KafkaException as exc:
            raise SystemError("returned a result with an exception set") from exc


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_fatal_error_out_of_flush_is_fatal_however_it_surfaces(wrapped: bool) -> None:
    loop = _loop(_FatalOnFlush(wrapped))
    with pytest.raises(FatalError, match="_FENCED"):
        loop._flush(1)


def test_any_other_system_error_out_of_flush_is_not_swallowed() -> None:
    class Broken(Producer):
        def flush(self, *args: object, **kwargs: object) -> int:
            raise SystemError("something else")

    loop = _loop(Broken({"bootstrap.servers": "127.0.0.1:1", "log_level": 0}))
    with pytest.raises(SystemError, match="something else"):
        loop._flush(1)


def test_a_discarded_membership_is_freed_after_its_clients_close() -> None:
    """A rejoin drops the old loop: its consumer holds its rebalance callbacks, and a purged
    record its delivery callback, both bound methods of the loop. If either kept it alive, every
    rejoin would leak a loop and two librdkafka handles with their threads and connections."""
    settings = load_settings(bootstrap_servers="127.0.0.1:1")
    plain = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})  # no transactions
    clients = _Clients(new_consumer(settings), plain, new_restore_consumer(settings))
    loop = Orchestrator(
        settings=settings, registry=load_registry("sagas"), store=MemorySagaStore(),
        consumer=clients.consumer, producer=clients.producer,
        restore_consumer=clients.restore_consumer, admin=None,  # type: ignore[arg-type]
        partitions=4, metrics=Metrics(),
    )  # fmt: skip
    clients.consumer.subscribe(["orders"], on_assign=loop._on_assign, on_revoke=loop._on_revoke)
    plain.produce("orders", b"v", on_delivery=loop._state_delivered)  # never delivered
    settle_heap()  # as at start: the loop is frozen with the rest of the heap
    gone = weakref.ref(loop)
    clients.close()
    del loop, clients
    settle_heap()
    assert gone() is None


class _FakeMember:
    """A membership whose run() fails fatally ``fails`` times in a row, or returns."""

    def __init__(self, fatal: bool, seen: list[_FakeMember]) -> None:
        self.fatal = fatal
        self.closed = False
        self.previous_alive: bool | None = None
        seen.append(self)

    def run(self, stop: threading.Event) -> None:
        if self.fatal:
            raise FatalError("fenced")

    def close(self) -> None:
        self.closed = True


def test_a_rejoin_closes_the_old_member_and_frees_it_before_the_new_one_runs() -> None:
    """The old member must not outlive the rejoin: the FatalError's traceback holds its run()
    frame, and a heap frozen while that was alive would keep it (and its librdkafka handles)."""
    members = [_FakeMember(True, [])]  # handed over by pop(), as run_replica does
    gone = weakref.ref(members[0])
    joined: list[_FakeMember] = []

    class Second(_FakeMember):
        def run(self, stop: threading.Event) -> None:
            self.previous_alive = gone() is not None

    def join() -> _FakeMember:
        return Second(False, joined)

    budget = WindowBudget(3, 60)
    error = run_rejoining(members.pop(), join, threading.Event(), budget, on_join=lambda m: None)
    assert error is None
    assert joined[0].previous_alive is False
    assert joined[0].closed


def test_a_spent_budget_or_a_stop_ends_with_the_error_and_no_new_member() -> None:
    joins: list[_FakeMember] = []
    stop = threading.Event()
    failing = _FakeMember(True, [])
    error = run_rejoining(
        failing, lambda: _FakeMember(True, joins), stop, WindowBudget(2, 60), on_join=lambda m: None
    )
    assert error == "fenced"
    assert len(joins) == 2  # two rejoins, then the budget said no
    assert all(member.closed for member in joins)
    stop.set()
    error = run_rejoining(
        _FakeMember(True, []), lambda: _FakeMember(False, joins), stop, WindowBudget(2, 60),
        on_join=lambda m: None,
    )  # fmt: skip
    assert error == "fenced"
    assert len(joins) == 2  # a SIGTERM came meanwhile: no new clients


def test_a_failed_join_ends_with_both_errors() -> None:
    def join() -> _FakeMember:
        raise ConfigError("bad TLS file")

    error = run_rejoining(
        _FakeMember(True, []), join, threading.Event(), WindowBudget(2, 60), on_join=lambda m: None
    )
    assert error == "fenced; joining again failed: bad TLS file"
