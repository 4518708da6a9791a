"""paynotify inside a Starlette app: one Mount serves every provider and account.

    PAYNOTIFY_CONFIG=paynotify.toml uvicorn examples.starlette_app:app

Alipay then POSTs to https://your.host/payments/shop-alipay/notify, and buyers return to
https://your.host/payments/shop-alipay/return.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from paynotify import Notifier, PaymentResult

notifier = Notifier.from_config(os.environ.get("PAYNOTIFY_CONFIG", "paynotify.toml"))
ORDERS: dict[str, str] = {}  # stands in for the application's database


@notifier.subscribe(kind="payment", status="succeeded")
async def mark_paid(result: PaymentResult) -> None:
    # result.event_id is stable across the provider's retries: use it as an idempotency key.
    ORDERS[result.order_id] = f"paid {result.amount} {result.currency}"


@notifier.subscribe(kind="refund")
def record_refund(result: PaymentResult) -> None:  # sync subscribers run in a worker thread
    ORDERS[result.order_id] = f"refund {result.status.value} {result.refund_amount}"


async def order(request: Request) -> JSONResponse:
    order_id = request.path_params["order_id"]
    return JSONResponse({"order_id": order_id, "state": ORDERS.get(order_id, "unpaid")})


app = Starlette(
    routes=[Route("/orders/{order_id}", order), Mount("/payments", app=notifier.asgi())],
    lifespan=notifier.lifespan,  # opens the store at start-up, closes it at shutdown
)
