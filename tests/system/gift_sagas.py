"""The saga list of a *newer* release: the order saga plus a ``gift`` saga type.

The ops tests run replicas on ``sagas`` first (which do not know ``gift``: its starts are
dead-lettered as ``unknown-saga-type``), then deploy this list and recover the gifts. The gift
saga reuses the example participants' inventory and shipping commands, so nothing else changes.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from orchestrator.dsl import Compensation, Saga, Step, Trigger
from sagas.order import (
    OrderItem,
    OrderSaga,
    OrderShipped,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReserved,
)

__all__ = ["SAGAS", "GiftData", "GiftOrdered", "GiftSaga"]


class GiftOrdered(BaseModel):
    order_id: str
    items: list[OrderItem]
    address: str


class GiftData(BaseModel):
    order_id: str
    items: list[OrderItem]
    address: str
    reservation_id: str | None = None
    tracking_number: str | None = None


def _reserve(d: GiftData) -> ReserveStock:
    return ReserveStock(order_id=d.order_id, items=d.items)


def _reserved(d: GiftData, r: StockReserved) -> GiftData:
    return d.model_copy(update={"reservation_id": r.reservation_id})


def _release(d: GiftData) -> ReleaseStock:
    return ReleaseStock(order_id=d.order_id, reservation_id=d.reservation_id)


def _ship(d: GiftData) -> ShipOrder:
    return ShipOrder(order_id=d.order_id, items=d.items, address=d.address)


def _shipped(d: GiftData, r: OrderShipped) -> GiftData:
    return d.model_copy(update={"tracking_number": r.tracking_number})


class GiftSaga(Saga[GiftData]):
    """Gift ordered -> stock reserved -> shipped (pivot)."""

    name = "gift"
    trigger = Trigger(topic="gifts", event=GiftOrdered)
    data = GiftData

    @staticmethod
    def saga_id(event: GiftOrdered) -> str:
        return f"gift/{event.order_id}"

    @staticmethod
    def start(event: GiftOrdered) -> GiftData:
        return GiftData(**event.model_dump())

    reserve_stock = Step(
        topic="inventory.commands",
        command=ReserveStock,
        build=_reserve,
        reply=StockReserved,
        on_success=_reserved,
        compensation=Compensation(command=ReleaseStock, build=_release),
        timeout=timedelta(seconds=5),
    )
    ship_gift = Step(
        topic="shipping.commands",
        command=ShipOrder,
        build=_ship,
        reply=OrderShipped,
        on_success=_shipped,
        pivot=True,
        timeout=timedelta(seconds=5),
    )


SAGAS = (OrderSaga, GiftSaga)
