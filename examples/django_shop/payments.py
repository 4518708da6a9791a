# examples/django_shop/payments.py
"""The shop's Notifier: accounts from a TOML file, and what to do when an order is paid."""

from __future__ import annotations

import os

from paynotify import Notifier, PaymentResult

notifier = Notifier.from_config(os.environ.get("PAYNOTIFY_CONFIG", "paynotify.toml"))
PAID: dict[str, str] = {}  # stands in for an Order model


@notifier.subscribe(kind="payment", status="succeeded")
def mark_paid(result: PaymentResult) -> None:  # sync subscribers run in a worker thread
    # With models: Order.objects.filter(number=result.order_id).update(paid=True), keyed so that a
    # retry (same result.event_id) changes nothing.
    PAID[result.order_id] = str(result.amount)
