"""The provider as paynotify sees it: registration, settings, reply bytes, the demo, and real
notifications through the Notifier and its ASGI route."""

from __future__ import annotations

import logging

import httpx
import paynotify_wechatpay
import pytest
from _wechatpay_v2 import APPID, MCH_ID, key, payment, refund
from hypothesis import given
from hypothesis import strategies as st
from paynotify_wechatpay import WeChatPayV2Provider, WeChatPayV2Settings, testing
from paynotify_wechatpay._xml import parse_flat_xml
from pydantic import ValidationError

from paynotify import (
    ConfigurationError,
    DeliveryFailed,
    InboundRequest,
    InFlight,
    Kind,
    MalformedNotification,
    Notifier,
    PaymentResult,
    Status,
    VerificationError,
    registry,
)

ACK = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
PROVIDER = WeChatPayV2Provider()


def test_public_names_are_pinned() -> None:
    assert paynotify_wechatpay.__all__ == sorted(paynotify_wechatpay.__all__)
    assert paynotify_wechatpay.__all__ == [
        "RefundConfirmation",
        "SignType",
        "WeChatPayV2Api",
        "WeChatPayV2Provider",
        "WeChatPayV2Settings",
        "WeChatPayV3Provider",
        "WeChatPayV3Settings",
        "confirm_v2_refund",
    ]
    assert testing.__all__ == sorted(testing.__all__)


def test_registered_through_the_entry_point() -> None:
    provider = registry.get("wechatpay-v2")
    assert isinstance(provider, WeChatPayV2Provider)
    assert provider.name == "wechatpay-v2"
    assert provider.channels == frozenset({"notify"})
    assert provider.settings_model is WeChatPayV2Settings


def test_ack_bytes_are_exact() -> None:
    reply = PROVIDER.ack()
    assert (reply.status, reply.body, reply.content_type) == (200, ACK, "application/xml")
    assert parse_flat_xml(reply.body) == {"return_code": "SUCCESS", "return_msg": "OK"}


def test_nack_bytes_are_exact() -> None:
    reply = PROVIDER.nack(VerificationError("MD5 sign does not match", account="shop"))
    assert reply.status == 200  # WeChat Pay v2 reads return_code; HTTP 200 with FAIL asks for a resend
    assert reply.content_type == "application/xml"
    assert reply.body == (
        b"<xml><return_code><![CDATA[FAIL]]></return_code>"
        b"<return_msg><![CDATA[MD5 sign does not match]]></return_msg></xml>"
    )


def test_nack_reason_cannot_break_the_cdata_and_is_short() -> None:
    hostile = "bad]]><return_code>SUCCESS</return_code>\x00\x1b]]]]>>" + "x" * 500
    reply = PROVIDER.nack(MalformedNotification(hostile))
    fields = parse_flat_xml(reply.body)
    assert fields["return_code"] == "FAIL"
    assert "]]>" not in fields["return_msg"]
    assert len(fields["return_msg"]) <= 120
    assert fields["return_msg"].startswith("bad<return_code>SUCCESS</return_code>")
    assert PROVIDER.nack(InFlight("")).body.endswith(b"<![CDATA[InFlight]]></return_msg></xml>")


@given(st.text(max_size=300))
def test_nack_is_always_well_formed_fail(message: str) -> None:
    fields = parse_flat_xml(PROVIDER.nack(DeliveryFailed(message)).body)
    assert fields["return_code"] == "FAIL"
    assert 0 < len(fields["return_msg"]) <= 120


def test_settings_hide_the_key_and_derive_it_once() -> None:
    api_key = key()
    settings = WeChatPayV2Settings(appid=APPID, mch_id=MCH_ID, api_key=api_key)
    assert settings.sign_type == "MD5"
    assert api_key not in repr(settings)
    assert api_key not in str(settings)
    assert settings.key_bytes == api_key.encode()
    assert len(settings.refund_aes_key) == 32
    assert (settings.expected_app_id(), settings.expected_merchant_id()) == (APPID, MCH_ID)


@pytest.mark.parametrize(
    ("api_key", "match"),
    [
        ("", "is empty"),
        ("a" * 31, "exactly 32 printable ASCII characters.*this one has 31 characters"),
        ("a" * 33, "this one has 33 characters"),
        ("测" * 32, "not ASCII"),
        (" " + "a" * 31, "spaces at the ends"),
        ("a" * 16 + " " + "a" * 15, "no spaces"),
    ],
)
def test_api_key_must_be_32_printable_ascii_characters(api_key: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        WeChatPayV2Settings(appid=APPID, mch_id=MCH_ID, api_key=api_key)
    if api_key:
        assert api_key not in str(info.value)


def test_bad_settings_through_add_account_name_the_account_and_field() -> None:
    notifier = Notifier("memory://")
    secret_like = "S" * 31
    with pytest.raises(ConfigurationError, match="account 'shop' \\(wechatpay-v2\\): api_key") as info:
        notifier.add_account("shop", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=secret_like)
    assert secret_like not in str(info.value)
    with pytest.raises(ConfigurationError, match="sign_type"):
        notifier.add_account(
            "shop", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=key(), sign_type="SHA1"
        )
    with pytest.raises(ConfigurationError, match="appid"):
        notifier.add_account("shop", "wechatpay-v2", appid="", mch_id=MCH_ID, api_key=key())
    with pytest.raises(ConfigurationError, match="mch_id"):
        notifier.add_account("shop", "wechatpay-v2", appid=APPID, api_key=key())


def test_demo_is_genuine_and_the_forgery_is_refused() -> None:
    demo = WeChatPayV2Provider.demo()
    assert demo.settings["sign_type"] == "HMAC-SHA256"
    assert demo.forged is not None
    notifier = Notifier("memory://")
    acct = notifier.add_account("demo", PROVIDER, **demo.settings)
    parsed = [PROVIDER.parse(InboundRequest("POST", r.channel, body=r.body), acct) for r in demo.requests]
    results = [r for r in parsed if isinstance(r, PaymentResult)]
    assert len(results) == len(parsed)
    assert [(r.kind, r.status) for r in results] == [
        (Kind.PAYMENT, Status.SUCCEEDED),
        (Kind.REFUND, Status.SUCCEEDED),
    ]
    with pytest.raises(VerificationError):
        PROVIDER.parse(InboundRequest("POST", "notify", body=demo.forged.body), acct)


def test_testing_helpers() -> None:
    keys = {testing.generate_api_key() for _ in range(5)}
    assert len(keys) == 5
    assert all(len(k) == 32 and k.isalnum() and k.isascii() for k in keys)
    body = testing.make_v2_payment_notify(key(), appid=APPID, mch_id=MCH_ID, out_trade_no="o-1")
    assert body.startswith(b"<xml><appid><![CDATA[")
    assert b"<total_fee>8888</total_fee>" in body
    fields = parse_flat_xml(body)
    assert list(fields) == sorted(fields)
    assert len(fields["nonce_str"]) == 32
    assert len(fields["time_end"]) == 14
    assert fields["sign"] == testing.sign_v2(fields, key())
    assert "err_code" not in fields
    assert "sign_type" not in fields
    fail = parse_flat_xml(
        testing.make_v2_payment_notify(
            key(), appid=APPID, mch_id=MCH_ID, out_trade_no="o", result_code="FAIL"
        )
    )
    assert fail["err_code"] == "SYSTEMERROR"
    assert "openid" not in parse_flat_xml(payment(openid=None))


# Through the pipeline and the ASGI route


@pytest.fixture
def notifier() -> Notifier:
    n = Notifier("memory://")
    # Refund confirmation through refundquery has its tests (test_wechatpay_v2_refund_confirmed.py);
    # here no WeChat Pay can be asked, so refunds are believed as notified.
    n.add_account(
        "shop",
        "wechatpay-v2",
        appid=APPID,
        mch_id=MCH_ID,
        api_key=key(),
        sign_type="MD5",
        confirm_refunds=False,
    )
    return n


# `delivered` and `client` come from conftest.py, over this module's `notifier`.


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/shop/notify", content=body, headers={"content-type": "text/xml"})


async def test_payment_and_refund_are_delivered_once(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    for body in (payment(), payment(), refund(), refund(), refund(out_refund_no="refund-2")):
        response = await post(client, body)
        assert (response.status_code, response.content) == (200, ACK)
    assert [(r.kind, r.refund_id) for r in delivered] == [
        (Kind.PAYMENT, None),
        (Kind.REFUND, "refund-1"),
        (Kind.REFUND, "refund-2"),
    ]


async def test_only_the_notify_channel_is_served(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    assert (await client.post("/shop/return", content=payment())).status_code == 404
    assert (await client.get("/shop/return?out_trade_no=order-1")).status_code == 404
    assert delivered == []


async def test_failed_payment_is_acknowledged_and_delivered(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    response = await post(client, payment(result_code="FAIL"))
    assert response.content == ACK  # a verified business failure still gets SUCCESS
    assert [r.status for r in delivered] == [Status.FAILED]


@pytest.mark.parametrize(
    "body",
    [
        payment(api_key=key("forger")),
        payment().replace(b"<total_fee>8888</total_fee>", b"<total_fee>1</total_fee>"),
        b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[bad]]></return_msg></xml>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
        b"",
        b"garbage",
        refund(api_key=key("forger")),
    ],
    ids=["wrong-key", "changed-amount", "return-code-fail", "xxe", "empty", "garbage", "refund-wrong-key"],
)
async def test_refused_notifications_get_fail_and_are_not_delivered(
    client: httpx.AsyncClient, delivered: list[PaymentResult], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await post(client, body)
    assert response.status_code == 200
    fields = parse_flat_xml(response.content)
    assert fields["return_code"] == "FAIL"
    assert fields["return_msg"]
    assert delivered == []
    assert key() not in caplog.text
    assert key() not in response.text
    assert "root:" not in response.text


async def test_payment_for_another_appid_is_acknowledged_but_not_delivered(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    response = await post(client, payment(appid="wx00000000000other"))
    assert response.content == ACK  # verified: a retry cannot help (CheckFailed)
    assert delivered == []


async def test_subscriber_failure_gets_fail_then_the_retry_delivers(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    failures = [RuntimeError("down")]

    @notifier.subscribe
    def flaky(result: PaymentResult) -> None:
        if failures:
            raise failures.pop()

    first = await post(client, payment())
    assert parse_flat_xml(first.content)["return_code"] == "FAIL"
    assert (await post(client, payment())).content == ACK
    assert len(delivered) == 1  # the subscriber that succeeded first time is not run again
