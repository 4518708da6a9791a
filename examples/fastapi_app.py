# examples/fastapi_app.py
"""paynotify inside a FastAPI app.

PAYNOTIFY_CONFIG=paynotify.toml uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from paynotify import Notifier, PaymentResult

notifier = Notifier.from_config(os.environ.get("PAYNOTIFY_CONFIG", "paynotify.toml"))
PAID: dict[str, str] = {}


@notifier.subscribe(kind="payment", status="succeeded")
async def mark_paid(result: PaymentResult) -> None:
    PAID[result.order_id] = str(result.amount)


app = FastAPI(lifespan=notifier.lifespan)
app.mount("/payments", notifier.asgi())


@app.get("/orders/{order_id}")
async def order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "paid": PAID.get(order_id, "no")}
