"""The example order saga: reserve stock, charge the payment, ship the order.

Stock and payment are compensable (release the reservation, refund the charge); shipping is the
pivot: once the parcel has left, the order is not rolled back. It is the saga the demo, the
tests and the benchmark run.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from orchestrator.dsl import Compensation, RetryPolicy, Saga, Step, Trigger

__all__ = [
    "ChargePayment",
    "OrderData",
    "OrderItem",
    "OrderPlaced",
    "OrderSaga",
    "OrderShipped",
    "PaymentCharged",
    "RefundPayment",
    "ReleaseStock",
    "ReserveStock",
    "ShipOrder",
    "StockReserved",
]


class OrderItem(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class OrderPlaced(BaseModel):
    """The trigger, published by the order service to ``orders``."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    amount_cents: int = Field(ge=0)
    address: str


class OrderData(BaseModel):
    """What the saga knows, growing as steps succeed."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    amount_cents: int
    address: str
    reservation_id: str | None = None
    payment_id: str | None = None
    tracking_number: str | None = None


class ReserveStock(BaseModel):
    order_id: str
    items: list[OrderItem]


class StockReserved(BaseModel):
    reservation_id: str


class ReleaseStock(BaseModel):
    order_id: str
    reservation_id: str | None


class ChargePayment(BaseModel):
    order_id: str
    customer_id: str
    amount_cents: int


class PaymentCharged(BaseModel):
    payment_id: str


class RefundPayment(BaseModel):
    order_id: str
    payment_id: str | None
    amount_cents: int


class ShipOrder(BaseModel):
    order_id: str
    items: list[OrderItem]
    address: str


class OrderShipped(BaseModel):
    tracking_number: str


def _reserve(d: OrderData) -> ReserveStock:
    return ReserveStock(order_id=d.order_id, items=d.items)


def _reserved(d: OrderData, r: StockReserved) -> OrderData:
    return d.model_copy(update={"reservation_id": r.reservation_id})


def _release(d: OrderData) -> ReleaseStock:
    # reservation_id is None when the reservation timed out and its outcome is unknown: the
    # inventory service releases by order id (it de-duplicates by idempotency key anyway).
    return ReleaseStock(order_id=d.order_id, reservation_id=d.reservation_id)


def _charge(d: OrderData) -> ChargePayment:
    return ChargePayment(
        order_id=d.order_id, customer_id=d.customer_id, amount_cents=d.amount_cents
    )


def _charged(d: OrderData, r: PaymentCharged) -> OrderData:
    return d.model_copy(update={"payment_id": r.payment_id})


def _refund(d: OrderData) -> RefundPayment:
    return RefundPayment(order_id=d.order_id, payment_id=d.payment_id, amount_cents=d.amount_cents)


def _ship(d: OrderData) -> ShipOrder:
    return ShipOrder(order_id=d.order_id, items=d.items, address=d.address)


def _shipped(d: OrderData, r: OrderShipped) -> OrderData:
    return d.model_copy(update={"tracking_number": r.tracking_number})


_QUICK_RETRY = RetryPolicy(
    initial_interval_ms=200,
    backoff_coefficient=2.0,
    maximum_interval_ms=2_000,
    maximum_attempts=3,
    non_retryable_error_types=("InsufficientStock", "CardDeclined"),
)
_UNDO_RETRY = RetryPolicy(initial_interval_ms=200, maximum_interval_ms=5_000, maximum_attempts=10)


class OrderSaga(Saga[OrderData]):
    """Order placed -> stock reserved -> payment charged -> order shipped (pivot)."""

    name = "order"
    trigger = Trigger(topic="orders", event=OrderPlaced)
    data = OrderData

    @staticmethod
    def saga_id(event: OrderPlaced) -> str:
        return f"order/{event.order_id}"

    @staticmethod
    def start(event: OrderPlaced) -> OrderData:
        return OrderData(**event.model_dump())

    reserve_stock = Step(
        topic="inventory.commands",
        command=ReserveStock,
        build=_reserve,
        reply=StockReserved,
        on_success=_reserved,
        compensation=Compensation(
            command=ReleaseStock, build=_release, retry=_UNDO_RETRY, timeout=timedelta(seconds=5)
        ),
        retry=_QUICK_RETRY,
        timeout=timedelta(seconds=5),
    )
    charge_payment = Step(
        topic="payments.commands",
        command=ChargePayment,
        build=_charge,
        reply=PaymentCharged,
        on_success=_charged,
        compensation=Compensation(
            command=RefundPayment, build=_refund, retry=_UNDO_RETRY, timeout=timedelta(seconds=5)
        ),
        retry=_QUICK_RETRY,
        timeout=timedelta(seconds=5),
    )
    ship_order = Step(
        topic="shipping.commands",
        command=ShipOrder,
        build=_ship,
        reply=OrderShipped,
        on_success=_shipped,
        pivot=True,
        retry=_QUICK_RETRY,
        timeout=timedelta(seconds=10),
    )
