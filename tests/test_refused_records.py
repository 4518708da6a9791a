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
