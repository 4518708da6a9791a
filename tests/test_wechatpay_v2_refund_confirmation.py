"""confirm_v2_refund: a v2 refund notification (not authenticated) against its signed refundquery
answer: confirmed when both state the same refund, contradicted (with the reason) otherwise,
a real block splice included."""

from __future__ import annotations

import base64
import re

import pytest
from _query_emulator_send import emulator_send
from paynotify_wechatpay import WeChatPayV2Provider, WeChatPayV2Settings, confirm_v2_refund
from paynotify_wechatpay._v2_refund_crypto import BLOCK, decrypt_req_info, refund_key
from paynotify_wechatpay.testing import WeChatPayV2Emulator, make_v2_refund_notify

from paynotify import Account, InboundRequest, PaymentResult, QueryAnswer

PROVIDER = WeChatPayV2Provider()
API = PROVIDER.api()
NOW = 1_700_000_000
REQ_INFO = re.compile(rb"<req_info><!\[CDATA\[([^\]]*)\]\]></req_info>")


def setup() -> tuple[WeChatPayV2Emulator, Account[WeChatPayV2Settings]]:
    emu = WeChatPayV2Emulator(clock=lambda: NOW)
    emu.pay("order-1", total_fee=10000)
    return emu, Account("shop", PROVIDER, WeChatPayV2Settings(**emu.account_settings()))


def parse(body: bytes, acct: Account[WeChatPayV2Settings]) -> PaymentResult:
    result = PROVIDER.parse(InboundRequest("POST", "notify", {"content-type": "text/xml"}, body=body), acct)
    assert isinstance(result, PaymentResult)
    return result


async def asked(emu: WeChatPayV2Emulator, acct: Account[WeChatPayV2Settings], refund_id: str) -> QueryAnswer:
    async with emulator_send(emu) as send:
        return await API.query_refund(send, acct, refund_id)


async def test_a_genuine_refund_is_confirmed() -> None:
    emu, acct = setup()
    emu.refund("refund-1", "order-1", refund_fee=1000)
    notified = parse(emu.notification(refund="refund-1"), acct)
    decision = confirm_v2_refund(notified, await asked(emu, acct, "refund-1"))
    assert decision.confirmed
    assert decision.reason == "refund 'refund-1' SUCCESS confirmed by WeChat Pay's refundquery"


async def test_another_amount_than_wechat_pays_is_contradicted() -> None:
    emu, acct = setup()
    emu.refund("refund-1", "order-1", refund_fee=100)
    # What a splice that keeps every local rule decrypts to: the same refund, 10.00 instead of 1.00.
    claimed = make_v2_refund_notify(
        emu.api_key, appid=emu.appid, mch_id=emu.mch_id, out_trade_no="order-1", out_refund_no="refund-1",
        total_fee=10000, refund_fee=1000, success_time=emu.refunds["refund-1"]["success_time"],
    )  # fmt: skip
    decision = confirm_v2_refund(parse(claimed, acct), await asked(emu, acct, "refund-1"))
    assert not decision.confirmed
    assert "refund_amount '10.00' (WeChat Pay: '1.00')" in decision.reason
    assert "settlement" not in decision.reason  # only what the results say, not every raw field


@pytest.mark.parametrize(("notified_status", "actual"), [("SUCCESS", "CHANGE"), ("SUCCESS", "PROCESSING")])
async def test_another_state_than_wechat_pays_is_contradicted(notified_status: str, actual: str) -> None:
    emu, acct = setup()
    emu.refund("refund-1", "order-1", refund_fee=1000, refund_status=notified_status)
    notified = parse(emu.notification(refund="refund-1"), acct)
    emu.refund("refund-1", "order-1", refund_fee=1000, refund_status=actual)
    decision = confirm_v2_refund(notified, await asked(emu, acct, "refund-1"))
    assert not decision.confirmed
    assert decision.reason == (
        f"refund 'refund-1': the notification says {notified_status}, WeChat Pay's refundquery says {actual}"
    )


async def test_another_success_time_is_contradicted() -> None:
    emu, acct = setup()
    emu.refund("refund-1", "order-1", refund_fee=1000)
    notified = parse(emu.notification(refund="refund-1"), acct)
    emu.refunds["refund-1"]["success_time"] = "2023-11-15 06:13:21"
    decision = confirm_v2_refund(notified, await asked(emu, acct, "refund-1"))
    assert not decision.confirmed
    assert "refunded_at" in decision.reason


def _req_info(body: bytes) -> bytes:
    found = REQ_INFO.search(body)
    assert found is not None
    return base64.b64decode(found.group(1))


async def test_a_real_splice_that_passes_every_local_check_is_contradicted() -> None:
    """Blocks of two genuine refunds of the same layout make a refund request nobody sent: it parses
    (ECB has no MAC), and WeChat Pay's signed answer knows no such refund."""
    emu, acct = setup()
    one, two = "refund-aaaaaaaaaaaaaaaa-1111", "refund-bbbbbbbbbbbbbbbb-2222"
    emu.refund(one, "order-1", refund_fee=1000)
    emu.refund(two, "order-1", refund_fee=1000)
    first, second = emu.notification(refund=one), emu.notification(refund=two)
    a, b = _req_info(first), _req_info(second)
    key = refund_key(emu.api_key.encode())
    plaintext = decrypt_req_info(base64.b64encode(a).decode(), key)
    start = plaintext.index(b"<out_refund_no><![CDATA[") + len(b"<out_refund_no><![CDATA[") + 17
    blocks = [(b if i == start // BLOCK else a)[i * BLOCK : (i + 1) * BLOCK] for i in range(len(a) // BLOCK)]
    spliced = base64.b64encode(b"".join(blocks))
    forged = REQ_INFO.sub(b"<req_info><![CDATA[" + spliced + b"]]></req_info>", first)
    result = parse(forged, acct)  # every local rule holds
    assert result.refund_id == "refund-aaaaaaaaaabbbbbb-2222"
    decision = confirm_v2_refund(result, await asked(emu, acct, result.refund_id))
    assert not decision.confirmed
    assert decision.reason == "WeChat Pay's refundquery knows no refund 'refund-aaaaaaaaaabbbbbb-2222'"
    # The genuine ones still are confirmed.
    assert confirm_v2_refund(parse(first, acct), await asked(emu, acct, one)).confirmed


async def test_only_a_refund_notification_can_be_confirmed() -> None:
    emu, acct = setup()
    payment = parse(emu.notification(order="order-1"), acct)
    with pytest.raises(ValueError, match="refund notification"):
        confirm_v2_refund(payment, QueryAnswer(result=None))
