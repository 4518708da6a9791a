"""WeChat Pay API v2 queries (orderquery, refundquery) against the emulator: signed with the API key
(MD5 or HMAC-SHA256), answers verified like notifications, read through the notification mapping
(same event_id); forged, re-keyed, unsigned, re-serialised, not found, error, down and slow."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from _query_emulator_send import app_client, emulator_send
from paynotify_wechatpay import SignType, WeChatPayV2Provider, WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import verify
from paynotify_wechatpay._xml import parse_flat_xml
from paynotify_wechatpay.testing import WeChatPayV2Emulator, generate_api_key

from paynotify import (
    Account,
    InboundRequest,
    Kind,
    MemoryStore,
    Notifier,
    PaymentResult,
    ProviderApiError,
    ProviderUnavailable,
    Source,
    Status,
    VerificationError,
)
from paynotify.recovery import EmulatorTransport

PROVIDER = WeChatPayV2Provider()
API = PROVIDER.api()
SIGN_TYPES: list[SignType] = ["MD5", "HMAC-SHA256"]


def account_of(
    emu: WeChatPayV2Emulator, name: str = "shop", **overrides: Any
) -> Account[WeChatPayV2Settings]:
    settings = {**emu.account_settings(), **overrides}
    return Account(name, PROVIDER, WeChatPayV2Settings(**settings))


def notified(emu: WeChatPayV2Emulator, acct: Account[WeChatPayV2Settings], **which: Any) -> PaymentResult:
    body = emu.notification(**which)
    result = PROVIDER.parse(InboundRequest("POST", "notify", {"content-type": "text/xml"}, body=body), acct)
    assert isinstance(result, PaymentResult)
    return result


def same_state(queried: PaymentResult, notified: PaymentResult) -> None:
    """One state, two ways: everything but `source` and `raw` equal, the event_id above all."""
    assert queried.source is Source.QUERY
    assert notified.source is Source.NOTIFY
    assert queried.event_id == notified.event_id
    ignore = {"source", "raw"}
    assert queried.model_dump(exclude=ignore) == notified.model_dump(exclude=ignore)


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
async def test_a_paid_order_queried_is_the_event_its_notification_is(sign_type: SignType) -> None:
    emu = WeChatPayV2Emulator(sign_type=sign_type)
    acct = account_of(emu)
    emu.pay("order-1", total_fee=8888)
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-1")
    assert answer.result is not None
    same_state(answer.result, notified(emu, acct, order="order-1"))
    assert (answer.result.kind, answer.result.status, str(answer.result.amount)) == (
        Kind.PAYMENT, Status.SUCCEEDED, "88.88",
    )  # fmt: skip
    assert answer.raw["trade_state"] == "SUCCESS"
    assert len(answer.raw["sign"]) == (32 if sign_type == "MD5" else 64)  # signed the configured way
    assert emu.requests == [("/pay/orderquery", "order-1")]  # the emulator checked the request's sign


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
def test_the_request_is_signed_with_the_configured_algorithm_and_the_api_key(sign_type: SignType) -> None:
    emu = WeChatPayV2Emulator(sign_type=sign_type)
    acct = account_of(emu)
    request = API.request(acct, "/pay/orderquery", {"out_trade_no": "order-1"})
    assert (request.method, request.url) == ("POST", "http://wechatpay-v2.emulator/pay/orderquery")
    fields = parse_flat_xml(request.body)
    assert set(fields) == {"appid", "mch_id", "out_trade_no", "nonce_str", "sign_type", "sign"}
    assert (fields["appid"], fields["mch_id"], fields["sign_type"]) == (emu.appid, emu.mch_id, sign_type)
    assert re.fullmatch(r"[0-9a-f]{32}", fields["nonce_str"])
    verify(fields, emu.api_key.encode(), sign_type)
    assert emu.api_key.encode() not in request.body
    other = API.request(acct, "/pay/orderquery", {"out_trade_no": "order-1"})
    assert parse_flat_xml(other.body)["nonce_str"] != fields["nonce_str"]


@pytest.mark.parametrize(
    ("state", "status", "provider_status"),
    [
        ("SUCCESS", Status.SUCCEEDED, "SUCCESS"),
        ("PAYERROR", Status.FAILED, "FAIL"),
        ("REFUND", Status.SUCCEEDED, "REFUND"),
        ("NOTPAY", Status.PENDING, "NOTPAY"),
        ("USERPAYING", Status.PENDING, "USERPAYING"),
        ("CLOSED", Status.CLOSED, "CLOSED"),
        ("REVOKED", Status.CLOSED, "REVOKED"),
    ],
)
async def test_every_trade_state_maps_to_its_status(state: str, status: Status, provider_status: str) -> None:
    emu = WeChatPayV2Emulator()
    acct = account_of(emu)
    emu.pay("order-2", trade_state=state)
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-2")
    assert answer.result is not None
    assert (answer.result.status, answer.result.provider_status) == (status, provider_status)
    if state in ("SUCCESS", "PAYERROR"):
        # The states WeChat Pay notifies: the query is the same event as the notification.
        same_state(answer.result, notified(emu, acct, order="order-2"))
    elif state == "NOTPAY":
        assert (answer.result.transaction_id, answer.result.amount, answer.result.paid_at) == (
            None,
            None,
            None,
        )


async def test_an_unknown_trade_state_is_never_a_result() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-3", trade_state="ACCEPT")
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="trade_state 'ACCEPT' is not one of"):
            await API.query_payment(send, account_of(emu), "order-3")


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
@pytest.mark.parametrize("status", ["SUCCESS", "CHANGE", "REFUNDCLOSE"])
async def test_a_refund_queried_is_the_event_its_notification_is(status: str, sign_type: SignType) -> None:
    emu = WeChatPayV2Emulator(sign_type=sign_type)
    acct = account_of(emu)
    emu.pay("order-4", total_fee=10000)
    emu.refund("refund-4a", "order-4", refund_fee=1000)
    emu.refund("refund-4b", "order-4", refund_fee=2500, refund_status=status)
    async with emulator_send(emu) as send:
        answer = await API.query_refund(send, acct, "refund-4b")
    assert answer.result is not None
    # The answer lists both refunds of the order; the one asked for is the one read.
    assert (answer.raw["refund_count"], answer.raw["out_refund_no_1"]) == ("2", "refund-4b")
    same_state(answer.result, notified(emu, acct, refund="refund-4b"))
    assert (str(answer.result.refund_amount), str(answer.result.amount)) == ("25.00", "100.00")
    assert emu.requests[-1] == ("/pay/refundquery", "refund-4b")


async def test_a_refund_in_progress_is_pending() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-5")
    emu.refund("refund-5", "order-5", refund_fee=100, refund_status="PROCESSING")
    async with emulator_send(emu) as send:
        answer = await API.query_refund(send, account_of(emu), "refund-5")
    assert answer.result is not None
    assert (answer.result.kind, answer.result.status, answer.result.provider_status) == (
        Kind.REFUND, Status.PENDING, "PROCESSING",
    )  # fmt: skip
    assert answer.result.refunded_at is None


async def test_not_found_is_an_answer_without_a_result() -> None:
    emu = WeChatPayV2Emulator()
    acct = account_of(emu)
    async with emulator_send(emu) as send:
        payment = await API.query_payment(send, acct, "never-made")
        refund = await API.query_refund(send, acct, "never-made")
    assert (payment.found, payment.result, payment.raw["err_code"]) == (False, None, "ORDERNOTEXIST")
    assert (refund.found, refund.result, refund.raw["err_code"]) == (False, None, "REFUNDNOTEXIST")


async def test_a_not_found_answer_must_verify_too() -> None:
    emu = WeChatPayV2Emulator()
    emu.unsigned = True
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="orderquery answer has no sign"):
            await API.query_payment(send, account_of(emu), "never-made")


def _changed_amount(body: bytes) -> bytes:
    changed = body.replace(
        b"<total_fee><![CDATA[8888]]></total_fee>", b"<total_fee><![CDATA[1]]></total_fee>"
    )
    assert changed != body
    return changed


def _trimmed(body: bytes) -> bytes:
    """Re-serialised by something that trims values: the signed content changed."""
    changed = body.replace(b"<![CDATA[ gift ]]>", b"<![CDATA[gift]]>")
    assert changed != body
    return changed


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
@pytest.mark.parametrize("tamper", [_changed_amount, _trimmed], ids=["forged", "re-serialised"])
async def test_a_forged_or_reserialised_answer_is_refused(tamper: Any, sign_type: SignType) -> None:
    emu = WeChatPayV2Emulator(sign_type=sign_type)
    emu.pay("order-f", attach=" gift ")
    emu.tamper = tamper
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match=f"{sign_type} sign does not match") as caught:
            await API.query_payment(send, account_of(emu), "order-f")
    assert caught.value.account == "shop"


async def test_the_same_values_re_encoded_carry_the_same_signed_content() -> None:
    """v2 signs values, not bytes: CDATA turned into escaped text is the same answer."""
    emu = WeChatPayV2Emulator()
    emu.pay("order-e", attach="a<b")
    emu.tamper = lambda body: body.replace(b"<![CDATA[a<b]]>", b"a&lt;b")
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, account_of(emu), "order-e")
    assert answer.raw["attach"] == "a<b"


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
async def test_an_answer_signed_with_another_key_is_refused(sign_type: SignType) -> None:
    emu = WeChatPayV2Emulator(sign_type=sign_type)
    emu.pay("order-k")
    emu.refund("refund-k", "order-k", refund_fee=100)
    emu.answer_key = generate_api_key()  # a forger who knows the protocol but not the key
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="sign does not match"):
            await API.query_payment(send, account_of(emu), "order-k")
        with pytest.raises(VerificationError, match="sign does not match"):
            await API.query_refund(send, account_of(emu), "refund-k")


async def test_an_unsigned_answer_is_refused() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-u")
    emu.refund("refund-u", "order-u", refund_fee=100)
    emu.unsigned = True
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="orderquery answer has no sign"):
            await API.query_payment(send, account_of(emu), "order-u")
        with pytest.raises(VerificationError, match="refundquery answer has no sign"):
            await API.query_refund(send, account_of(emu), "refund-u")


async def test_an_answer_naming_another_algorithm_is_refused() -> None:
    emu = WeChatPayV2Emulator(sign_type="HMAC-SHA256")
    emu.pay("order-a")
    emu.tamper = lambda body: body.replace(b"</xml>", b"<sign_type>MD5</sign_type></xml>")
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="never taken from the message"):
            await API.query_payment(send, account_of(emu), "order-a")


async def test_an_error_answer_is_a_provider_error_with_its_err_code() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-x")
    emu.error = "NOAUTH"
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="err_code 'NOAUTH'") as caught:
            await API.query_payment(send, account_of(emu), "order-x")
    assert caught.value.code == "NOAUTH"
    assert not isinstance(caught.value, ProviderUnavailable)
    assert emu.api_key not in str(caught.value)


async def test_a_system_error_is_unavailable_for_now() -> None:
    emu = WeChatPayV2Emulator()
    emu.error = "SYSTEMERROR"
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderUnavailable, match="SYSTEMERROR") as caught:
            await API.query_refund(send, account_of(emu), "refund-1")
    assert caught.value.code == "SYSTEMERROR"


async def test_a_request_signed_with_another_key_is_refused_by_the_provider() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-1")
    wrong = account_of(emu, api_key=generate_api_key())
    async with emulator_send(emu) as send:
        with pytest.raises(
            ProviderApiError, match=r"refused the request: return_code 'FAIL'.*签名错误"
        ) as caught:
            await API.query_payment(send, wrong, "order-1")
        assert wrong.settings.api_key.get_secret_value() not in str(caught.value)
        assert (await API.query_payment(send, account_of(emu), "order-1")).found


async def test_the_provider_down_is_unavailable() -> None:
    emu = WeChatPayV2Emulator()
    emu.down = True
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderUnavailable, match="HTTP 503"):
            await API.query_payment(send, account_of(emu), "order-1")


async def test_the_provider_slow_is_unavailable_at_the_deadline() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-1")
    emu.stall = asyncio.Event()  # never set: the emulator does not answer
    async with emulator_send(emu, deadline=0.05) as send:
        with pytest.raises(ProviderUnavailable, match=r"within 0\.05 s"):
            await asyncio.wait_for(API.query_payment(send, account_of(emu), "order-1"), 5)


async def test_an_answer_that_is_not_wechat_pay_xml_is_a_provider_error() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-1")
    emu.tamper = lambda body: body.replace(b"</xml>", b"<sign>x</sign></xml>")  # sign twice
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="element <sign> 2 times"):
            await API.query_payment(send, account_of(emu), "order-1")


async def test_a_genuine_answer_about_another_order_does_not_stand_for_this_one() -> None:
    emu = WeChatPayV2Emulator()
    acct = account_of(emu)
    emu.pay("order-paid")
    emu.orders["order-unpaid"] = emu.orders["order-paid"]  # a replayed answer
    emu.refund("refund-a", "order-paid", refund_fee=100)
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match=r"asked about order 'order-unpaid'.* about 'order-paid'"):
            await API.query_payment(send, acct, "order-unpaid")
        with pytest.raises(ProviderApiError, match=r"asked about order 'order-other'"):
            await API.query_refund(send, acct, "refund-a", order_id="order-other")
        emu.refunds["refund-b"] = emu.refunds["refund-a"]  # a replayed answer: it lists refund-a
        with pytest.raises(ProviderApiError, match=r"does not list refund 'refund-b'"):
            await API.query_refund(send, acct, "refund-b")


async def test_an_answer_for_another_merchant_is_refused() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-m", mch_id="1900009999")  # signed by WeChat Pay, but another merchant's
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="mch_id '1900009999', this account is mch_id '10000100'"):
            await API.query_payment(send, account_of(emu), "order-m")


def test_base_url_defaults_to_production_and_every_account_can_query() -> None:
    emu = WeChatPayV2Emulator()
    notifier = Notifier()
    pointed = notifier.add_account("a", "wechatpay-v2", **emu.account_settings())
    plain = notifier.add_account(
        "b", "wechatpay-v2", **{k: v for k, v in emu.account_settings().items() if k != "base_url"}
    )
    assert pointed.settings.base_url == "http://wechatpay-v2.emulator"
    assert plain.settings.base_url == "https://api.mch.weixin.qq.com"
    assert API.can_query(pointed)
    assert API.can_query(plain)
    assert emu.api_key not in repr(pointed.settings)
    assert API.request(plain, "/pay/orderquery", {"out_trade_no": "o"}).url == (
        "https://api.mch.weixin.qq.com/pay/orderquery"
    )


async def test_a_dropped_notification_queried_then_resent_is_one_event() -> None:
    emu = WeChatPayV2Emulator(sign_type="HMAC-SHA256")
    emu.pay("order-d")
    delivered: list[PaymentResult] = []
    # The refund notification is confirmed through the emulator's refundquery before delivery.
    notifier = Notifier(MemoryStore(), api_transport=EmulatorTransport({"wechatpay-v2.emulator": emu}))
    notifier.add_account("shop", PROVIDER, **emu.account_settings())
    notifier.subscribe(delivered.append)
    async with notifier, emulator_send(emu) as send, app_client(notifier.asgi()) as client:
        assert await emu.push(client, "/shop/notify", order="order-d", drop=True) == []
        answer = await API.query_payment(send, notifier.accounts["shop"], "order-d")
        assert answer.result is not None
        # The late notification of that state has the query's event_id: the store keeps it to one.
        assert await emu.push(client, "/shop/notify", order="order-d", copies=2) == [200, 200]
        emu.refund("refund-d", "order-d", refund_fee=500)
        assert await emu.push(client, "/shop/notify", refund="refund-d") == [200]
        refund = await API.query_refund(send, notifier.accounts["shop"], "refund-d")
    assert [result.kind for result in delivered] == [Kind.PAYMENT, Kind.REFUND]
    assert delivered[0].event_id == answer.result.event_id
    assert refund.result is not None
    assert delivered[1].event_id == refund.result.event_id


async def test_a_rotated_api_key_is_used_after_update_account() -> None:
    emu = WeChatPayV2Emulator()
    emu.pay("order-r")
    notifier = Notifier()
    notifier.add_account("shop", PROVIDER, **{**emu.account_settings(), "api_key": generate_api_key()})
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="签名错误"):
            await API.query_payment(send, notifier.accounts["shop"], "order-r")
        notifier.update_account("shop", PROVIDER, **emu.account_settings())
        assert (await API.query_payment(send, notifier.accounts["shop"], "order-r")).found
