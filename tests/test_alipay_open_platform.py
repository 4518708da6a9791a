"""Alipay open-platform messages (notify_type other than trade_status_sync, e.g. the service market's
servicemarket_order_notify): signed under Alipay's V2 rule (sign_type stays in the signed content),
verified with the account's key and hash, acknowledged `success`, recorded as unhandled and offered
to on_unhandled hooks, never a payment. Signed here with throwaway keys."""

from __future__ import annotations

import pytest
from _alipay_keys import APP_ID, PROVIDER, account, key, parse, parse_any
from paynotify_alipay._signature import sign, sign_content
from paynotify_alipay.testing import encode_form, make_notify

from paynotify import EventState, InboundRequest, Notifier, PaymentResult, UnhandledEvent, VerificationError


def open_platform(
    rule: str = "V2", *, charset: str = "UTF-8", sign_type: str = "RSA2", **changes: str
) -> bytes:
    fields = {
        "notify_id": "2023082300222150023000051427585720",
        "notify_time": "2026-12-01 12:00:00",
        "notify_type": "servicemarket_order_notify",
        "app_id": APP_ID,
        "charset": charset,
        "version": "1.0",
        "sign_type": sign_type,
        "merchant_pid": "2088000000000001",
        "commodity_order_id": "20261201000000000000001",
        "order_item_num": "1",
        "total_price": "100.00",
        "biz_type": "1",
        "service_code": "APPMARKET_MOCK_CODE",
        "order_time": "2026-12-01 11:59:58",
        "title": "一个测试服务",
    }
    fields.update(changes)
    codec = "gbk" if charset.lower() == "gbk" else "utf-8"
    raw = {k.encode(codec): v.encode(codec) for k, v in fields.items()}
    fields["sign"] = sign(sign_content(raw, rule), key(), sign_type)  # type: ignore[arg-type]
    return encode_form(fields, codec)


def test_a_v2_signed_open_platform_message_is_verified_and_not_a_payment() -> None:
    event = parse_any(open_platform())
    assert isinstance(event, UnhandledEvent)
    assert event.event_type == "servicemarket_order_notify"
    assert event.raw["commodity_order_id"] == "20261201000000000000001"
    assert event.raw["title"] == "一个测试服务"
    assert event.key_id
    assert parse_any(open_platform()).event_id == event.event_id  # a resend is the same event


@pytest.mark.parametrize("charset", ["UTF-8", "utf-8", "GBK"])
def test_charset_names_in_any_case(charset: str) -> None:
    assert isinstance(parse_any(open_platform(charset=charset)), UnhandledEvent)


def test_a_changed_byte_of_an_open_platform_message_is_refused() -> None:
    body = open_platform()
    forged = body.replace(b"total_price=100.00", b"total_price=900.00")
    assert forged != body
    with pytest.raises(VerificationError):
        parse_any(forged)


def test_the_hash_still_comes_from_the_account_not_the_message() -> None:
    # The message claims RSA (SHA-1) and is signed so: an RSA2 account verifies with SHA-256 only.
    with pytest.raises(VerificationError):
        parse_any(open_platform(sign_type="RSA"), account())
    body = make_notify(key(), app_id=APP_ID, out_trade_no="o-sha1", sign_type="RSA")
    with pytest.raises(VerificationError):
        parse(body)


def test_a_trade_notification_is_verified_under_v1_only() -> None:
    # The same fields and key, signed under V2 (sign_type inside the content): Alipay never signs a
    # trade notification that way, so it is refused rather than tried under both rules.
    genuine = make_notify(key(), app_id=APP_ID, out_trade_no="o-v2")
    from urllib.parse import parse_qsl

    fields = dict(parse_qsl(genuine.decode(), keep_blank_values=True))
    del fields["sign"]
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    fields["sign"] = sign(sign_content(raw, "V2"), key(), "RSA2")
    with pytest.raises(VerificationError):
        parse(encode_form(fields))
    assert isinstance(parse(genuine), PaymentResult)


async def test_through_the_pipeline_acknowledged_recorded_and_offered_to_hooks() -> None:
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **account().settings.model_dump(include={"app_id", "sign_type"}),
                  alipay_public_key=_public_pem())  # fmt: skip
    seen: list[UnhandledEvent] = []
    delivered: list[PaymentResult] = []
    n.on_unhandled(seen.append)
    n.subscribe(delivered.append)
    reply = await n.handle("shop", InboundRequest("POST", "notify", {}, b"", open_platform()))
    assert reply.body == b"success"
    assert [e.event_type for e in seen] == ["servicemarket_order_notify"]
    assert delivered == []
    (event,) = await n.store.find()
    assert (event.state, event.status) == (EventState.UNHANDLED, "servicemarket_order_notify")


def _public_pem() -> str:
    from _alipay_keys import pem

    return pem()
