"""The v3 provider as paynotify sees it: registration, reply bytes, the demo, the testing helpers,
and real notifications through the Notifier and its ASGI route (every refusal is non-2xx and
dispatches nothing; concurrent copies dispatch once; keys rotate with update_account)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import paynotify_wechatpay
import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    NOW,
    PROVIDER,
    apiv3_key,
    certificate,
    lower,
    payment,
    public_key,
    refund,
    settings,
)
from hypothesis import given
from hypothesis import strategies as st
from paynotify_wechatpay import WeChatPayV3Provider, WeChatPayV3Settings, testing
from paynotify_wechatpay._v3_keys import load_platform_certificates
from paynotify_wechatpay.testing import generate_apiv3_key, generate_v3_platform_certificate

from paynotify import (
    CheckFailed,
    DeliveryFailed,
    InboundRequest,
    InFlight,
    Kind,
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

Notify = tuple[dict[str, str], bytes]


def test_public_names_are_pinned() -> None:
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
    v3_helpers = [name for name in testing.__all__ if "v3" in name.lower()]
    assert v3_helpers == [
        "PROVIDER_SIDE_V3_KEY",
        "V3SigningKey",
        "WeChatPayV3Emulator",
        "encrypt_v3_resource",
        "generate_apiv3_key",
        "generate_v3_platform_certificate",
        "generate_v3_public_key",
        "local_v3_emulator",
        "make_v3_notify",
        "make_v3_refund_notify",
        "make_v3_transaction_notify",
        "sign_v3",
        "v3_refund_resource",
        "v3_transaction_resource",
    ]


def test_registered_through_the_entry_point() -> None:
    provider = registry.get("wechatpay-v3")
    assert isinstance(provider, WeChatPayV3Provider)
    assert provider.name == "wechatpay-v3"
    assert provider.channels == frozenset({"notify"})
    assert provider.settings_model is WeChatPayV3Settings
    assert provider.clock is time.time


def test_ack_is_204_with_no_body() -> None:
    reply = PROVIDER.ack()
    assert (reply.status, reply.body, reply.content_type, dict(reply.headers)) == (204, b"", None, {})


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (VerificationError("signature does not verify", account="shop"), 401),
        (MalformedNotification("notification body is not JSON"), 400),
        (InFlight("event in flight, retry later"), 503),
        (DeliveryFailed("delivery failed, retry later"), 500),
        (CheckFailed("app_id is 'x'"), 500),
        (NotificationError("other"), 500),
    ],
)
def test_nack_status_and_json_body(error: NotificationError, status: int) -> None:
    reply = PROVIDER.nack(error)
    assert reply.status == status
    assert reply.content_type == "application/json"
    assert json.loads(reply.body) == {"code": "FAIL", "message": error.message}
    assert b"shop" not in reply.body  # the message, never the account name


def test_nack_message_is_bounded_escaped_and_never_empty() -> None:
    hostile = '"}, "code": "SUCCESS", "x": "\x00\u2028' + "y" * 500
    body = json.loads(PROVIDER.nack(MalformedNotification(hostile)).body)
    assert body["code"] == "FAIL"
    assert len(body["message"]) == 200
    assert body["message"].startswith('"}, "code": "SUCCESS"')
    assert json.loads(PROVIDER.nack(InFlight("")).body)["message"] == "InFlight"


@given(st.text(max_size=300))
def test_nack_is_always_json_fail(message: str) -> None:
    reply = PROVIDER.nack(DeliveryFailed(message))
    body = json.loads(reply.body)
    assert body["code"] == "FAIL"
    assert 0 < len(body["message"]) <= 200
    reply.body.decode("ascii")


def test_demo_is_genuine_in_both_key_modes_and_the_forgery_is_refused() -> None:
    demo = WeChatPayV3Provider.demo()
    assert demo.forged is not None
    acct = Notifier("memory://").add_account("demo", "wechatpay-v3", **demo.settings)
    provider = acct.provider

    def run(headers: Any, body: bytes) -> PaymentResult | UnhandledEvent:
        parsed = provider.parse(InboundRequest("POST", "notify", lower(dict(headers)), body=body), acct)
        assert isinstance(parsed, PaymentResult | UnhandledEvent)
        return parsed

    results = [run(r.headers, r.body) for r in demo.requests]
    assert [(r.kind, r.status) for r in results if isinstance(r, PaymentResult)] == [
        (Kind.PAYMENT, Status.SUCCEEDED),
        (Kind.REFUND, Status.SUCCEEDED),
    ]
    (demo_certificate,) = load_platform_certificates(demo.settings["platform_certificates"][0])
    assert results[0].key_id == demo_certificate.key_id
    assert results[1].key_id == demo.settings["public_key_id"]
    with pytest.raises(VerificationError, match="does not verify"):
        run(demo.forged.headers, demo.forged.body)


def test_testing_helpers_make_what_wechat_pay_sends() -> None:
    keys = {generate_apiv3_key() for _ in range(5)}
    assert len(keys) == 5
    assert all(len(k) == 32 and k.isalnum() and k.isascii() for k in keys)
    headers, body = payment()
    assert sorted(headers) == [
        "Content-Type",
        "Wechatpay-Nonce",
        "Wechatpay-Serial",
        "Wechatpay-Signature",
        "Wechatpay-Signature-Type",
        "Wechatpay-Timestamp",
    ]
    assert headers["Wechatpay-Timestamp"] == str(NOW)
    assert len(headers["Wechatpay-Nonce"]) == 32
    assert headers["Wechatpay-Serial"] == certificate().key_id
    envelope = json.loads(body)
    assert list(envelope) == ["id", "create_time", "resource_type", "event_type", "summary", "resource"]
    assert envelope["create_time"] == "2023-11-15T06:13:20+08:00"  # NOW in Beijing time
    assert b" " not in body  # compact, as WeChat Pay sends it
    assert len(envelope["resource"]["nonce"]) == 12
    assert envelope["resource"]["associated_data"] == "transaction"
    assert "Wechatpay-Signature-Type" not in testing.sign_v3(body, certificate(), signature_type=None)
    assert certificate().account_settings() == {"platform_certificates": [certificate().certificate_pem]}
    assert public_key().account_settings() == {
        "public_key_id": public_key().key_id,
        "public_key": public_key().public_key_pem,
    }
    assert "BEGIN" not in repr(certificate())
    assert testing.generate_v3_public_key("PUB_KEY_ID_X").key_id == "PUB_KEY_ID_X"


def test_helpers_default_to_now_and_the_real_clock_accepts_them() -> None:
    acct = Notifier("memory://").add_account("shop", "wechatpay-v3", **settings())
    headers, body = testing.make_v3_transaction_notify(
        certificate(), apiv3_key(), appid=APPID, mchid=MCHID, out_trade_no="now-1"
    )
    assert abs(int(headers["Wechatpay-Timestamp"]) - time.time()) < 5
    result = acct.provider.parse(InboundRequest("POST", "notify", lower(headers), body=body), acct)
    assert result.order_id == "now-1"  # type: ignore[union-attr]


# Through the pipeline and the ASGI route


@pytest.fixture
def notifier() -> Notifier:
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **settings())
    return n


# `delivered` and `client` come from conftest.py, over this module's `notifier`.


async def post(client: httpx.AsyncClient, notify: Notify, account: str = "shop") -> httpx.Response:
    headers, body = notify
    return await client.post(f"/{account}/notify", content=body, headers=headers)


async def test_payment_and_refunds_are_delivered_once(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    paid, refund_1, refund_2 = payment(), refund(), refund(out_refund_no="refund-2")
    for notify in (paid, paid, refund_1, refund_1, refund_2, payment(public_key())):
        response = await post(client, notify)
        assert (response.status_code, response.content) == (204, b"")
    assert [(r.kind, r.refund_id) for r in delivered] == [
        (Kind.PAYMENT, None),
        (Kind.REFUND, "refund-1"),
        (Kind.REFUND, "refund-2"),
    ]


async def test_both_key_modes_on_one_account_and_the_log_names_the_key(
    client: httpx.AsyncClient, delivered: list[PaymentResult], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="paynotify"):
        assert (await post(client, payment(certificate(), out_trade_no="a"))).status_code == 204
        assert (await post(client, payment(public_key(), out_trade_no="b"))).status_code == 204
    assert [r.key_id for r in delivered] == [certificate().key_id, public_key().key_id]
    assert f"verified with key {certificate().key_id}" in caplog.text
    assert f"verified with key {public_key().key_id}" in caplog.text


def with_header(notify: Notify, name: str, value: str | None) -> Notify:
    headers, body = notify
    headers = {k: v for k, v in headers.items() if k != name}
    if value is not None:
        headers[name] = value
    return headers, body


def changed_byte(notify: Notify) -> Notify:
    headers, body = notify
    i = body.index(b'"resource"') - 5
    return headers, body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]


def reserialised(notify: Notify) -> Notify:
    headers, body = notify
    return headers, json.dumps(json.loads(body)).encode()


REFUSALS: list[tuple[str, Any, int]] = [
    ("wrong-key", lambda: payment(generate_v3_platform_certificate()), 401),
    ("unknown-serial", lambda: with_header(payment(), "Wechatpay-Serial", "0123ABCD"), 401),
    ("stale-301", lambda: payment(timestamp=NOW - 301), 401),
    ("future-301", lambda: payment(timestamp=NOW + 301), 401),
    ("wrong-apiv3-key", lambda: payment(key=generate_apiv3_key()), 401),
    ("wrong-apiv3-key-refund", lambda: refund(key=generate_apiv3_key()), 401),
    ("reserialised-json", lambda: reserialised(payment()), 401),
    ("signtest-probe", lambda: with_header(payment(), "Wechatpay-Signature", "WECHATPAY/SIGNTEST/xyz"), 401),
    ("no-timestamp", lambda: with_header(payment(), "Wechatpay-Timestamp", None), 401),
    ("no-nonce", lambda: with_header(payment(), "Wechatpay-Nonce", None), 401),
    ("no-signature", lambda: with_header(payment(), "Wechatpay-Signature", None), 401),
    ("no-serial", lambda: with_header(payment(), "Wechatpay-Serial", None), 401),
    (
        "sm2-signature-type",
        lambda: with_header(payment(), "Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3"),
        401,
    ),
    ("one-changed-byte", lambda: changed_byte(payment()), 401),
    ("refund-changed-byte", lambda: changed_byte(refund()), 401),
    ("empty-body", lambda: (payment()[0], b""), 401),
    ("signed-garbage", lambda: (testing.sign_v3(b"garbage", certificate(), timestamp=NOW), b"garbage"), 400),
]


@pytest.mark.parametrize(
    ("make", "status"), [(m, s) for _, m, s in REFUSALS], ids=[i for i, _, _ in REFUSALS]
)
async def test_refusals_are_non_2xx_json_fail_and_dispatch_nothing(
    client: httpx.AsyncClient,
    delivered: list[PaymentResult],
    caplog: pytest.LogCaptureFixture,
    make: Any,
    status: int,
) -> None:
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        response = await post(client, make())
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "FAIL"
    assert response.json()["message"]
    assert delivered == []
    assert "account 'shop'" in caplog.text  # the log names the account (and the rule)
    for text in (caplog.text, response.text):
        assert apiv3_key() not in text
        assert "BEGIN" not in text


async def test_boundary_timestamps_are_accepted(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    assert (await post(client, payment(timestamp=NOW - 300, out_trade_no="old"))).status_code == 204
    assert (await post(client, payment(timestamp=NOW + 300, out_trade_no="new"))).status_code == 204
    assert [r.order_id for r in delivered] == ["old", "new"]


async def test_payment_for_another_appid_or_mchid_is_acknowledged_but_not_delivered(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    rejected: list[PaymentResult] = []
    notifier.on_rejected(lambda result, error: rejected.append(result))
    assert (
        await post(client, payment(appid="wx00000000000other"))
    ).status_code == 204  # verified: retry can't help
    assert (await post(client, payment(mchid="1900000999", out_trade_no="o2"))).status_code == 204
    assert delivered == []
    assert [r.app_id for r in rejected] == ["wx00000000000other", APPID]


async def test_subscriber_failure_gets_500_then_the_retry_delivers(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    failures = [RuntimeError("down")]

    @notifier.subscribe
    def flaky(result: PaymentResult) -> None:
        if failures:
            raise failures.pop()

    first = await post(client, payment())
    assert first.status_code == 500
    assert first.json() == {"code": "FAIL", "message": "delivery failed, retry later"}
    assert (await post(client, payment())).status_code == 204
    assert len(delivered) == 1


async def test_unhandled_event_types_are_acknowledged_and_offered_to_hooks(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    events: list[UnhandledEvent] = []
    notifier.on_unhandled(events.append)
    notify = testing.make_v3_notify(
        public_key(), apiv3_key(), {"out_order_no": "p-1", "state": "DONE"},
        event_type="PAYSCORE.USER_CONFIRM",
        original_type="payscore", timestamp=NOW,
    )  # fmt: skip
    assert (await post(client, notify)).status_code == 204
    assert [e.event_type for e in events] == ["PAYSCORE.USER_CONFIRM"]
    assert events[0].key_id == public_key().key_id
    assert events[0].raw["resource"] == {"out_order_no": "p-1", "state": "DONE"}  # decrypted content
    assert delivered == []


async def test_concurrent_copies_of_one_notification_dispatch_once(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    calls = 0
    release = asyncio.Event()

    @notifier.subscribe
    async def slow(result: PaymentResult) -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    notify = payment()
    first = asyncio.create_task(post(client, notify))
    await asyncio.sleep(0.05)
    copies = await asyncio.gather(*(post(client, notify) for _ in range(20)))
    assert {r.status_code for r in copies} == {503}  # in flight: WeChat Pay resends later
    assert {r.json()["code"] for r in copies} == {"FAIL"}
    release.set()
    assert (await first).status_code == 204
    assert calls == 1
    again = await asyncio.gather(*(post(client, notify) for _ in range(20)))
    assert {r.status_code for r in again} == {204}
    assert calls == 1


async def test_concurrent_copies_signed_separately_dispatch_once(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    # Resends carry new nonces and signatures (and either key during a migration): one event.
    calls: list[str] = []
    notifier.subscribe(lambda r: calls.append(r.event_id))
    copies = [payment(certificate() if i % 2 else public_key(), timestamp=NOW - i) for i in range(20)]
    replies = await asyncio.gather(*(post(client, c) for c in copies))
    assert {r.status_code for r in replies} <= {204, 503}
    for _ in range(50):  # WeChat Pay resends what was not acknowledged
        if all(r.status_code == 204 for r in replies):
            break
        replies = await asyncio.gather(*(post(client, c) for c in copies))
    assert {r.status_code for r in replies} == {204}
    assert len(calls) == 1


async def test_rotation_with_update_account(
    notifier: Notifier, client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    new_certificate = generate_v3_platform_certificate()
    assert (await post(client, payment(new_certificate, out_trade_no="r-1"))).status_code == 401
    assert new_certificate.certificate_pem is not None
    assert certificate().certificate_pem is not None
    # 1. add the new certificate next to the old one: both verify
    both = [certificate().certificate_pem, new_certificate.certificate_pem]
    notifier.update_account("shop", **settings(platform_certificates=both))
    assert (await post(client, payment(new_certificate, out_trade_no="r-1"))).status_code == 204
    assert (await post(client, payment(certificate(), out_trade_no="r-2"))).status_code == 204
    # 2. later, remove the old one: it no longer verifies, the new one and the public key still do
    notifier.update_account("shop", **settings(platform_certificates=[new_certificate.certificate_pem]))
    assert (await post(client, payment(certificate(), out_trade_no="r-3"))).status_code == 401
    assert (await post(client, payment(public_key(), out_trade_no="r-4"))).status_code == 204
    assert [(r.order_id, r.key_id) for r in delivered] == [
        ("r-1", new_certificate.key_id),
        ("r-2", certificate().key_id),
        ("r-4", public_key().key_id),
    ]


async def test_only_the_notify_channel_is_served(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    headers, body = payment()
    assert (await client.post("/shop/return", content=body, headers=headers)).status_code == 404
    assert (await client.get("/shop/notify")).status_code == 405
    assert delivered == []


async def test_store_down_gives_500_json_fail() -> None:
    class BrokenStore(MemoryStore):
        async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Any:
            raise StoreError("connection refused")

    notifier = Notifier(BrokenStore())
    notifier.add_account("shop", PROVIDER, **settings())
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await post(client, payment())
    await notifier.aclose()
    assert response.status_code == 500
    assert response.json() == {"code": "FAIL", "message": "store unavailable"}
