"""The sagas this deployment runs: an explicit list, nothing registers itself on import."""

from __future__ import annotations

from sagas.order import OrderSaga

__all__ = ["SAGAS", "OrderSaga"]

SAGAS = (OrderSaga,)
