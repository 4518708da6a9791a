# examples/flask_app.py
"""paynotify beside a Flask app, served by any WSGI server.

    PAYNOTIFY_CONFIG=paynotify.toml waitress-serve --listen=127.0.0.1:8000 flask_app:application

Alipay then POSTs to https://your.host/payments/shop-alipay/notify.
"""

from __future__ import annotations

import os

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from paynotify import Notifier, PaymentResult

notifier = Notifier.from_config(os.environ.get("PAYNOTIFY_CONFIG", "paynotify.toml"))
PAID: dict[str, str] = {}  # stands in for the application's database


@notifier.subscribe(kind="payment", status="succeeded")
def mark_paid(result: PaymentResult) -> None:  # sync subscribers run in a worker thread
    # result.event_id is stable across the provider's retries: use it as an idempotency key.
    PAID[result.order_id] = str(result.amount)


app = Flask(__name__)


@app.get("/orders/<order_id>")
def order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "paid": PAID.get(order_id, "no")}


# The notification route never passes through Flask: its body reaches the provider untouched.
payments = notifier.wsgi()
application = DispatcherMiddleware(app, {"/payments": payments})
