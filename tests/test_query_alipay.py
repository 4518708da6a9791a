"""Alipay queries against the emulator: requests signed with the app's key (refused at the gateway
when they do not verify), answers verified on the exact text Alipay signed, normalized by the
notification's rules (same event_id); forged, re-serialised, unsigned and mislabelled answers
refused; not found, errors, down and slow. Public-key and certificate mode."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from _query_emulator_send import app_client, emulator_send
from paynotify_alipay import AlipayProvider, AlipaySettings
from paynotify_alipay._api import response_value
from paynotify_alipay.testing import AlipayEmulator, generate_key

from paynotify import (
    Account,
    InboundRequest,
    Kind,
    MalformedNotification,
    Notifier,
    PaymentResult,
    ProviderApiError,
    ProviderUnavailable,
    Source,
    Status,
    VerificationError,
)
from paynotify._config import resolve_settings
from paynotify.recovery import EmulatorTransport

PROVIDER = AlipayProvider()
API = PROVIDER.api()


@functools.cache
def keys() -> tuple[Any, Any, Any]:
    return generate_key(), generate_key(), generate_key()


def emulator(**options: Any) -> AlipayEmulator:
    alipay, app, _ = keys()
    return AlipayEmulator(**{"alipay_key": alipay, "app_key": app, **options})


def account_of(emu: AlipayEmulator, **overrides: Any) -> Account[AlipaySettings]:
    return Account("shop", PROVIDER, AlipaySettings(**{**emu.account_settings(), **overrides}))


def notified(emu: AlipayEmulator, acct: Account[AlipaySettings], **which: Any) -> PaymentResult:
    body = emu.notification(**which)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    result = PROVIDER.parse(InboundRequest("POST", "notify", headers, body=body), acct)
    assert isinstance(result, PaymentResult)
    return result


def same_state(queried: PaymentResult, notified: PaymentResult) -> None:
    assert queried.source is Source.QUERY
    assert queried.event_id == notified.event_id
    for name in ("kind", "status", "order_id", "transaction_id", "refund_id", "amount", "app_id"):
        assert getattr(queried, name) == getattr(notified, name), name


@pytest.mark.parametrize("certificate_mode", [False, True], ids=["public-key", "certificate"])
async def test_a_paid_order_is_the_same_event_as_its_notification(certificate_mode: bool) -> None:
    emu = emulator(certificate_mode=certificate_mode)
    acct = account_of(emu)
    emu.pay("order-1", total_amount="88.88")
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-1")
    assert answer.result is not None
    assert (answer.result.kind, answer.result.status, str(answer.result.amount)) == (
        Kind.PAYMENT, Status.SUCCEEDED, "88.88",
    )  # fmt: skip
    same_state(answer.result, notified(emu, acct, order="order-1"))
    assert answer.result.paid_at is not None
    assert emu.requests == [("alipay.trade.query", {"out_trade_no": "order-1"})]


async def test_a_pending_and_a_closed_trade_are_their_states() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order-w", trade_status="WAIT_BUYER_PAY")
    emu.pay("order-c", trade_status="TRADE_CLOSED")
    async with emulator_send(emu) as send:
        waiting = await API.query_payment(send, acct, "order-w")
        closed = await API.query_payment(send, acct, "order-c")
    assert waiting.result is not None
    assert closed.result is not None
    assert waiting.result.status is Status.PENDING
    assert closed.result.status is Status.CLOSED


async def test_a_refund_is_the_same_event_as_its_notification() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order-1", total_amount="100.00")
    emu.refund("refund-1", "order-1", refund_amount="10.00")
    async with emulator_send(emu) as send:
        answer = await API.query_refund(send, acct, "refund-1", order_id="order-1")
        unknown = await API.query_refund(send, acct, "refund-9", order_id="order-1")
    assert answer.result is not None
    assert (answer.result.kind, answer.result.status) == (Kind.REFUND, Status.SUCCEEDED)
    same_state(answer.result, notified(emu, acct, order="order-1", refund="refund-1"))
    assert not unknown.found
    with pytest.raises(ProviderApiError, match="needs the order id"):
        await API.query_refund(send, acct, "refund-1")


async def test_an_unknown_trade_is_not_found_once_the_answer_verified() -> None:
    emu = emulator()
    async with emulator_send(emu) as send:
        assert not (await API.query_payment(send, account_of(emu), "nope")).found
        emu.unsigned = True
        with pytest.raises(ProviderApiError, match="unsigned"):
            await API.query_payment(send, account_of(emu), "nope")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"unsigned": True}, VerificationError),
        ({"answer_key": "forger"}, VerificationError),
        ({"tamper": lambda text: text.replace('"88.88"', '"1.00"', 1)}, VerificationError),
        ({"tamper": lambda text: text.replace('{"code"', '{ "code"', 1)}, VerificationError),  # re-serialised
        ({"tamper": lambda text: text[:-1] + ',"sign":"x"}'}, VerificationError),  # sign twice
        ({"tamper": lambda text: text.replace("order-1", "order-2")}, VerificationError),
    ],
    ids=["unsigned", "forged", "amount-changed", "re-serialised", "sign-twice", "other-order"],
)
async def test_an_answer_that_does_not_verify_is_never_believed(fault: dict[str, Any], error: type) -> None:
    emu = emulator()
    emu.pay("order-1", total_amount="88.88")
    for name, value in fault.items():
        setattr(emu, name, keys()[2] if value == "forger" else value)
    async with emulator_send(emu) as send:
        with pytest.raises(error):
            await API.query_payment(send, account_of(emu), "order-1")


async def test_an_answer_about_another_order_is_refused() -> None:
    emu = emulator()
    emu.pay("order-2")
    # A genuine answer about order-2, replayed as the answer to a question about order-1.
    emu.trades["order-1"] = emu.trades["order-2"]
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="not 'order-1'"):
            await API.query_payment(send, account_of(emu), "order-1")


async def test_the_gateway_refuses_a_request_signed_with_another_app_key() -> None:
    emu = emulator()
    emu.pay("order-1")
    wrong = account_of(emu, app_private_key=emulator(app_key=keys()[2]).account_settings()["app_private_key"])
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match=r"isv\.invalid-signature"):
            await API.query_payment(send, wrong, "order-1")
    assert emu.requests == []


async def test_errors_down_and_slow() -> None:
    emu = emulator()
    acct = account_of(emu)
    async with emulator_send(emu, deadline=0.2) as send:
        emu.error = "ACQ.SYSTEM_ERROR"
        with pytest.raises(ProviderUnavailable):
            await API.query_payment(send, acct, "order-1")
        emu.error = "ACQ.ACCESS_FORBIDDEN"
        with pytest.raises(ProviderApiError, match=r"ACQ\.ACCESS_FORBIDDEN") as raised:
            await API.query_payment(send, acct, "order-1")
        assert not isinstance(raised.value, ProviderUnavailable)
        emu.error = None
        emu.down = True
        with pytest.raises(ProviderUnavailable):
            await API.query_payment(send, acct, "order-1")
        emu.down = False
        emu.stall = asyncio.Event()
        with pytest.raises(ProviderUnavailable):
            await API.query_payment(send, acct, "order-1")


def test_an_account_without_the_app_key_cannot_query() -> None:
    emu = emulator()
    settings = emu.account_settings()
    del settings["app_private_key"]
    acct = Account("shop", PROVIDER, AlipaySettings(**settings))
    assert not API.can_query(acct)
    cert = emulator(certificate_mode=True).account_settings()
    del cert["app_cert"]
    assert not API.can_query(Account("shop", PROVIDER, AlipaySettings(**cert)))


def test_the_signed_text_is_cut_out_exactly_as_sent() -> None:
    body = '{"x_response" : {"code":"10000", "a":"b"},"sign":"s"}'
    raw, whole = response_value(body, "x_response")
    assert raw == '{"code":"10000", "a":"b"}'
    assert whole["sign"] == "s"
    with pytest.raises(MalformedNotification):
        response_value('{"sign":"s"}', "x_response")
    with pytest.raises(VerificationError, match="twice"):
        response_value('{"x_response":{},"x_response":{"code":"10000"},"sign":"s"}', "x_response")
    # The key inside a string value is not the response object.
    raw, _ = response_value(
        '{"note":"\\"x_response\\":1","x_response":{"code":"10000"},"sign":"s"}', "x_response"
    )
    assert json.loads(raw) == {"code": "10000"}


async def test_a_dropped_notification_queried_then_resent_is_one_event() -> None:
    emu = emulator()
    emu.pay("order-d")
    delivered: list[PaymentResult] = []
    notifier = Notifier("memory://", api_transport=EmulatorTransport({"alipay.emulator": emu}))
    notifier.add_account("shop", "alipay", **emu.account_settings())
    notifier.subscribe(delivered.append)
    async with notifier, app_client(notifier.asgi()) as client:
        assert await emu.push(client, "/shop/notify", order="order-d", drop=True) == []
        answer = await notifier.query("shop", "order-d")
        assert answer.outcome is not None
        assert await emu.push(client, "/shop/notify", order="order-d", copies=2) == [200, 200]
        emu.refund("refund-d", "order-d", refund_amount="1.00")
        await notifier.query("shop", "order-d", refund_id="refund-d")
        assert await emu.push(client, "/shop/notify", order="order-d", refund="refund-d") == [200]
    assert [(r.kind, r.source) for r in delivered] == [
        (Kind.PAYMENT, Source.QUERY),
        (Kind.REFUND, Source.QUERY),
    ]


async def test_rsa1_accounts_sign_and_verify_with_sha1() -> None:
    emu = emulator(sign_type="RSA")
    emu.pay("order-1")
    acct = account_of(emu)
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order-1")
    assert answer.result is not None
    same_state(answer.result, notified(emu, acct, order="order-1"))
    emu.pay("order-2")
    # An RSA2 signature is not an RSA1 one: the account's hash is the one checked.
    emu.sign_type = "RSA2"
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError):
            await API.query_payment(send, acct, "order-2")


async def test_an_unsigned_not_found_is_not_believed() -> None:
    emu = emulator()
    emu.unsigned = True
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError):
            await API.query_payment(send, account_of(emu), "order-1")


def test_the_app_key_never_shows_in_a_repr() -> None:
    settings = emulator().account_settings()
    body = settings["app_private_key"].splitlines()[1]
    acct = account_of(emulator())
    assert body not in repr(acct.settings)
    assert body not in repr(acct)


async def test_the_app_key_comes_from_the_environment_and_is_rotated_by_update_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = emulator()
    emu.pay("order-1")
    settings = emu.account_settings()
    old = emulator(app_key=keys()[2]).account_settings()["app_private_key"]
    monkeypatch.setenv("SHOP_ALIPAY_APP_KEY", old)
    spec = {k: v for k, v in settings.items() if k != "app_private_key"} | {
        "app_private_key_env": "SHOP_ALIPAY_APP_KEY"
    }
    resolved = resolve_settings("shop", spec, AlipaySettings.model_fields, tmp_path)
    notifier = Notifier("memory://", api_transport=EmulatorTransport({"alipay.emulator": emu}))
    notifier.add_account("shop", "alipay", **resolved)
    async with notifier:
        # The gateway knows the app by its new key only: the old one is refused there.
        with pytest.raises(ProviderApiError, match=r"isv\.invalid-signature"):
            await notifier.query("shop", "order-1")
        notifier.update_account("shop", "alipay", **settings)
        answer = await notifier.query("shop", "order-1")
    assert answer.result is not None
