"""Example participants for the order saga: inventory, payments and shipping in one process.

Their one job is to answer the order saga's five commands with *predictable* misbehaviour, so a
demo, a test or a benchmark knows each saga's outcome in advance (:func:`expected_outcome`).
Every choice is a pure function of ``(Behaviour.seed, order id)`` through SHA-256: no global
random, the same order always gets the same treatment, in any process, on any attempt.

The rules (the retry policy of ``sagas.order`` allows 3 attempts per step, 5 s timeouts):

* ``decline_rate``: payments raises ``NonRetryableError("CardDeclined")`` on every attempt; the
  saga releases the stock and ends COMPENSATED.
* ``silent_rate``: inventory does not answer attempt 1 of ReserveStock (``NoReply``) and answers
  later attempts; the orchestrator's timeout fires and retries: COMPLETED, only later.
* ``flaky_rate``: payments raises ``RetryableError("GatewayTimeout")`` on attempt 1 only:
  COMPLETED after one retry (unless the order is also declined: decline wins).
* ``slow_rate``: inventory takes ``slow_ms`` to answer attempt 1 of ReserveStock (a slow
  reply; it blocks this participant's loop meanwhile, as a slow synchronous call would).
* ``duplicate_rate``: the runtime produces the reply to a (saga, step, action) twice (a
  duplicate delivery; the orchestrator must fold it once). Outcomes do not change.
* ``hung_rate``: payments never answers ChargePayment (a hung gateway): after three timeouts
  the charge is in doubt and undone with the reservation: COMPENSATED (or sooner, when an
  operator cancels the saga).
* ``undo_failing_rate``: ReleaseStock and RefundPayment fail with a ``RetryableError`` on every
  attempt (their store is down): the compensation gives up, FAILED until an operator fixes the
  participant and resumes the saga.
* ``shipping_lost_rate``: shipping never answers ShipOrder: the pivot's outcome is unknown,
  FAILED until an operator resumes the saga.
* Otherwise UNDO handlers (ReleaseStock, RefundPayment) and shipping always succeed.
* ``latency_ms``: every handler sleeps that long first (a slow downstream system).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from connectors.errors import NonRetryableError, NoReply, RetryableError
from connectors.participant import CommandInfo, Participant, ParticipantConfig
from sagas.order import (
    ChargePayment,
    OrderShipped,
    PaymentCharged,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReserved,
)

__all__ = [
    "ORDER_COMMAND_TOPICS",
    "Behaviour",
    "OrderServices",
    "build_participant",
    "expected_outcome",
]

ORDER_COMMAND_TOPICS = ("inventory.commands", "payments.commands", "shipping.commands")
"""The command topics of ``sagas.order.OrderSaga`` (reserve, charge, ship)."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How often the example participants misbehave; each rate is a share of order ids."""

    seed: int = 0
    decline_rate: float = 0.1
    silent_rate: float = 0.0
    flaky_rate: float = 0.0
    latency_ms: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 400.0
    duplicate_rate: float = 0.0
    hung_rate: float = 0.0
    undo_failing_rate: float = 0.0
    shipping_lost_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "decline_rate",
            "silent_rate",
            "flaky_rate",
            "slow_rate",
            "duplicate_rate",
            "hung_rate",
            "undo_failing_rate",
            "shipping_lost_rate",
        ):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        for name in ("latency_ms", "slow_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def _draw(self, aspect: str, order_id: str) -> float:
        """A uniform number in [0, 1) fixed by (seed, aspect, order id)."""
        digest = hashlib.sha256(f"{self.seed}\x00{aspect}\x00{order_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def declines(self, order_id: str) -> bool:
        return self._draw("decline", order_id) < self.decline_rate

    def silent(self, order_id: str) -> bool:
        return self._draw("silent", order_id) < self.silent_rate

    def flaky(self, order_id: str) -> bool:
        return self._draw("flaky", order_id) < self.flaky_rate

    def slow(self, order_id: str) -> bool:
        return self._draw("slow", order_id) < self.slow_rate

    def duplicates_reply(self, info: CommandInfo) -> bool:
        """Whether the reply to this command is delivered twice (the same for every attempt)."""
        where = f"{info.saga_id}|{info.step}|{info.action}"
        return self._draw("duplicate", where) < self.duplicate_rate

    def hung(self, order_id: str) -> bool:
        return self._draw("hung", order_id) < self.hung_rate

    def undo_fails(self, order_id: str) -> bool:
        return self._draw("undo-fails", order_id) < self.undo_failing_rate

    def shipping_lost(self, order_id: str) -> bool:
        return self._draw("shipping-lost", order_id) < self.shipping_lost_rate


def expected_outcome(order_id: str, behaviour: Behaviour) -> str:
    """The order saga's terminal status for ``order_id`` without an operator stepping in:
    "COMPLETED", "COMPENSATED" or (with the undo-failing or shipping-lost switches) "FAILED"."""
    b = behaviour
    if b.hung(order_id) or b.declines(order_id):
        return "FAILED" if b.undo_fails(order_id) else "COMPENSATED"
    return "FAILED" if b.shipping_lost(order_id) else "COMPLETED"


class OrderServices:
    """The five handlers (shipping is the pivot: it has no undo); plain methods, callable
    without Kafka."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def _work(self) -> None:
        if self.behaviour.latency_ms > 0:
            time.sleep(self.behaviour.latency_ms / 1000)

    def reserve_stock(self, cmd: CommandInfo, payload: ReserveStock) -> StockReserved | NoReply:
        self._work()
        if cmd.attempt == 1 and self.behaviour.silent(payload.order_id):
            return NoReply()
        if cmd.attempt == 1 and self.behaviour.slow(payload.order_id):
            time.sleep(self.behaviour.slow_ms / 1000)
        return StockReserved(reservation_id=f"res-{payload.order_id}")

    def release_stock(self, cmd: CommandInfo, payload: ReleaseStock) -> None:
        self._work()
        if self.behaviour.undo_fails(payload.order_id):
            raise RetryableError("InventoryUnavailable", "the inventory store is down")

    def charge_payment(self, cmd: CommandInfo, payload: ChargePayment) -> PaymentCharged | NoReply:
        self._work()
        if self.behaviour.hung(payload.order_id):
            return NoReply()
        if self.behaviour.declines(payload.order_id):
            raise NonRetryableError("CardDeclined", f"card of {payload.customer_id} declined")
        if cmd.attempt == 1 and self.behaviour.flaky(payload.order_id):
            raise RetryableError("GatewayTimeout", "the payment gateway did not answer")
        return PaymentCharged(payment_id=f"pay-{payload.order_id}")

    def refund_payment(self, cmd: CommandInfo, payload: RefundPayment) -> None:
        self._work()
        if self.behaviour.undo_fails(payload.order_id):
            raise RetryableError("RefundsUnavailable", "the refund service is down")

    def ship_order(self, cmd: CommandInfo, payload: ShipOrder) -> OrderShipped | NoReply:
        self._work()
        if self.behaviour.shipping_lost(payload.order_id):
            return NoReply()
        return OrderShipped(tracking_number=f"trk-{payload.order_id}")


def build_participant(
    config: ParticipantConfig,
    behaviour: Behaviour,
    *,
    on_stored: Callable[[CommandInfo], None] | None = None,
    tracer: Tracer | None = None,
) -> Participant:
    """One participant answering all five order-saga commands on ``config.topics``.

    ``config.topics`` should be :data:`ORDER_COMMAND_TOPICS` (or the test's own names);
    ``on_stored`` is the runtime's crash hook and ``tracer``, when given, makes a span per command
    (see :class:`Participant`).
    """
    services = OrderServices(behaviour)
    participant = Participant(
        config,
        on_stored=on_stored,
        duplicate_reply=behaviour.duplicates_reply if behaviour.duplicate_rate > 0 else None,
        tracer=tracer,
    )
    participant.register(ReserveStock, services.reserve_stock)
    participant.register(ReleaseStock, services.release_stock)
    participant.register(ChargePayment, services.charge_payment)
    participant.register(RefundPayment, services.refund_payment)
    participant.register(ShipOrder, services.ship_order)
    return participant
