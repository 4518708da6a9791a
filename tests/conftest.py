"""Shared fixtures. Core tests use the ExamplePay plugin (examples/plugin): a real HMAC-signed
provider, so the pipeline is tested with genuine verification, not a mock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from paynotify_examplepay import sign

from paynotify import Notifier, PaymentResult

SECRET = "example-secret-for-tests"
APP_ID = "app-1"

ExampleNotify = Callable[..., tuple[dict[str, str], bytes]]


def example_notify(
    order_id: str = "order-1",
    *,
    txn_id: str | None = None,
    amount: str = "88.88",
    status: str = "paid",
    app_id: str = APP_ID,
    secret: str = SECRET,
) -> tuple[dict[str, str], bytes]:
    """A genuinely signed ExamplePay notification: (headers, body)."""
    body = json.dumps(
        {
            "order_id": order_id,
            "txn_id": txn_id or f"txn-{order_id}",
            "amount": amount,
            "status": status,
            "app_id": app_id,
        }
    ).encode()
    return {"x-signature": sign(body, secret), "content-type": "application/json"}, body


@pytest.fixture
def notifier() -> Notifier:
    n = Notifier("memory://")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    return n


@pytest.fixture
def delivered(notifier: Notifier) -> list[PaymentResult]:
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    return seen


@pytest.fixture
async def client(notifier: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as c:
        yield c
    await notifier.aclose()


def post_example(
    client: httpx.AsyncClient, notify: tuple[dict[str, str], bytes], account: str = "shop"
) -> Any:
    headers, body = notify
    return client.post(f"/{account}/notify", content=body, headers=headers)
