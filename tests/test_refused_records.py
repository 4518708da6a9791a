"""Refused content never makes one row per byte-variant (issue 25): a signed sync return posted to
notify is counted, not stored; verified content out of shape is one record however it is encoded.
Everything here is genuinely signed with throwaway keys (paynotify_alipay.testing, the WeChat Pay
v2 testing helpers); the variants are what anyone holding one signed copy can make."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import pytest
from _wechatpay_v2 import APPID, MCH_ID, key, payment
from paynotify_alipay.testing import SELLER_ID, generate_key, make_notify, make_return, public_key_pem

from paynotify import InboundRequest, Notifier, Outcome, make_event_id
from paynotify._refusals import rejected_id

APP_ID = "2021004100000000"
KEY = generate_key()
FORM = {"content-type": "application/x-www-form-urlencoded"}
VARIANTS = 1000


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'events.db'}"


def alipay(store_url: str) -> Notifier:
    n = Notifier(store_url)
    n.add_account("shop", "alipay", app_id=APP_ID, alipay_public_key=public_key_pem(KEY), seller_id=SELLER_ID)
    return n


def percent_variants(form: bytes, count: int, seed: int = 25) -> list[bytes]:
    """`count` distinct encodings of one form: letters and digits percent-encoded at random, in
    either hex case; each decodes to the same fields, so the signature stays valid."""
    rng = random.Random(seed)
    found: set[bytes] = set()
    while len(found) < count:
        out, escape = bytearray(), 0
        for byte in form:
            escape = 3 if byte == ord("%") else max(0, escape - 1)
            if escape == 0 and chr(byte).isalnum() and rng.random() < 0.2:
                hexed = f"%{byte:02X}" if rng.random() < 0.5 else f"%{byte:02x}"
                out += hexed.encode()
            else:
                out.append(byte)
        found.add(bytes(out))
    return sorted(found)


def post(body: bytes) -> InboundRequest:
    return InboundRequest("POST", "notify", FORM, b"", body)


async def test_a_thousand_encodings_of_a_signed_return_posted_to_notify_store_nothing(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    n = alipay(store_url)
    query = make_return(KEY, app_id=APP_ID, out_trade_no="o-1")
    # The genuine query verifies as a return: the variants below are the real thing, re-encoded.
    returned = await n.handle("shop", InboundRequest("GET", "return", {}, query, b""))
    assert returned.status == 200
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        for body in percent_variants(query, VARIANTS):
            assert (await n.handle("shop", post(body))).body == b"fail"
    assert await n.store.find() == []
    assert await n.store.count() == {}
    refused = [r for r in caplog.records if r.getMessage().startswith("refused verified alipay")]
    assert 1 <= len(refused) <= 10  # sampled: the first few of the minute, not one a request
    assert all(getattr(r, "outcome", None) == "not_notification" for r in refused)
    await n.aclose()


async def test_a_thousand_encodings_of_content_out_of_shape_are_one_record(store_url: str) -> None:
    n = alipay(store_url)
    form = make_notify(KEY, app_id=APP_ID, out_trade_no="o-2", total_amount="88.881")  # not 2 decimals
    for body in percent_variants(form, VARIANTS):
        assert (await n.handle("shop", post(body))).body == b"success"  # on record, acknowledged
    (event,) = await n.store.find()
    assert event.state.value == "rejected"
    assert "total_amount" in (event.last_error or "")
    await n.aclose()


async def test_whitespace_and_sign_case_variants_of_a_wechat_v2_notification_are_one_record() -> None:
    n = Notifier("memory://")
    n.add_account("shop", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=key())
    xml = payment(cash_fee="1.00")  # signed, out of shape (cash_fee is whole fen)
    sign = re.search(rb"<sign><!\[CDATA\[([0-9A-F]+)\]\]></sign>", xml)
    assert sign is not None
    variants = [xml, xml.replace(b"><", b">\n  <"), xml.replace(sign.group(1), sign.group(1).lower())]
    for body in variants:
        reply = await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))
        assert b"SUCCESS" in reply.body
    assert len(await n.store.find()) == 1
    await n.aclose()


async def test_encodings_of_a_unionpay_notification_out_of_shape_are_one_record() -> None:
    from _unionpay import MER_ID, PROVIDER, chain, notify

    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, mer_id=MER_ID, **chain().account_settings())
    form = notify(txnType="O1")  # signed by the account's chain, txnType out of shape
    for body in percent_variants(form, 200):
        assert (await n.handle("shop", post(body))).status == 200  # on record, acknowledged
    (event,) = await n.store.find()
    assert "txnType" in (event.last_error or "")
    await n.aclose()


def test_the_rejected_id_is_the_decoded_fields_digest_not_the_bodys() -> None:
    from paynotify import InvalidContent

    exc = InvalidContent("verified, but", raw={"b": "2", "a": "1"})
    same = InvalidContent("verified, but", raw={"a": "1", "b": "2"})
    assert rejected_id("shop", exc, b"one body") == rejected_id("shop", same, b"another body")
    fieldless = InvalidContent("verified, but")  # no fields handed: the body is all there is
    assert rejected_id("shop", fieldless, b"one") != rejected_id("shop", fieldless, b"two")
    assert rejected_id("shop", exc, b"") != make_event_id("shop", "invalid", "")


def test_not_a_notification_is_counted_under_its_own_outcome() -> None:
    assert Outcome("not_notification") is Outcome.NOT_A_NOTIFICATION


def v2_refund_variants(body: bytes, count: int) -> list[bytes]:
    """Copies of an unsigned v2 refund notification varied where nobody signs: a nonce_str of its
    own, an element added, whitespace. The req_info (the only protected part) is untouched."""
    copies = []
    for i in range(count):
        copy = re.sub(rb"<nonce_str>.*?</nonce_str>", f"<nonce_str>n{i}</nonce_str>".encode(), body)
        added = f"{' ' * (i % 3)}<extra_{i % 5}>{i}</extra_{i % 5}></xml>"
        copies.append(copy.replace(b"</xml>", added.encode()))
    return copies


async def test_unsigned_variants_of_a_v2_refund_out_of_shape_or_contradicted_are_one_record_each() -> None:
    from paynotify_wechatpay.testing import WeChatPayV2Emulator, make_v2_refund_notify

    from paynotify.recovery import EmulatorTransport

    emu = WeChatPayV2Emulator()
    emu.pay("order-1", total_fee=10000)
    n = Notifier("memory://", api_transport=EmulatorTransport({"wechatpay-v2.emulator": emu}))
    settings = emu.account_settings()
    n.add_account("shop", "wechatpay-v2", **settings)
    ids = {"appid": settings["appid"], "mch_id": settings["mch_id"], "out_trade_no": "order-1"}
    odd = make_v2_refund_notify(settings["api_key"], **ids, out_refund_no="refund-9", total_fee=10000,
                                refund_fee=100, refund_status="MAYBE")  # fmt: skip
    emu.refund("refund-1", "order-1", refund_fee=1000)
    claimed = emu.notification(refund="refund-1")
    emu.refund("refund-1", "order-1", refund_fee=100)  # WeChat Pay has 1.00: the claim is contradicted

    async def handle(body: bytes) -> bytes:
        return (await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))).body

    async with n:
        for body in v2_refund_variants(odd, 50):
            assert b"SUCCESS" in await handle(body)  # out of shape: on record, acknowledged
        assert len(await n.store.find()) == 1
        for body in v2_refund_variants(claimed, 20):
            assert b"SUCCESS" in await handle(body)  # contradicted by refundquery: on record
        assert len(await n.store.find()) == 2
        assert len([p for p, _ in emu.requests if p.endswith("refundquery")]) == 20


async def test_empty_fields_added_to_signed_content_out_of_shape_are_one_record() -> None:
    # Alipay and WeChat Pay v2 sign without empty values: any name, empty, keeps the signature.
    n = alipay("memory://")
    n.add_account("wechat", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=key())
    form = make_notify(KEY, app_id=APP_ID, out_trade_no="o-3", total_amount="88.881")
    xml = payment(cash_fee="1.00")
    for i in range(100):
        assert (await n.handle("shop", post(form + f"&x{i}=".encode()))).body == b"success"
        body = xml.replace(b"</xml>", f"<x{i}></x{i}></xml>".encode())
        assert b"SUCCESS" in (await n.handle("wechat", InboundRequest("POST", "notify", {}, b"", body))).body
    assert sorted(e.account for e in await n.store.find()) == ["shop", "wechat"]
    await n.aclose()


async def test_empty_elements_added_to_a_signed_v2_notification_naming_no_order_are_one_record() -> None:
    from paynotify_wechatpay._xml import to_xml
    from paynotify_wechatpay.testing import sign_v2

    n = Notifier("memory://")
    n.add_account("shop", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=key())
    fields = {"mch_id": MCH_ID, "contract_code": "C-1", "change_type": "ADD",  # 委托代扣: no order
              "result_code": "SUCCESS", "return_code": "SUCCESS"}  # fmt: skip
    fields["sign"] = sign_v2(fields, key())
    xml = to_xml(fields).encode()
    for i in range(50):
        body = xml.replace(b"</xml>", f"<x{i}></x{i}></xml>".encode())
        assert b"SUCCESS" in (await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))).body
    (event,) = await n.store.find()
    assert event.state.value == "unhandled"
    await n.aclose()
