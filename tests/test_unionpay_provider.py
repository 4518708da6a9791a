"""The UnionPay provider as paynotify sees it: registration, public names, reply bytes, the demo, the
testing helpers, and real notifications through the Notifier and its ASGI route (httpx
ASGITransport): delivered once, refusals non-200 and never dispatched, checks acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any

import httpx
import paynotify_unionpay
import pytest
from _unionpay import MER_ID, ORDER_ID, chain, notify, parse, replace_field
from paynotify_unionpay import UnionPayProvider, UnionPaySettings, testing
from paynotify_unionpay.testing import query_id

from paynotify import (
    ENTRY_POINT_GROUP,
    DeliveryFailed,
    InboundRequest,
    InFlight,
    MalformedNotification,
    MemoryStore,
    NotificationError,
    Notifier,
    PaymentResult,
    Status,
    StoreError,
    UnhandledEvent,
    VerificationError,
    registry,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_public_names_are_pinned() -> None:
    assert paynotify_unionpay.__all__ == [
        "RETURN_STATUS",
        "TEST_CN_ORG",
        "TXN_TYPES",
        "UNIONPAY_CN_ORG",
        "UnionPayProvider",
        "UnionPaySettings",
        "status_of",
    ]
    assert testing.__all__ == sorted(testing.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in testing.__all__:
        helper = getattr(testing, name)
        assert name.isupper() or helper.__doc__, f"testing.{name} has no docstring"


def test_registered_through_the_entry_point() -> None:
    [ep] = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "unionpay"]
    assert ep.value == "paynotify_unionpay:UnionPayProvider"
    provider = registry.get("unionpay")
    assert isinstance(provider, UnionPayProvider)
    assert provider.settings_model is UnionPaySettings
    assert provider.channels == {"notify", "return"}


def test_ack_is_200_ok() -> None:
    ack = UnionPayProvider().ack()
    assert (ack.status, ack.body) == (200, b"ok")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (VerificationError("x"), 401),
        (MalformedNotification("x"), 400),
        (InFlight("x"), 503),
        (DeliveryFailed("x"), 500),
        (NotificationError("x"), 500),
    ],
)
def test_nack_is_never_200(error: NotificationError, status: int) -> None:
    reply = UnionPayProvider().nack(error)
    assert (reply.status, reply.body) == (status, b"fail")


def test_demo_is_genuine_and_its_forgery_is_refused() -> None:
    demo = UnionPayProvider.demo()
    acct = Notifier("memory://").add_account("demo", "unionpay", **demo.settings)
    provider = acct.provider
    results = [
        provider.parse(InboundRequest(r.method, r.channel, dict(r.headers), r.query, r.body), acct)
        for r in demo.requests
    ]
    assert [(r.kind.value, r.source.value) for r in results if isinstance(r, PaymentResult)] == [
        ("payment", "notify"),
        ("refund", "notify"),
        ("payment", "return"),
    ]
    assert demo.forged is not None
    with pytest.raises(VerificationError):
        provider.parse(InboundRequest("POST", "notify", body=demo.forged.body), acct)


def test_helpers_make_what_unionpay_sends() -> None:
    body = notify()
    fields = dict(part.split(b"=", 1) for part in body.split(b"&"))
    assert set(fields) >= {
        b"version", b"encoding", b"signMethod", b"txnType", b"txnSubType", b"bizType", b"accessType",
        b"merId", b"orderId", b"txnTime", b"txnAmt", b"currencyCode", b"queryId", b"traceNo",
        b"traceTime", b"settleAmt", b"settleDate", b"respCode", b"respMsg", b"signPubKeyCert",
        b"signature",
    }  # fmt: skip
    assert fields[b"signPubKeyCert"].count(b"%0D%0A") >= 20  # CRLF, as UnionPay sends it
    assert fields[b"queryId"] == query_id(MER_ID, ORDER_ID).encode()


@pytest.fixture
def notifier() -> Notifier:
    n = Notifier("memory://")
    n.add_account("shop", "unionpay", mer_id=MER_ID, **chain().account_settings())
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


async def post(client: httpx.AsyncClient, body: bytes, channel: str = "notify") -> httpx.Response:
    return await client.post(f"/shop/{channel}", content=body, headers=FORM)


async def test_consume_and_refund_are_delivered_once(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    paid = notify(txn_amt="8888")
    refund = notify(
        order_id="refund20260101001", txn_type="04", txn_amt="1000", orig_qry_id=query_id(MER_ID, ORDER_ID)
    )
    for body in (paid, paid, refund, refund, paid):
        response = await post(client, body)
        assert (response.status_code, response.content) == (200, b"ok")
    assert [(r.kind.value, str(r.amount), str(r.refund_amount)) for r in delivered] == [
        ("payment", "88.88", "None"),
        ("refund", "None", "10.00"),
    ]
    assert delivered[0].is_paid


async def test_5_0_0_through_the_route(client: httpx.AsyncClient, delivered: list[PaymentResult]) -> None:
    response = await post(client, notify(version="5.0.0", encoding="gbk"))
    assert (response.status_code, response.content) == (200, b"ok")
    assert delivered[0].key_id == chain().cert_id


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (replace_field(notify(), b"txnAmt", b"1"), 401),  # amount changed after signing
        (replace_field(notify(), b"signature", None), 401),
        (notify().replace(b"%0D%0A", b"%0A"), 401),  # CRLF -> LF in signPubKeyCert
        (notify(version="5.0.0", certId="1"), 401),
        (b"", 400),
        (b"encoding=utf-8&txnAmt=%E", 400),
    ],
    ids=["forged", "unsigned", "crlf", "cert-id", "empty", "bad-escape"],
)
async def test_refusals_are_non_200_fail_and_dispatch_nothing(
    client: httpx.AsyncClient, delivered: list[PaymentResult], body: bytes, status: int
) -> None:
    response = await post(client, body)
    assert (response.status_code, response.content) == (status, b"fail")
    assert delivered == []


async def test_another_merchant_is_acknowledged_but_not_delivered(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    rejected: list[Any] = []
    notifier.on_rejected(lambda result, error: rejected.append((result.merchant_id, str(error))))
    response = await post(client, notify(mer_id="777290058119999"))
    assert (response.status_code, response.content) == (200, b"ok")  # a resend cannot help
    assert delivered == []
    assert rejected
    assert rejected[0][0] == "777290058119999"


async def test_other_txn_types_are_acknowledged_and_offered_to_hooks(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    seen: list[UnhandledEvent] = []
    notifier.on_unhandled(seen.append)
    response = await post(client, notify(txn_type="79", txnSubType="00"))
    assert (response.status_code, response.content) == (200, b"ok")
    assert delivered == []
    assert [e.event_type for e in seen] == ["79/00"]


async def test_front_return_is_a_page_never_a_delivery(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    returns: list[PaymentResult] = []

    @notifier.on_return
    def page(result: PaymentResult) -> str:
        returns.append(result)
        return f"https://shop.example/orders/{result.order_id}"

    response = await post(client, notify(), channel="return")
    assert response.status_code == 303
    assert response.headers["location"] == f"https://shop.example/orders/{ORDER_ID}"
    forged = await post(client, replace_field(notify(), b"txnAmt", b"1"), channel="return")
    assert forged.status_code == 400
    assert forged.content != b"ok"
    assert delivered == []
    assert [(r.status, r.source.value) for r in returns] == [(Status.PENDING, "return")]


async def test_subscriber_failure_gets_500_then_the_retry_delivers(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    calls: list[str] = []

    @notifier.subscribe
    def flaky(result: PaymentResult) -> None:
        calls.append(result.order_id)
        if len(calls) == 1:
            raise RuntimeError("fulfilment down")

    body = notify()
    first, second = await post(client, body), await post(client, body)
    assert (first.status_code, first.content) == (500, b"fail")
    assert (second.status_code, second.content) == (200, b"ok")
    assert calls == [ORDER_ID, ORDER_ID]


class _DownStore(MemoryStore):
    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("store down")


async def test_store_down_gives_500() -> None:
    notifier = Notifier(_DownStore())
    notifier.add_account("shop", "unionpay", mer_id=MER_ID, **chain().account_settings())
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await post(c, notify())
    await notifier.aclose()
    assert (response.status_code, response.content) == (500, b"fail")


def test_verification_comes_before_any_business_field() -> None:
    # A forged message with broken business fields is refused as forged, not as malformed.
    forged = replace_field(notify(), b"txnAmt", b"not-an-amount")
    with pytest.raises(VerificationError):
        parse(forged)
