"""Wiring of one replica: settings -> sagas -> topics check -> store -> clients -> the loop.

No logic of its own. A fatal Kafka error (a fenced producer, a broken transaction, an expelled
member) closes every client and rejoins with new ones over the same RocksDB, within the budget of
``rejoin.py``. Exit codes: 0 after a graceful stop (SIGTERM/SIGINT: the open transaction is
finished or aborted, the group is left, RocksDB closed), 1 for a configuration error found at
start, 3 for a fatal Kafka error past the rejoin budget: the supervisor restarts us.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import structlog
from confluent_kafka import Consumer, KafkaException, Producer

from orchestrator.budget import WindowBudget
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.heap import settle_heap
from orchestrator.kafka import new_admin, new_consumer, new_producer, new_restore_consumer
from orchestrator.logs import configure_logging
from orchestrator.loop import Orchestrator
from orchestrator.metrics import Metrics
from orchestrator.probes import start_probe_server
from orchestrator.registry import load_registry
from orchestrator.rejoin import run_rejoining
from orchestrator.store import STORE_FORMAT_VERSION, RocksSagaStore, StoreMeta
from orchestrator.topics import check_topics
from orchestrator.tracing import SagaTracer, span_processor
from orchestrator.watchdog import LoopWatchdog

__all__ = ["EXIT_CONFIG", "EXIT_FATAL", "configure_logging", "run_replica"]

EXIT_CONFIG = 1
EXIT_FATAL = 3
_DRAIN_POLLS = 10
_log = structlog.get_logger("ksaga.app")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def open_store(settings: Settings, partitions: int) -> RocksSagaStore:
    """The replica's RocksDB, wiped when it belongs to other topics or another partition count."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = RocksSagaStore(
        settings.state_dir,
        block_cache_bytes=settings.block_cache_mb << 20,
        write_buffer_bytes=settings.write_buffer_mb << 20,
        state_cache_entries=settings.state_cache_entries,
    )
    want = StoreMeta(STORE_FORMAT_VERSION, settings.topics.state, partitions)
    meta = store.get_meta()
    if meta is not None and meta != want:
        _log.warning("store belongs to another layout; wiping it", found=str(meta), want=str(want))
        for partition in range(max(meta.partitions, partitions)):
            store.wipe_partition(partition)
    if meta != want:
        store.set_meta(want)
    return store


@dataclass
class _Clients:
    """One membership's Kafka clients. A rejoin closes them all and builds new ones, as a
    restarted process would: nothing of a fenced producer or an expelled consumer is reused."""

    consumer: Consumer
    producer: Producer
    restore_consumer: Consumer
    closed: bool = False

    @classmethod
    def build(cls, settings: Settings) -> _Clients:
        consumer = new_consumer(settings)
        try:
            producer = new_producer(settings)
            return cls(consumer, producer, new_restore_consumer(settings))
        except BaseException:
            consumer.close()  # the producer holds no group; the consumer would linger in it
            raise

    def close(self) -> None:
        """Drop what the dead transaction still queued, then leave the group.

        No commit logic runs: the loop never holds a transaction open between batches, and the
        one a fatal error interrupted is the broker's to abort (or the new producer's
        ``init_transactions``, which has the same ``transactional.id``, fences and aborts it).
        """
        if self.closed:
            return
        self.closed = True
        try:
            self.producer.purge(in_queue=True, in_flight=True, blocking=True)
        except KafkaException as exc:
            _log.info("purging the old producer failed; dropping it", error=str(exc))
        # A purged record keeps its delivery callback (a bound method of the old loop) until
        # its report is served: serve them, or the old loop and its librdkafka handles (threads,
        # connections) would never be freed. A fatal producer raises its error once on the way.
        for _ in range(_DRAIN_POLLS):
            try:
                if self.producer.poll(0) == 0:
                    break
            except (KafkaException, SystemError):
                continue
        try:
            self.restore_consumer.close()
        finally:
            self.consumer.close()


@dataclass
class _Membership:
    """A loop and the clients it owns (``rejoin.Member``)."""

    clients: _Clients
    loop: Orchestrator

    def run(self, stop: threading.Event) -> None:
        self.loop.run(stop)

    def close(self) -> None:
        self.clients.close()


class _Current:
    """What the probes and the watchdog read: the loop running now (a rejoin builds a new one)."""

    def __init__(self, loop: Orchestrator) -> None:
        self.loop = loop

    @property
    def heartbeat(self) -> float:
        return self.loop.heartbeat

    @property
    def assigned(self) -> set[tuple[str, int]]:
        return self.loop.assigned

    @property
    def pending_restore(self) -> set[int]:
        return self.loop.pending_restore

    @property
    def active(self) -> set[int]:
        return self.loop.active

    @property
    def ready(self) -> bool:
        return self.loop.ready


def run_replica(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run until ``stop`` (or SIGTERM/SIGINT); return the process exit code."""
    try:
        registry = load_registry(settings.sagas_module)
        admin = new_admin(settings)
        partitions = check_topics(
            admin, settings, {*registry.trigger_topics, *registry.command_topics}
        )
        clients = _Clients.build(settings)
        processor = span_processor(settings.otel_exporter)
    except ConfigError as exc:
        _log.error("configuration error", error=str(exc))
        print(f"ksaga: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    store = open_store(settings, partitions)
    metrics = Metrics()
    tracer = None if processor is None else SagaTracer(processor)

    def join(clients: _Clients) -> _Membership:
        loop = Orchestrator(
            settings=settings,
            registry=registry,
            store=store,
            consumer=clients.consumer,
            producer=clients.producer,
            restore_consumer=clients.restore_consumer,
            admin=admin,
            partitions=partitions,
            metrics=metrics,
            tracer=tracer,
        )
        return _Membership(clients, loop)

    # Handed over by pop(): a name here would keep the first membership (its loop and its
    # librdkafka handles) alive through every later one.
    members = [join(clients)]
    del clients
    current = _Current(members[0].loop)
    probes = (
        start_probe_server(
            settings.http_port, current, metrics.registry, stale_after_s=settings.liveness_timeout_s
        )
        if settings.http_port
        else None
    )
    watchdog = LoopWatchdog(
        lambda: current.heartbeat, settings.liveness_timeout_s, EXIT_FATAL
    ).start()

    def joined(new: _Membership) -> None:
        metrics.rejoins.inc()
        current.loop = new.loop

    budget = WindowBudget(settings.max_rejoins, settings.rejoin_window_s)
    settle_heap()
    error: str | None = None
    try:
        with _stop_on_signals() if stop is None else nullcontext(stop) as stopping:
            error = run_rejoining(
                members.pop(),
                lambda: join(_Clients.build(settings)),
                stopping,
                budget,
                on_join=joined,
            )
    finally:
        watchdog.stop()  # the clients are closed (run_rejoining closes each membership)
        try:
            if probes is not None:
                probes.shutdown()
        finally:
            store.close()
            if tracer is not None:
                tracer.shutdown()  # exports the spans still buffered
    code = 0 if error is None else EXIT_FATAL
    if error is not None:
        _log.error("fatal error; exiting for a restart", error=error)
    _log.info("orchestrator stopped", exit_code=code)
    return code
