"""Admission control: stop taking new sagas while this replica's inbox backlog is deep.

Without it a burst of triggers (``ksaga bench`` publishes N at once; a real order service does
after an outage) starts every saga at once. The replies to their first commands then queue in
the inbox behind the rest of the burst, the steps' timeouts come due before their replies are
folded, and the replica spends its time firing timers that turn out stale and retrying commands
the participants already answered: the more it is behind, the more work it makes for itself.

The gate holds the *trigger* partitions instead (``Consumer.pause``: the triggers wait in their
topic, which is what a log is for) while the inbox partitions this replica folds hold more than
``high`` unfolded records, and lets them go again once the backlog is down to ``low``. Replies,
timers and signals are never held, so sagas already running always finish; only new ones wait.
The backlog is measured from the client's memory (cached high watermark minus position), so the
check costs no broker round trip. It is local: a replica that owns trigger partitions but few
inbox partitions sees little backlog, so it bounds the load per replica, not globally.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

__all__ = ["TriggerGate", "cached_lags"]


class TriggerGate:
    """Closed while the backlog is above ``high`` until it falls to ``low`` (hysteresis).

    ``high == 0`` disables the gate. Pure: :meth:`update` says whether to pause or resume.
    """

    def __init__(self, high: int, low: int | None = None) -> None:
        if high < 0:
            raise ValueError("high must be >= 0 (0 disables the gate)")
        self.high = high
        self.low = high // 2 if low is None else low
        if not 0 <= self.low <= high:
            raise ValueError(f"low must be within 0..high, got {self.low} (high {high})")
        self.closed = False

    def update(self, backlog: int) -> bool | None:
        """The new state when it changes (True: closed, False: open), else None."""
        if self.high == 0:
            return None
        if not self.closed and backlog > self.high:
            self.closed = True
            return True
        if self.closed and backlog <= self.low:
            self.closed = False
            return False
        return None


def cached_lags(consumer: Consumer, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """Records past this consumer's position in each of ``partitions``: client memory only.

    librdkafka refreshes the cached high watermark with every fetch response and ``position``
    is local, so this costs no broker round trip. A partition not consumed from yet (no
    position) or whose watermark is not cached yet is left out.
    """
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if not tps:
        return {}
    try:
        positions = consumer.position(tps)
    except KafkaException:
        return {}
    lags: dict[int, int] = {}
    for tp in positions:
        if tp.offset < 0:
            continue
        try:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
        except KafkaException:
            continue
        if high >= 0:
            lags[tp.partition] = max(0, high - tp.offset)
    return lags
