"""Wiring of one replica: settings -> sagas -> topics check -> store -> clients -> the loop.

No logic of its own. Exit codes: 0 after a graceful stop (SIGTERM/SIGINT: the open transaction is
finished or aborted, the group is left, RocksDB closed), 1 for a configuration error found at
start, 3 for a fatal Kafka error (fenced, or a broken transaction): the supervisor restarts us.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.heap import settle_heap
from orchestrator.kafka import new_admin, new_consumer, new_producer, new_restore_consumer
from orchestrator.logs import configure_logging
from orchestrator.loop import FatalError, Orchestrator
from orchestrator.metrics import Metrics
from orchestrator.probes import start_probe_server
from orchestrator.registry import load_registry
from orchestrator.store import STORE_FORMAT_VERSION, RocksSagaStore, StoreMeta
from orchestrator.topics import check_topics
from orchestrator.tracing import SagaTracer, span_processor
from orchestrator.watchdog import LoopWatchdog

__all__ = ["EXIT_CONFIG", "EXIT_FATAL", "configure_logging", "run_replica"]

EXIT_CONFIG = 1
EXIT_FATAL = 3
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


def run_replica(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run until ``stop`` (or SIGTERM/SIGINT); return the process exit code."""
    try:
        registry = load_registry(settings.sagas_module)
        admin = new_admin(settings)
        partitions = check_topics(
            admin, settings, {*registry.trigger_topics, *registry.command_topics}
        )
        consumer = new_consumer(settings)
        producer = new_producer(settings)
        restore_consumer = new_restore_consumer(settings)
        processor = span_processor(settings.otel_exporter)
    except ConfigError as exc:
        _log.error("configuration error", error=str(exc))
        print(f"ksaga: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    store = open_store(settings, partitions)
    orchestrator = Orchestrator(
        settings=settings,
        registry=registry,
        store=store,
        consumer=consumer,
        producer=producer,
        restore_consumer=restore_consumer,
        admin=admin,
        partitions=partitions,
        metrics=Metrics(),
        tracer=None if processor is None else SagaTracer(processor),
    )
    probes = (
        start_probe_server(
            settings.http_port,
            orchestrator,
            orchestrator.metrics.registry,
            stale_after_s=settings.liveness_timeout_s,
        )
        if settings.http_port
        else None
    )
    watchdog = LoopWatchdog(
        lambda: orchestrator.heartbeat, settings.liveness_timeout_s, EXIT_FATAL
    ).start()
    code = 0
    settle_heap()
    try:
        if stop is not None:
            orchestrator.run(stop)
        else:
            with _stop_on_signals() as signalled:
                orchestrator.run(signalled)
    except FatalError as exc:
        _log.error("fatal error; exiting for a restart", error=str(exc))
        code = EXIT_FATAL
    finally:
        watchdog.stop()
        if probes is not None:
            probes.shutdown()
        restore_consumer.close()
        consumer.close()  # leaves the group; no transaction is open between batches
        store.close()
        if orchestrator.telemetry.tracer is not None:
            orchestrator.telemetry.tracer.shutdown()  # exports the spans still buffered
    _log.info("orchestrator stopped", exit_code=code)
    return code
