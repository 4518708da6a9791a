"""A Notifier whose store holds one event in every state the console shows, made the way they are
made in service: a real Alipay notification refused by a mistyped seller_id (rejected), one whose
subscriber failed until its queued attempts ran out (dead), delivered ones, an unhandled one, and
one with an order id that is an HTML injection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal
from unittest import mock

from paynotify_alipay.testing import SELLER_ID, generate_key, make_notify, public_key_pem

from paynotify import (
    EventState,
    InboundRequest,
    Kind,
    Notifier,
    PaymentResult,
    Status,
    UnhandledEvent,
    make_event_id,
)

APP_ID = "2021004100000000"
TYPO = "2088000000000009"  # one digit off the SELLER_ID the notifications carry
KEY = generate_key()
USER, PASSWORD = "operator", "correct horse battery staple"
INJECTION = '<script>window.__pwned = 1</script>"><img src=x>'


def alipay_settings(seller_id: str) -> dict[str, str]:
    return {"app_id": APP_ID, "alipay_public_key": public_key_pem(KEY), "seller_id": seller_id}


def notify(order_id: str) -> InboundRequest:
    body = make_notify(KEY, app_id=APP_ID, out_trade_no=order_id)
    return InboundRequest("POST", "notify", {"content-type": "application/x-www-form-urlencoded"}, b"", body)


def payment(order_id: str, account: str = "shop", provider: str = "alipay") -> PaymentResult:
    return PaymentResult(
        provider=provider,
        account=account,
        kind=Kind.PAYMENT,
        status=Status.SUCCEEDED,
        provider_status="TRADE_SUCCESS",
        order_id=order_id,
        event_id=make_event_id(account, Kind.PAYMENT, order_id, None, "TRADE_SUCCESS"),
        raw={"out_trade_no": order_id, "note": INJECTION},
    )


@dataclass
class Shop:
    notifier: Notifier
    delivered: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    """name -> event id: rejected, dead, done, unhandled, injected."""


async def shop(*, done: int = 3, delivery: Literal["inline", "queued"] = "queued") -> Shop:
    """The notifier with its events recorded (on the memory store). Queued delivery by default, so
    that Requeue is offered (under inline delivery it is not: nothing would take the event)."""
    n = Notifier("memory://", delivery=delivery)
    n.add_account("shop", "alipay", **alipay_settings(TYPO))
    s = Shop(n)
    n.subscribe(lambda r: s.delivered.append(r.order_id), name="ship")

    assert (await n.handle("shop", notify("order-rejected"))).body == b"success"
    [rejected] = await n.store.find(states=[EventState.REJECTED])
    s.ids["rejected"] = rejected.event_id

    dead = payment("order-dead")
    await n.store.enqueue(dead)
    [lease] = await n.store.acquire(limit=1, lease_seconds=60)
    await n.store.dead_letter(dead.event_id, lease.token, error="ConnectionError: the warehouse API is down")
    s.ids["dead"] = dead.event_id

    for i in range(done):
        r = payment(f"order-{i:03d}", account="shop" if i % 2 else "app", provider="alipay")
        claim = await n.store.claim(r, lease_seconds=60)
        assert claim.token is not None
        await n.store.complete(r.event_id, claim.token, done=["ship"])
    s.ids["done"] = r.event_id

    event = UnhandledEvent(provider="wechatpay-v3", account="mini", event_type="PAYSCORE.USER_CONFIRM",
                           event_id="unhandled-1", raw={"out_order_no": "score-1"})  # fmt: skip
    await n.store.record(event, EventState.UNHANDLED, reason=None)
    s.ids["unhandled"] = event.event_id

    injected = payment(INJECTION)
    await n.store.enqueue(injected)
    s.ids["injected"] = injected.event_id
    return s


def fix(s: Shop) -> None:
    s.notifier.update_account("shop", "alipay", **alipay_settings(SELLER_ID))


async def history(s: Shop, hours: int = 30) -> int:
    """Delivered payments spread over the last `hours` hours (the memory store's clock set back for
    each), so the overview's chart has a shape; returns how many."""
    made, t = 0, time.time()
    for h in range(hours):
        for i in range(2 + (h * 7) % 9):
            at = t - h * 3600 - i * 97 - 60
            r = payment(f"past-{h:02d}-{i}", account=("shop", "app", "pos")[i % 3])
            with mock.patch("paynotify._stores.memory.now", lambda at=at: at):
                claim = await s.notifier.store.claim(r, lease_seconds=60)
                assert claim.token is not None
                await s.notifier.store.complete(r.event_id, claim.token, done=["ship"])
            made += 1
    return made
