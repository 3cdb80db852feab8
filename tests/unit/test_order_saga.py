"""The example order saga, told as given/when/then stories with the authors' harness."""

from __future__ import annotations

from orchestrator.core import Action, SagaStatus, SendCommand
from orchestrator.testing.harness import Answer, Fail, SagaScenario, Silence, Succeed
from sagas.order import (
    OrderItem,
    OrderPlaced,
    OrderSaga,
    OrderShipped,
    PaymentCharged,
    StockReserved,
)

DO, UNDO = Action.DO, Action.UNDO

ORDER = OrderPlaced(
    order_id="o-7",
    customer_id="c-1",
    items=[OrderItem(sku="book", quantity=2)],
    amount_cents=4_200,
    address="1 Kafka Way",
)


def scenario() -> SagaScenario:  # type: ignore[type-arg]
    s = SagaScenario(OrderSaga, start_ms=1_000)
    s.trigger(ORDER)
    return s


def test_happy_path_completes_with_every_reply_merged() -> None:
    s = scenario()
    s.succeed(StockReserved(reservation_id="r-1"))
    s.succeed(PaymentCharged(payment_id="p-1"))
    s.succeed(OrderShipped(tracking_number="t-1"))
    assert s.status is SagaStatus.COMPLETED
    assert (s.data.reservation_id, s.data.payment_id, s.data.tracking_number) == (
        "r-1",
        "p-1",
        "t-1",
    )
    assert s.sent() == [("reserve_stock", DO, 1), ("charge_payment", DO, 1), ("ship_order", DO, 1)]


def test_a_declined_card_releases_the_stock_and_is_not_retried() -> None:
    s = scenario()
    s.succeed(StockReserved(reservation_id="r-1"))
    s.fail("CardDeclined", retryable=True)  # listed as non-retryable in the saga
    assert s.status is SagaStatus.COMPENSATING
    release = s.commands[-1]
    assert (release.step, release.action, release.command_type) == (
        "reserve_stock",
        UNDO,
        "ReleaseStock",
    )
    assert b'"reservation_id":"r-1"' in release.payload
    s.succeed()
    assert s.state is not None
    assert s.state.status is SagaStatus.COMPENSATED


def test_a_failed_shipment_refunds_then_releases_in_reverse_order() -> None:
    s = scenario()

    def participants(cmd: SendCommand) -> Answer:
        if cmd.action is UNDO:
            return Succeed()
        answers: dict[str, Answer] = {
            "reserve_stock": Succeed(StockReserved(reservation_id="r-1")),
            "charge_payment": Succeed(PaymentCharged(payment_id="p-1")),
            "ship_order": Fail("AddressUnknown"),
        }
        return answers[cmd.step]

    s.run(participants)
    assert s.status is SagaStatus.COMPENSATED
    assert s.sent()[-2:] == [("charge_payment", UNDO, 1), ("reserve_stock", UNDO, 1)]


def test_a_silent_inventory_is_retried_with_backoff_then_released_anyway() -> None:
    s = scenario()
    s.run(lambda cmd: Succeed() if cmd.action is UNDO else Silence())
    assert s.status is SagaStatus.COMPENSATED
    assert s.sent() == [
        ("reserve_stock", DO, 1),
        ("reserve_stock", DO, 2),
        ("reserve_stock", DO, 3),
        ("reserve_stock", UNDO, 1),  # in doubt: it may have reserved, so release
    ]
    # 5 s timeout, 200 ms backoff, 5 s, 400 ms, 5 s: the release goes out at t0 + 15.6 s.
    assert s.now_ms == 1_000 + 3 * 5_000 + 200 + 400


def test_a_refund_that_keeps_failing_parks_the_saga_as_failed() -> None:
    s = scenario()

    def participants(cmd: SendCommand) -> Answer:
        if cmd.step == "charge_payment" and cmd.action is UNDO:
            return Fail("GatewayDown", retryable=True)
        if cmd.step == "ship_order":
            return Fail("AddressUnknown")
        return Succeed(
            {
                "reserve_stock": StockReserved(reservation_id="r"),
                "charge_payment": PaymentCharged(payment_id="p"),
            }.get(cmd.step)
        )

    s.run(participants)
    assert s.status is SagaStatus.FAILED
    assert s.sent().count(("charge_payment", UNDO, 10)) == 1  # its policy allows 10 attempts
    assert ("reserve_stock", UNDO, 1) not in s.sent()
    assert s.state is not None
    assert s.state.failure is not None
    assert s.state.failure.error_type == "GatewayDown"


def test_an_operator_resumes_the_parked_refund_once_the_gateway_is_fixed() -> None:
    s = scenario()
    gateway_up = False

    def participants(cmd: SendCommand) -> Answer:
        if cmd.step == "charge_payment" and cmd.action is UNDO and not gateway_up:
            return Fail("GatewayDown", retryable=True)
        if cmd.step == "ship_order":
            return Fail("AddressUnknown")
        return Succeed(
            {
                "reserve_stock": StockReserved(reservation_id="r"),
                "charge_payment": PaymentCharged(payment_id="p"),
            }.get(cmd.step)
        )

    s.run(participants)
    assert s.status is SagaStatus.FAILED
    gateway_up = True
    resumed = s.resume(by="alice", reason="gateway back")
    assert resumed.state is not None
    assert resumed.state.status is SagaStatus.COMPENSATING
    s.run(participants)
    assert s.state is not None
    assert s.state.status.value == "COMPENSATED"
    assert s.sent()[-2:] == [("charge_payment", UNDO, 11), ("reserve_stock", UNDO, 1)]


def test_an_operator_cancels_an_order_waiting_on_a_silent_payment() -> None:
    s = scenario()
    s.succeed(StockReserved(reservation_id="r-1"))  # now charging; the gateway says nothing
    s.time_passes(1_000)
    cancelled = s.cancel(by="bob", reason="customer called")
    assert cancelled.state is not None
    assert cancelled.state.status is SagaStatus.COMPENSATING
    s.succeed()  # the refund (of a charge that may or may not have happened)
    s.succeed()  # the release
    assert s.status is SagaStatus.COMPENSATED
    assert s.sent() == [
        ("reserve_stock", DO, 1),
        ("charge_payment", DO, 1),
        ("charge_payment", UNDO, 1),
        ("reserve_stock", UNDO, 1),
    ]
    assert s.state is not None
    assert s.state.failure is not None
    assert s.state.failure.message == "cancelled by bob: customer called"


def test_cancel_at_the_shipping_pivot_is_refused_and_the_order_ships() -> None:
    s = scenario()
    s.succeed(StockReserved(reservation_id="r-1"))
    s.succeed(PaymentCharged(payment_id="p-1"))
    refused = s.cancel(reason="too late")
    assert refused.ignored is not None
    s.succeed(OrderShipped(tracking_number="t-1"))
    assert s.status is SagaStatus.COMPLETED
