"""Prometheus metrics of one orchestrator replica (prometheus-client, a registry per instance).

A registry per instance rather than the global one, so several orchestrators in one process
(tests, the demo) do not collide; ``app`` serves it over HTTP when a port is configured.

Where the figures come from (``orchestrator.telemetry``): the saga counters, step latency and
saga duration are recorded after the transaction that folded the input commits, so a batch that
aborts and is redone counts once. A step's latency runs from its command's send (the ``now`` of
the fold that sent it, kept in the state as ``updated_ms``) to the wall clock when its reply (or
its timeout) is folded; a saga's duration from ``started_ms`` to its terminal fold. Both start
points live in ``ksaga.state``, so they survive restarts and partition moves. Lag and pending
timers are gauges sampled every few seconds by the loop.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["OUTCOMES", "Metrics"]

OUTCOMES = ("succeeded", "failed", "failed_retryable", "timed_out")
"""Values of the ``outcome`` label of ``ksaga_step_latency_seconds``: how an attempt ended."""

_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_SAGA_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.triggers = Counter("ksaga_triggers_routed", "Triggers routed to StartSaga", registry=r)
        self.started = Counter("ksaga_sagas_started", "Sagas started", ["saga_type"], registry=r)
        self.finished = Counter(
            "ksaga_sagas_finished", "Sagas finished", ["saga_type", "status"], registry=r
        )
        self.commands = Counter("ksaga_commands_sent", "Commands sent", ["action"], registry=r)
        self.ignored = Counter(
            "ksaga_inputs_ignored", "Stale/duplicate inputs", ["reason"], registry=r
        )
        self.dead_letters = Counter(
            "ksaga_dead_letters", "Records dead-lettered", ["reason"], registry=r
        )
        self.gate_closed = Counter(
            "ksaga_trigger_gate_closed",
            "Times the inbox backlog made this replica hold its trigger partitions",
            registry=r,
        )
        self.gate_state = Gauge(
            "ksaga_trigger_gate_holding", "1 while trigger partitions are held, else 0", registry=r
        )
        self.timers_fired = Counter("ksaga_timers_fired", "TimerFired records produced", registry=r)
        self.transactions = Counter(
            "ksaga_transactions_committed", "Committed transactions", registry=r
        )
        self.aborts = Counter("ksaga_transactions_aborted", "Aborted transactions", registry=r)
        self.fatal = Counter("ksaga_fatal_errors", "Fatal Kafka errors", registry=r)
        self.store_rebuilds = Counter(
            "ksaga_store_rebuilds",
            "Partitions wiped and restored because a stored state was unreadable",
            registry=r,
        )
        self.rejoins = Counter(
            "ksaga_rejoins", "Rejoins with new Kafka clients after a fatal error", registry=r
        )
        self.restored_records = Counter(
            "ksaga_restored_records", "State records read during restore", registry=r
        )
        self.commit_seconds = Histogram(
            "ksaga_commit_seconds", "commit_transaction latency", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.batch_records = Histogram(
            "ksaga_batch_records", "Input records per transaction", registry=r,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
        )  # fmt: skip
        self.restore_seconds = Histogram(
            "ksaga_restore_seconds", "Partition restore duration", registry=r
        )
        self.step_latency = Histogram(
            "ksaga_step_latency_seconds", "Command attempt: send to reply (or timeout) fold",
            ["saga_type", "step", "action", "outcome"], registry=r, buckets=_STEP_BUCKETS,
        )  # fmt: skip
        self.saga_duration = Histogram(
            "ksaga_saga_duration_seconds", "Saga start to terminal fold",
            ["saga_type", "status"], registry=r, buckets=_SAGA_BUCKETS,
        )  # fmt: skip
        self.consumer_lag = Gauge(
            "ksaga_consumer_lag", "Inbox records not yet consumed (high watermark - position)",
            ["partition"], registry=r,
        )  # fmt: skip
        self.timers_pending = Gauge(
            "ksaga_timers_pending", "Armed timers (timeouts, backoffs) of the owned partitions",
            registry=r,
        )  # fmt: skip

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample's value (tests, the demo); 0 when never observed."""
        found = self.registry.get_sample_value(name, labels or {})
        return found or 0.0
