"""``ksaga participants``: run the example order-saga participants until SIGTERM or SIGINT.

Wiring only: options -> :class:`~connectors.participant.ParticipantConfig` and
:class:`~connectors.order_participants.Behaviour`, then the participant's loop. A signal sets
the stop event; the loop finishes and commits its batch, leaves the group and exits 0.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from connectors.order_participants import ORDER_COMMAND_TOPICS, Behaviour, build_participant
from connectors.participant import ParticipantConfig
from orchestrator.crashpoints import crash_configured, crash_point
from orchestrator.kafka_config import load_kafka_client_config
from orchestrator.logs import LOG_FORMATS, configure_logging
from orchestrator.tracing import EXPORTERS, span_processor, tracer_provider

__all__ = ["participants_command"]

_SHARE = click.FloatRange(0, 1)
_MS = click.FloatRange(min=0)

_BEHAVIOUR_OPTIONS: tuple[tuple[str, click.FloatRange, float, str | None], ...] = (
    ("--decline-rate", _SHARE, 0.1, None),
    ("--silent-rate", _SHARE, 0.0, None),
    ("--flaky-rate", _SHARE, 0.0, None),
    ("--latency-ms", _MS, 0.0, None),
    (
        "--slow-rate",
        _SHARE,
        0.0,
        "Share of orders whose first ReserveStock is answered only after --slow-ms.",
    ),
    ("--slow-ms", _MS, 400.0, None),
    (
        "--duplicate-rate",
        _SHARE,
        0.0,
        "Share of (saga, step, action) whose reply is produced twice (fault injection).",
    ),
    ("--hung-rate", _SHARE, 0.0, "Share of orders whose ChargePayment is never answered."),
    (
        "--undo-failing-rate",
        _SHARE,
        0.0,
        "Share of orders whose ReleaseStock/RefundPayment always fail (retryably).",
    ),
    (
        "--shipping-lost-rate",
        _SHARE,
        0.0,
        "Share of orders whose ShipOrder is never answered (the pivot in doubt).",
    ),
)
"""One row per misbehaviour of :class:`Behaviour` (option, range, default, help), in --help order.

Each option's value reaches the command as a keyword named after the matching ``Behaviour``
field, so a new misbehaviour is one row here and one field there.
"""

_Command = TypeVar("_Command", bound=Callable[..., object])


def _behaviour_options(command: _Command) -> _Command:
    """Attach the options of :data:`_BEHAVIOUR_OPTIONS` (applied last row first, as click lists
    the decorator nearest the function last)."""
    for name, range_, default, help_ in reversed(_BEHAVIOUR_OPTIONS):
        command = click.option(name, type=range_, default=default, show_default=True, help=help_)(
            command
        )
    return command


@click.command("participants")
@click.option("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,...].")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".ksaga/participants"),
    show_default=True,
    help="Directory of the de-duplication store (RocksDB); keep it across restarts.",
)
@click.option("--group-id", default="ksaga-participants", show_default=True)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    type=click.Choice(ORDER_COMMAND_TOPICS),
    help="Command topic to serve (repeatable; default: all three). One per principal on a"
    " cluster with ACLs.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@_behaviour_options
@click.option("--dlq-topic", default="ksaga.dlq", show_default=True)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(1_000),
    default=45_000,
    show_default=True,
    help="How soon the group notices a crashed participant and moves its partitions.",
)
@click.option(
    "--poll-timeout-ms",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="How long one consume waits to fill a batch (lower: less latency at low rates).",
)
@click.option("--log-level", envvar="KSAGA_LOG_LEVEL", default="INFO", show_default=True)
@click.option(
    "--log-format",
    envvar="KSAGA_LOG_FORMAT",
    type=click.Choice(LOG_FORMATS),
    default="json",
    show_default=True,
)
@click.option(
    "--otel-exporter",
    envvar="KSAGA_OTEL_EXPORTER",
    type=click.Choice(EXPORTERS),
    default="none",
    show_default=True,
    help="OpenTelemetry spans of command handling (console: JSON lines on stdout).",
)
def participants_command(
    *,
    bootstrap: str,
    state_dir: Path,
    group_id: str,
    topics: tuple[str, ...],
    seed: int,
    dlq_topic: str,
    session_timeout_ms: int,
    poll_timeout_ms: int,
    log_level: str,
    log_format: str,
    otel_exporter: str,
    **behaviour: float,
) -> None:
    """Run the order saga's inventory, payments and shipping participants in one process.

    ``KSAGA_CRASH_AT=after-store:<n>`` (fault tests) kills the process with SIGKILL after its
    n-th durably stored outcome, before that outcome's reply is produced.

    TLS/SASL settings come from ``KSAGA_KAFKA__*`` (or ``KSAGA_KAFKA`` JSON), as for ``ksaga
    run``.
    """
    config = ParticipantConfig(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        topics=list(topics or ORDER_COMMAND_TOPICS),
        state_dir=state_dir,
        kafka=load_kafka_client_config(),
        dlq_topic=dlq_topic,
        consumer_overrides={"session.timeout.ms": session_timeout_ms},
        poll_timeout_s=poll_timeout_ms / 1000,
    )
    configure_logging(log_level, json=log_format == "json")
    processor = span_processor(otel_exporter)
    provider = None if processor is None else tracer_provider(processor, "ksaga-participants")
    tracer = None if provider is None else provider.get_tracer("ksaga.participant")
    on_stored = (
        (lambda _info: crash_point("after-store")) if crash_configured("after-store") else None
    )
    # Keyword by keyword, the rows of _BEHAVIOUR_OPTIONS are Behaviour's fields (seed is an int).
    misbehaviour: dict[str, Any] = behaviour
    participant = build_participant(
        config, Behaviour(seed=seed, **misbehaviour), on_stored=on_stored, tracer=tracer
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        participant.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if provider is not None:
            provider.shutdown()  # exports the spans still buffered
    click.echo(f"participants stopped: {participant.counters()}")
