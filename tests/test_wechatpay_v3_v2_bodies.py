"""WeChat Pay v2 XML notifications at a v3 account's URL (refunds started in the merchant platform
arrive so): an account with `apiv2_key` verifies and handles them through the v2 rules and answers
them in v2's XML; one without it refuses them with v2's FAIL, so WeChat Pay resends. The genuine v2
vectors (a refund, a service provider's payment) and throwaway-key notifications, through a Notifier."""

from __future__ import annotations

from typing import Any

import pytest
from _wechatpay_v2 import REFUND_APPID, REFUND_MCH_ID, REFUND_VECTOR, SP_APPID, SP_MCH_ID, SP_VECTOR
from _wechatpay_v2 import vector as v2_vector
from _wechatpay_v2 import vector_key as v2_vector_key
from _wechatpay_v3 import APPID, MCHID, PROVIDER, refund, settings, sp_settings
from _wechatpay_v3 import request as v3_request
from paynotify_wechatpay import WeChatPayV3Settings
from paynotify_wechatpay._xml import parse_flat_xml, to_xml
from paynotify_wechatpay.testing import (
    generate_api_key,
    make_v2_payment_notify,
    make_v2_refund_notify,
    sign_v2,
)

from paynotify import ConfigurationError, EventState, InboundRequest, Kind, Notifier, PaymentResult, Status

APIV2_KEY = generate_api_key()
V2_SUCCESS = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
)


def notifier(**overrides: Any) -> tuple[Notifier, list[PaymentResult]]:
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **settings(**overrides))
    delivered: list[PaymentResult] = []
    n.subscribe(delivered.append, name="all")
    return n, delivered


def xml(body: bytes) -> InboundRequest:
    return InboundRequest("POST", "notify", {"content-type": "text/xml"}, body=body)


def v2_refund(**extra: Any) -> bytes:
    return make_v2_refund_notify(
        APIV2_KEY, appid=APPID, mch_id=MCHID, out_trade_no="order-1", out_refund_no="refund-1",
        total_fee=8888, refund_fee=1000, **extra,
    )  # fmt: skip


async def test_a_merchant_platform_refund_in_v2_xml_is_delivered_and_answered_in_v2() -> None:
    n, delivered = notifier(apiv2_key=APIV2_KEY)
    reply = await n.handle("shop", xml(v2_refund()))
    assert (reply.status, reply.body) == (200, V2_SUCCESS)
    (result,) = delivered
    assert (result.provider, result.kind, result.status) == ("wechatpay-v3", Kind.REFUND, Status.SUCCEEDED)
    assert (result.order_id, result.refund_id, result.merchant_id) == ("order-1", "refund-1", MCHID)
    (event,) = await n.store.find()
    assert (event.state, event.provider) == (EventState.DONE, "wechatpay-v3")


async def test_the_same_refund_in_v2_then_in_v3_is_delivered_once() -> None:
    n, delivered = notifier(apiv2_key=APIV2_KEY)
    body = v2_refund()
    assert (await n.handle("shop", xml(body))).status == 200
    transaction_id = delivered[0].transaction_id
    v3 = refund(out_trade_no="order-1", out_refund_no="refund-1", transaction_id=transaction_id)
    assert (await n.handle("shop", v3_request(v3))).status == 204
    assert len(delivered) == 1  # one refund, whichever format told it first


async def test_the_genuine_v2_refund_vector_is_taken_by_a_v3_account_with_its_key() -> None:
    n, delivered = notifier(mchid=REFUND_MCH_ID, appid=REFUND_APPID, apiv2_key=v2_vector_key(REFUND_VECTOR))
    reply = await n.handle("shop", xml(v2_vector(REFUND_VECTOR)))
    assert (reply.status, reply.body) == (200, V2_SUCCESS)
    (result,) = delivered
    assert (result.kind, result.status, result.refund_id) == (Kind.REFUND, Status.SUCCEEDED, "1234")
    assert result.transaction_id == "4200000483202001042069747825"


async def test_a_v2_payment_is_verified_with_the_accounts_v2_sign_type() -> None:
    n, delivered = notifier(apiv2_key=APIV2_KEY, apiv2_sign_type="HMAC-SHA256")
    body = make_v2_payment_notify(
        APIV2_KEY, appid=APPID, mch_id=MCHID, out_trade_no="o-1", sign_type="HMAC-SHA256"
    )
    assert (await n.handle("shop", xml(body))).body == V2_SUCCESS
    assert [(r.kind, r.status, r.provider) for r in delivered] == [
        (Kind.PAYMENT, Status.SUCCEEDED, "wechatpay-v3")
    ]
    md5 = make_v2_payment_notify(APIV2_KEY, appid=APPID, mch_id=MCHID, out_trade_no="o-2")
    reply = await n.handle("shop", xml(md5))
    assert parse_flat_xml(reply.body)["return_code"] == "FAIL"  # the message does not pick the hash
    assert len(delivered) == 1


async def test_a_service_providers_v2_payment_belongs_to_its_sub_merchant() -> None:
    n = Notifier("memory://")
    values = sp_settings(sp_mchid=SP_MCH_ID, sp_appid=SP_APPID, apiv2_key=v2_vector_key(SP_VECTOR))
    n.add_account("sp", PROVIDER, **values)
    delivered: list[PaymentResult] = []
    n.subscribe(delivered.append, name="all")
    assert (await n.handle("sp", xml(v2_vector(SP_VECTOR)))).body == V2_SUCCESS
    (result,) = delivered
    assert (result.merchant_id, result.app_id, result.order_id) == (
        "1495746312",
        SP_APPID,
        "0001_2018060615095472",
    )
    refused = Notifier("memory://")
    refused.add_account("sp", PROVIDER, **{**values, "sub_mchid": "1900000999"})
    assert (await refused.handle("sp", xml(v2_vector(SP_VECTOR)))).body == V2_SUCCESS
    (event,) = await refused.store.find()
    assert event.state is EventState.REJECTED  # another sub-merchant's: the merchant check refuses it


async def test_without_apiv2_key_a_v2_body_is_refused_with_v2s_fail_and_nothing_recorded() -> None:
    n, delivered = notifier()
    reply = await n.handle("shop", xml(v2_refund()))
    fields = parse_flat_xml(reply.body)
    assert (reply.status, fields["return_code"]) == (200, "FAIL")
    assert "apiv2_key" in fields["return_msg"]
    assert delivered == []
    assert await n.store.find() == []


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (lambda: make_v2_refund_notify(generate_api_key(), appid=APPID, mch_id=MCHID, out_trade_no="o",
                                       out_refund_no="r", total_fee=1, refund_fee=1), "decrypt"),
        (lambda: make_v2_refund_notify(APIV2_KEY, appid="wx0000000000000999", mch_id=MCHID, out_trade_no="o",
                                       out_refund_no="r", total_fee=1, refund_fee=1), "appid"),
    ],
    ids=["another key", "another appid"],
)  # fmt: skip
async def test_a_v2_refund_the_account_cannot_verify_gets_fail(body: Any, cause: str) -> None:
    n, delivered = notifier(apiv2_key=APIV2_KEY)
    fields = parse_flat_xml((await n.handle("shop", xml(body()))).body)
    assert fields["return_code"] == "FAIL"
    assert cause in fields["return_msg"]
    assert delivered == []
    assert await n.store.find() == []


async def test_a_v2_refund_out_of_shape_is_recorded_rejected_and_answered_success() -> None:
    n, delivered = notifier(apiv2_key=APIV2_KEY)
    reply = await n.handle("shop", xml(v2_refund(refund_status="MAYBE")))
    assert reply.body == V2_SUCCESS
    (event,) = await n.store.find()
    assert event.state is EventState.REJECTED
    assert event.last_error is not None
    assert "refund_status" in event.last_error
    assert delivered == []


def test_apiv2_key_is_checked_and_never_shown() -> None:
    with pytest.raises(ConfigurationError, match="apiv2_key"):
        Notifier("memory://").add_account("shop", PROVIDER, **settings(apiv2_key="short"))
    loaded = WeChatPayV3Settings(**settings(apiv2_key=APIV2_KEY))
    assert APIV2_KEY not in repr(loaded)
    assert APIV2_KEY not in str(loaded)
    assert loaded.v2_settings is not None
    assert loaded.v2_settings.expected_merchant_id() == MCHID
    assert WeChatPayV3Settings(**settings()).v2_settings is None


async def test_v3_replies_are_unchanged() -> None:
    n, _ = notifier(apiv2_key=APIV2_KEY)
    reply = await n.handle("shop", v3_request(refund()))
    assert (reply.status, reply.body) == (204, b"")


async def test_a_v2_notification_naming_no_order_is_unhandled_on_the_v3_account() -> None:
    n, delivered = notifier(apiv2_key=APIV2_KEY)
    fields = {"mch_id": MCHID, "contract_code": "C-1", "plan_id": "1", "openid": "o-user",
              "change_type": "DELETE", "operate_time": "2026-12-01 12:00:00",
              "contract_id": "2015"}  # fmt: skip
    fields["sign"] = sign_v2(fields, APIV2_KEY)
    assert (await n.handle("shop", xml(to_xml(fields).encode()))).body == V2_SUCCESS
    (event,) = await n.store.find()
    assert (event.state, event.status, event.provider) == (
        EventState.UNHANDLED,
        "PAPAY.CONTRACT.DELETE",
        "wechatpay-v3",
    )
    assert delivered == []
