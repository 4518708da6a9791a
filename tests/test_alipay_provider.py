"""The Alipay plugin as paynotify sees it: entry point, public names, replies, demo, the pipeline."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx
import paynotify_alipay
import pytest
from _alipay_keys import APP_ID, PROVIDER, key, parse, pem
from paynotify_alipay import AlipayProvider, AlipaySettings, testing
from paynotify_alipay.testing import SELLER_ID, make_notify, make_return

from paynotify import (
    ENTRY_POINT_GROUP,
    InboundRequest,
    Kind,
    MalformedNotification,
    Notifier,
    PaymentResult,
    Reply,
    Source,
    Status,
    VerificationError,
    registry,
)

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_public_names_are_pinned() -> None:
    assert paynotify_alipay.__all__ == [
        "PRODUCTION_GATEWAY",
        "RETURN_STATUS",
        "SANDBOX_GATEWAY",
        "AlipayApi",
        "AlipayProvider",
        "AlipayPublicKey",
        "AlipaySettings",
        "SignType",
        "cert_sn",
        "passback_params",
        "root_cert_sn",
    ]
    # Sorted the way ruff's RUF022 sorts (constants, classes, functions), as in paynotify itself.
    for module in (paynotify_alipay, testing):
        assert module.__all__ == sorted(
            module.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)
        )
    for module in (paynotify_alipay, testing):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_registered_through_the_entry_point() -> None:
    [ep] = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "alipay"]
    assert ep.value == "paynotify_alipay:AlipayProvider"
    provider = registry.get("alipay")
    assert isinstance(provider, AlipayProvider)
    assert provider.name == "alipay"
    assert provider.settings_model is AlipaySettings
    assert provider.channels == frozenset({"notify", "return"})


def test_ack_is_exactly_seven_bytes() -> None:
    assert PROVIDER.ack() == Reply(200, b"success", "text/plain; charset=utf-8")
    assert len(PROVIDER.ack().body) == 7


def test_nack_is_fail() -> None:
    for error in (VerificationError("x"), MalformedNotification("y")):
        reply = PROVIDER.nack(error)
        assert (reply.status, reply.body) == (200, b"fail")


def test_demo_requests_are_genuine_and_the_forgery_is_refused() -> None:
    demo = AlipayProvider.demo()
    assert demo.forged is not None
    from paynotify import Account

    acct = Account("demo", PROVIDER, AlipaySettings(**demo.settings))
    parsed = [
        PROVIDER.parse(InboundRequest(r.method, r.channel, dict(r.headers), r.query, r.body), acct)
        for r in demo.requests
    ]
    results = [r for r in parsed if isinstance(r, PaymentResult)]
    assert len(results) == len(parsed)
    assert [(r.kind, r.status, r.source) for r in results] == [
        (Kind.PAYMENT, Status.SUCCEEDED, Source.NOTIFY),
        (Kind.REFUND, Status.SUCCEEDED, Source.NOTIFY),
        (Kind.PAYMENT, Status.PENDING, Source.RETURN),
    ]
    assert "+" in results[0].raw["subject"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in results[0].raw["subject"])
    assert demo.requests[2].method == "GET"
    assert demo.requests[2].query
    assert not demo.requests[2].body
    forged = demo.forged
    with pytest.raises(VerificationError):
        PROVIDER.parse(InboundRequest(forged.method, forged.channel, body=forged.body), acct)


def test_gbk_notify_made_by_the_helper_has_gbk_charset_field() -> None:
    result = parse(make_notify(key(), app_id=APP_ID, out_trade_no="o-1", charset="gbk", subject="中文"))
    assert result.raw["charset"] == "gbk"
    assert result.raw["subject"] == "中文"


async def _post_all(notifier: Notifier, *bodies: bytes) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        responses = [await client.post("/shop/notify", content=b, headers=FORM) for b in bodies]
    await notifier.aclose()
    return responses


def _notifier(**settings: str) -> tuple[Notifier, list[PaymentResult]]:
    notifier = Notifier("memory://")
    notifier.add_account("shop", "alipay", **{"app_id": APP_ID, "alipay_public_key": pem(), **settings})
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    return notifier, seen


async def test_pipeline_delivers_payment_then_refunds_once_each() -> None:
    notifier, seen = _notifier(seller_id=SELLER_ID)
    paid = make_notify(key(), app_id=APP_ID, out_trade_no="o-1")
    paid_retry = make_notify(key(), app_id=APP_ID, out_trade_no="o-1")  # new notify_id, same transition
    refund1 = make_notify(key(), app_id=APP_ID, out_trade_no="o-1", refund_fee="10.00", out_biz_no="R1")
    refund2 = make_notify(key(), app_id=APP_ID, out_trade_no="o-1", refund_fee="30.00", out_biz_no="R2")
    finished = make_notify(key(), app_id=APP_ID, out_trade_no="o-1", trade_status="TRADE_FINISHED")
    responses = await _post_all(notifier, paid, paid_retry, refund1, refund2, refund1, finished)
    assert [r.content for r in responses] == [b"success"] * 6
    assert [(r.kind.value, r.provider_status, r.refund_id) for r in seen] == [
        ("payment", "TRADE_SUCCESS", None),
        ("refund", "TRADE_SUCCESS", "R1"),
        ("refund", "TRADE_SUCCESS", "R2"),
        ("payment", "TRADE_FINISHED", None),
    ]


@pytest.mark.parametrize(
    ("settings", "app_id", "seller_id"),
    [({}, "2021999999999999", SELLER_ID), ({"seller_id": SELLER_ID}, APP_ID, "2088999999999999")],
    ids=["other-app", "other-seller"],
)
async def test_verified_but_for_another_app_or_seller_is_acked_not_delivered(
    settings: dict[str, str], app_id: str, seller_id: str
) -> None:
    notifier, seen = _notifier(**settings)
    body = make_notify(key(), app_id=app_id, out_trade_no="o-1", seller_id=seller_id)
    [response] = await _post_all(notifier, body)
    assert response.content == b"success"  # a retry cannot change the answer
    assert seen == []


async def test_pipeline_refuses_wrong_key_and_garbage_with_fail() -> None:
    notifier, seen = _notifier()
    responses = await _post_all(
        notifier,
        make_notify(key("stranger"), app_id=APP_ID, out_trade_no="o-1"),
        b"\xff\xfe%%%",
        b"",
    )
    assert [(r.status_code, r.content) for r in responses] == [(200, b"fail")] * 3
    assert seen == []


async def test_return_through_the_route_shows_a_page_and_delivers_nothing() -> None:
    notifier, seen = _notifier(return_url="https://shop.example/orders/{order_id}")
    query = make_return(key(), app_id=APP_ID, out_trade_no="o_1-2").decode("ascii")
    # Signed, but an order number out of Alipay's shape (letters, digits, _ and -): no redirect.
    odd = make_return(key(), app_id=APP_ID, out_trade_no="o 1/2").decode("ascii")
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        good = await client.get(f"/shop/return?{query}")
        bad = await client.get(f"/shop/return?{query}&extra=1")
        shapeless = await client.get(f"/shop/return?{odd}")
    await notifier.aclose()
    assert good.status_code == 303
    assert good.headers["location"] == "https://shop.example/orders/o_1-2"
    assert bad.status_code == 400
    assert shapeless.status_code == 400
    assert "location" not in shapeless.headers
    assert b"success" not in good.content + bad.content + shapeless.content
    assert seen == []
