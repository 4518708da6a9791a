"""WeChat Pay API v3 queries against the emulator: signed requests, answers verified like notifications,
normalized through the notification mapping (same event_id), and refused when forged, re-serialised,
unsigned or stale; not found, down and slow."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import pytest
from _query_emulator_send import emulator_send
from cryptography.hazmat.primitives.asymmetric import rsa
from paynotify_wechatpay import WeChatPayV3Provider, WeChatPayV3Settings
from paynotify_wechatpay.testing import (
    SUB_MCH_ID,
    V3SigningKey,
    WeChatPayV3Emulator,
    generate_apiv3_key,
    generate_v3_platform_certificate,
    generate_v3_public_key,
)

from paynotify import (
    Account,
    ConfigurationError,
    InboundRequest,
    Kind,
    Notifier,
    PaymentResult,
    ProviderApiError,
    ProviderUnavailable,
    Source,
    Status,
    VerificationError,
)

NOW = 1_700_000_000
PROVIDER = WeChatPayV3Provider(clock=lambda: NOW)


@functools.cache
def platform(name: str = "a") -> V3SigningKey:
    return generate_v3_platform_certificate()


@functools.cache
def public(name: str = "a") -> V3SigningKey:
    return generate_v3_public_key()


@functools.cache
def merchant(name: str = "a") -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def apiv3() -> str:
    return generate_apiv3_key()


def emulator(**options: Any) -> WeChatPayV3Emulator:
    values: dict[str, Any] = {
        "apiv3_key": apiv3(), "signing_key": platform(), "merchant_key": merchant(), "clock": lambda: NOW,
    }  # fmt: skip
    values.update(options)
    return WeChatPayV3Emulator(**values)


def account_of(
    emu: WeChatPayV3Emulator, name: str = "shop", **overrides: Any
) -> Account[WeChatPayV3Settings]:
    settings = emu.account_settings(**{k: overrides.pop(k) for k in ("trust", "sub_mchid") if k in overrides})
    settings.update(overrides)
    return Account(
        name, PROVIDER, WeChatPayV3Settings(**{k: v for k, v in settings.items() if v is not None})
    )


def notified(emu: WeChatPayV3Emulator, acct: Account[WeChatPayV3Settings], **which: Any) -> PaymentResult:
    headers, body = emu.notification(**which)
    request = InboundRequest("POST", "notify", {k.lower(): v for k, v in headers.items()}, body=body)
    result = PROVIDER.parse(request, acct)
    assert isinstance(result, PaymentResult)
    return result


def same_state(queried: PaymentResult, notified: PaymentResult) -> None:
    """One state, two ways: everything but `source` and `raw` equal, the event_id above all."""
    assert queried.source is Source.QUERY
    assert notified.source is Source.NOTIFY
    assert queried.event_id == notified.event_id
    ignore = {"source", "raw"}
    assert queried.model_dump(exclude=ignore) == notified.model_dump(exclude=ignore)


API = PROVIDER.api()


async def test_a_paid_order_queried_is_the_event_its_notification_is() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order-1", total=8888)
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-1")
    assert answer.found
    assert answer.result is not None
    same_state(answer.result, notified(emu, acct, order="order-1"))
    assert (answer.result.kind, answer.result.status, str(answer.result.amount)) == (
        Kind.PAYMENT, Status.SUCCEEDED, "88.88",
    )  # fmt: skip
    assert answer.result.key_id == platform().key_id
    assert answer.raw["out_trade_no"] == "order-1"
    # The request went where the table says, signed (the emulator checked the Authorization).
    assert emu.requests == [("GET", "/v3/pay/transactions/out-trade-no/order-1?mchid=10000100")]


@pytest.mark.parametrize("state", ["NOTPAY", "CLOSED", "USERPAYING", "PAYERROR", "REFUND"])
async def test_every_trade_state_queried_matches_its_notification(state: str) -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order-2", trade_state=state)
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-2")
    assert answer.result is not None
    same_state(answer.result, notified(emu, acct, order="order-2"))


async def test_a_public_key_account_queries_with_answers_signed_by_the_public_key() -> None:
    emu = emulator(signing_key=public())
    acct = account_of(emu)
    emu.pay("order-pk")
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-pk")
    assert answer.result is not None
    assert answer.result.key_id == public().key_id
    same_state(answer.result, notified(emu, acct, order="order-pk"))


@pytest.mark.parametrize("status", ["SUCCESS", "PROCESSING", "ABNORMAL", "CLOSED"])
async def test_a_refund_queried_is_the_event_its_notification_is(status: str) -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order-3", total=10000)
    emu.refund("refund-3", "order-3", refund=2500, refund_status=status)
    async with emulator_send(emu) as send:
        answer = await API.query_refund(send, acct, "refund-3")
    assert answer.result is not None
    same_state(answer.result, notified(emu, acct, refund="refund-3"))
    assert answer.raw["status"] == status  # the answer's own name; the notification says refund_status
    assert emu.requests[-1] == ("GET", "/v3/refund/domestic/refunds/refund-3")


async def test_a_service_provider_queries_its_sub_merchant_by_the_partner_paths() -> None:
    emu = emulator(partner=True, mchid="1900000100", appid="wx00000000000000sp")
    acct = account_of(emu, sub_mchid=SUB_MCH_ID)
    emu.pay("order-sp", sub_mchid=SUB_MCH_ID)
    emu.refund("refund-sp", "order-sp", refund=100, sub_mchid=SUB_MCH_ID)
    async with emulator_send(emu) as send:
        paid = await API.query_payment(send, acct, "order-sp")
        refunded = await API.query_refund(send, acct, "refund-sp")
    assert paid.result is not None
    assert refunded.result is not None
    same_state(paid.result, notified(emu, acct, order="order-sp", sub_mchid=SUB_MCH_ID))
    same_state(refunded.result, notified(emu, acct, refund="refund-sp", sub_mchid=SUB_MCH_ID))
    assert [path for _, path in emu.requests] == [
        f"/v3/pay/partner/transactions/out-trade-no/order-sp?sp_mchid=1900000100&sub_mchid={SUB_MCH_ID}",
        f"/v3/refund/domestic/refunds/refund-sp?sub_mchid={SUB_MCH_ID}",
    ]


async def test_a_service_provider_without_sub_mchid_cannot_query() -> None:
    emu = emulator(partner=True, mchid="1900000100", appid="wx00000000000000sp")
    acct = account_of(emu)
    assert not API.can_query(acct)
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="sub_mchid"):
            await API.query_payment(send, acct, "order-sp")
    assert emu.requests == []


async def test_ids_with_reserved_characters_are_sent_escaped_and_signed_as_sent() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("A|b*c1-_")
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "A|b*c1-_")
    assert answer.result is not None
    assert answer.result.order_id == "A|b*c1-_"
    assert emu.requests == [("GET", "/v3/pay/transactions/out-trade-no/A%7Cb%2Ac1-_?mchid=10000100")]


async def test_not_found_is_an_answer_without_a_result() -> None:
    emu = emulator()
    acct = account_of(emu)
    async with emulator_send(emu) as send:
        payment = await API.query_payment(send, acct, "never-made")
        refund = await API.query_refund(send, acct, "never-made")
    assert (payment.found, payment.result, payment.raw["code"]) == (False, None, "ORDER_NOT_EXIST")
    assert (refund.found, refund.result, refund.raw["code"]) == (False, None, "RESOURCE_NOT_EXISTS")


async def test_a_not_found_answer_must_verify_too() -> None:
    emu = emulator()
    emu.unsigned = True
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="no Wechatpay"):
            await API.query_payment(send, account_of(emu), "never-made")


def _changed_amount(body: bytes) -> bytes:
    changed = body.replace(b'"total":8888', b'"total":1')
    assert changed != body
    return changed


def _reserialised(body: bytes) -> bytes:
    """The same JSON content, as a framework would re-serialise it."""
    changed = json.dumps(json.loads(body), ensure_ascii=True).encode()
    assert changed != body
    return changed


@pytest.mark.parametrize("tamper", [_changed_amount, _reserialised], ids=["forged", "re-serialised"])
async def test_a_forged_or_reserialised_answer_is_refused(tamper: Any) -> None:
    emu = emulator()
    emu.pay("order-f")
    emu.tamper = tamper
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="does not verify") as caught:
            await API.query_payment(send, account_of(emu), "order-f")
    assert caught.value.account == "shop"


async def test_an_unsigned_answer_is_refused() -> None:
    emu = emulator()
    emu.pay("order-u")
    emu.unsigned = True
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="Wechatpay-Timestamp, Wechatpay-Nonce"):
            await API.query_payment(send, account_of(emu), "order-u")


async def test_an_answer_signed_by_an_untrusted_key_is_refused() -> None:
    emu = emulator(signing_key=platform("stranger"))
    emu.pay("order-x")
    acct = account_of(emu, platform_certificates=[platform().certificate_pem])
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="names no trusted key"):
            await API.query_payment(send, acct, "order-x")


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_stale_or_future_answer_is_refused(skew: int) -> None:
    emu = emulator()
    emu.pay("order-s")
    emu.answer_timestamp = NOW - skew
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="replay window"):
            await API.query_payment(send, account_of(emu), "order-s")


async def test_an_answer_inside_the_window_verifies() -> None:
    emu = emulator()
    emu.pay("order-w")
    emu.answer_timestamp = NOW - 299
    async with emulator_send(emu) as send:
        assert (await API.query_payment(send, account_of(emu), "order-w")).found


async def test_the_provider_down_is_unavailable() -> None:
    emu = emulator()
    emu.down = True
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderUnavailable, match="HTTP 503 'SYSTEM_ERROR'"):
            await API.query_payment(send, account_of(emu), "order-1")


async def test_the_provider_slow_is_unavailable_at_the_deadline() -> None:
    emu = emulator()
    emu.pay("order-1")
    emu.stall = asyncio.Event()  # never set: the emulator does not answer
    async with emulator_send(emu, deadline=0.05) as send:
        with pytest.raises(ProviderUnavailable, match=r"within 0\.05 s"):
            await API.query_payment(send, account_of(emu), "order-1")


async def test_a_request_signed_with_another_merchant_key_is_refused_by_the_provider() -> None:
    emu = emulator()
    emu.pay("order-1")
    acct = account_of(emu)
    other = emulator(merchant_key=merchant("other"), merchant_serial=emu.merchant_serial)
    wrong = account_of(other)  # the same serial, another key
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="HTTP 401 'SIGN_ERROR'") as caught:
            await API.query_payment(send, wrong, "order-1")
        assert caught.value.code == "SIGN_ERROR"
        assert (await API.query_payment(send, acct, "order-1")).found


async def test_an_account_without_a_merchant_key_cannot_query_and_still_receives() -> None:
    emu = emulator()
    acct = account_of(emu, merchant_private_key=None, merchant_serial=None)
    assert not API.can_query(acct)
    emu.pay("order-1")
    assert notified(emu, acct, order="order-1").is_paid
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="set merchant_private_key and merchant_serial"):
            await API.query_payment(send, acct, "order-1")


def test_merchant_key_settings_are_checked_and_secret() -> None:
    base = emulator().account_settings()
    notifier = Notifier()
    with pytest.raises(ConfigurationError, match="merchant_serial"):
        notifier.add_account("a", "wechatpay-v3", **{**base, "merchant_serial": None})
    with pytest.raises(ConfigurationError, match="not a PEM private key"):
        notifier.add_account(
            "b", "wechatpay-v3", **{**base, "merchant_private_key": platform().certificate_pem}
        )
    acct = notifier.add_account("c", "wechatpay-v3", **base)
    pem = base["merchant_private_key"]
    assert "PRIVATE" not in repr(acct.settings)
    assert pem not in str(acct.settings.model_dump())
    assert API.can_query(acct)
    assert acct.settings.base_url == "http://wechatpay-v3.emulator"
    default = notifier.add_account("d", "wechatpay-v3", **{k: v for k, v in base.items() if k != "base_url"})
    assert default.settings.base_url == "https://api.mch.weixin.qq.com"


async def test_a_rotated_merchant_key_is_used_after_update_account() -> None:
    emu = emulator()
    emu.pay("order-1")
    notifier = Notifier()
    notifier.add_account("shop", PROVIDER, **emulator(merchant_key=merchant("old")).account_settings())
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="SIGN_ERROR"):
            await API.query_payment(send, notifier.accounts["shop"], "order-1")
        notifier.update_account("shop", PROVIDER, **emu.account_settings())
        assert (await API.query_payment(send, notifier.accounts["shop"], "order-1")).found


async def test_a_genuine_answer_about_another_order_does_not_stand_for_this_one() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order-paid")
    emu.orders[(None, "order-unpaid")] = emu.orders[(None, "order-paid")]  # a replayed answer
    emu.pay("refunded", total=100)
    emu.refund("refund-a", "refunded", refund=100)
    emu.refunds[(None, "refund-b")] = emu.refunds[(None, "refund-a")]
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match=r"asked about 'order-unpaid'.* about 'order-paid'"):
            await API.query_payment(send, acct, "order-unpaid")
        with pytest.raises(ProviderApiError, match=r"asked about 'refund-b'.* about 'refund-a'"):
            await API.query_refund(send, acct, "refund-b")
