"""WeChat Pay v2 refund notifications are confirmed through refundquery before delivery, by default
(issue 25 item 1): their req_info is AES-ECB without a MAC, so blocks of two genuine refunds splice
into a third that decrypts and parses. Through the whole route, against the emulator."""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from paynotify_wechatpay._v2_refund_crypto import BLOCK
from paynotify_wechatpay.testing import WeChatPayV2Emulator

from paynotify import EventState, InboundRequest, Kind, Notifier, PaymentResult
from paynotify.recovery import EmulatorTransport

REQ_INFO = re.compile(rb"<req_info><!\[CDATA\[([^\]]*)\]\]></req_info>")
ACK = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


@dataclass
class Shop:
    emu: WeChatPayV2Emulator
    notifier: Notifier
    client: httpx.AsyncClient
    delivered: list[PaymentResult]

    async def post(self, body: bytes) -> httpx.Response:
        return await self.client.post("/shop/notify", content=body, headers={"content-type": "text/xml"})

    def refund_queries(self) -> list[str]:
        return [asked for path, asked in self.emu.requests if path.endswith("refundquery")]


async def shop_with(**settings: object) -> AsyncIterator[Shop]:
    emu = WeChatPayV2Emulator()
    emu.pay("order-1", total_fee=10000)
    notifier = Notifier("memory://", api_transport=EmulatorTransport({"wechatpay-v2.emulator": emu}))
    notifier.add_account("shop", "wechatpay-v2", **{**emu.account_settings(), **settings})
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with notifier, httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as client:
        yield Shop(emu, notifier, client, delivered)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    async for s in shop_with():
        yield s


async def test_a_genuine_refund_is_asked_about_then_delivered_once(shop: Shop) -> None:
    shop.emu.refund("refund-1", "order-1", refund_fee=1000)
    for _ in range(2):  # WeChat Pay's resend: acknowledged, neither delivered nor asked about again
        response = await shop.post(shop.emu.notification(refund="refund-1"))
        assert (response.status_code, response.content) == (200, ACK)
    assert [(r.kind, r.refund_id, str(r.refund_amount)) for r in shop.delivered] == [
        (Kind.REFUND, "refund-1", "10.00")
    ]
    assert shop.refund_queries() == ["refund-1"]


async def test_payments_are_not_asked_about(shop: Shop) -> None:
    assert (await shop.post(shop.emu.notification(order="order-1"))).content == ACK
    assert [r.kind for r in shop.delivered] == [Kind.PAYMENT]
    assert shop.emu.requests == []  # a signed payment notification is authenticated already


async def test_a_refund_wechat_pay_contradicts_is_recorded_rejected_not_delivered(shop: Shop) -> None:
    shop.emu.refund("refund-1", "order-1", refund_fee=1000)
    claimed = shop.emu.notification(refund="refund-1")  # what a splice keeping every local rule says
    shop.emu.refund("refund-1", "order-1", refund_fee=100)  # what WeChat Pay has: 1.00, not 10.00
    response = await shop.post(claimed)
    assert response.content == ACK  # on record; the resend would be refused the same way
    assert shop.delivered == []
    [event] = await shop.notifier.store.find(states=[EventState.REJECTED])
    assert event.kind == "unhandled"  # kept under an id of its own, not the genuine refund's
    assert event.event_id != (await parse_result(shop, claimed)).event_id
    assert "refund_amount '10.00' (WeChat Pay: '1.00')" in (event.last_error or "")


async def test_without_an_answer_the_provider_is_asked_to_resend(shop: Shop) -> None:
    shop.emu.refund("refund-1", "order-1", refund_fee=1000)
    body = shop.emu.notification(refund="refund-1")
    shop.emu.down = True
    response = await shop.post(body)
    assert b"FAIL" in response.content
    assert shop.delivered == []
    assert await shop.notifier.store.find() == []  # nothing believed, nothing half-written
    shop.emu.down = False
    assert (await shop.post(body)).content == ACK  # WeChat Pay's resend, once it can be asked
    assert [r.refund_id for r in shop.delivered] == ["refund-1"]


async def test_an_answer_that_does_not_verify_is_no_confirmation(shop: Shop) -> None:
    shop.emu.refund("refund-1", "order-1", refund_fee=1000)
    shop.emu.answer_key = "k" * 32  # a forger's answer: signed, but not with the merchant's key
    assert (await shop.post(shop.emu.notification(refund="refund-1"))).content != ACK
    assert shop.delivered == []


async def test_the_opt_out_believes_the_notification_alone() -> None:
    async for shop in shop_with(confirm_refunds=False):
        shop.emu.refund("refund-1", "order-1", refund_fee=1000)
        assert (await shop.post(shop.emu.notification(refund="refund-1"))).content == ACK
        assert [r.refund_id for r in shop.delivered] == ["refund-1"]
        assert shop.emu.requests == []


async def parse_result(shop: Shop, body: bytes) -> PaymentResult:
    account = shop.notifier.accounts["shop"]
    result = account.provider.parse(InboundRequest("POST", "notify", {}, body=body), account)
    assert isinstance(result, PaymentResult)
    return result


def _req_info(body: bytes) -> bytes:
    found = REQ_INFO.search(body)
    assert found is not None
    return base64.b64decode(found.group(1))


async def test_the_splice_fuzz_delivers_no_forged_refund(shop: Shop) -> None:
    """Every block-wise mix of three genuine refunds of one order (same layout). Those that decrypt
    and parse claim refunds nobody asked for, or another refund's amount or id: none is delivered.
    A mix can decrypt to exactly a genuine refund: WeChat Pay confirms that one, and it is delivered
    once, as its own notification would be."""
    ids = ["refund-aaaaaaaaaaaaaaaa-1111", "refund-bbbbbbbbbbbbbbbb-2222", "refund-cccccccccccccccc-3333"]
    for number, refund_id in enumerate(ids):
        shop.emu.refund(refund_id, "order-1", refund_fee=100 * (number + 1))
    genuine = [shop.emu.notification(refund=refund_id) for refund_id in ids]
    real = {r.event_id: r for r in [await parse_result(shop, body) for body in genuine]}
    cipher = [_req_info(body) for body in genuine]
    blocks = len(cipher[0]) // BLOCK
    assert all(len(c) == len(cipher[0]) for c in cipher)
    tried = 0
    for first, second in itertools.permutations(range(3), 2):
        for cut in range(1, blocks):
            for take in (1, 2):  # the second refund's blocks [cut, cut + take)
                mixed = b"".join(
                    (cipher[second] if cut <= i < cut + take else cipher[first])[i * BLOCK : (i + 1) * BLOCK]
                    for i in range(blocks)
                )
                forged = REQ_INFO.sub(
                    b"<req_info><![CDATA[" + base64.b64encode(mixed) + b"]]></req_info>", genuine[first]
                )
                tried += 1
                await shop.post(forged)
    assert tried > 100
    # 0 forged dispatches: whatever was delivered is a genuine refund, exactly as WeChat Pay has it.
    assert all(r == real.get(r.event_id) for r in shop.delivered), [r.refund_id for r in shop.delivered]
    # Some mixes decrypt and parse (ECB has no MAC): those are what the confirmation stopped.
    rejected = await shop.notifier.store.find(states=[EventState.REJECTED], limit=1000)
    assert any("refundquery" in (event.last_error or "") for event in rejected)
    for body in genuine:
        assert (await shop.post(body)).content == ACK
    # No mix blocked a genuine refund, none was delivered twice.
    assert sorted(r.refund_id or "" for r in shop.delivered) == ids
