"""The Notifier keeps each account's upkeep running while it is open (`ProviderApi.upkeep`): a WeChat
Pay v3 account in certificate mode with its merchant key downloads its platform certificates at
open, adopts a new one when a notification names an unknown serial, follows `update_account`,
and opens and serves though WeChat Pay cannot be reached."""

from __future__ import annotations

import asyncio
import time

import httpx
from paynotify_wechatpay._v3_certificates import CertificateRefresher
from paynotify_wechatpay.testing import WeChatPayV3Emulator
from test_query_v3 import emulator, platform

from paynotify import Notifier, PaymentResult
from paynotify.recovery import EmulatorTransport

CERTIFICATES = ("GET", "/v3/certificates")
HOST = "wechatpay-v3.emulator"


def shop(emu: WeChatPayV3Emulator, **overrides: object) -> tuple[Notifier, list[PaymentResult]]:
    notifier = Notifier("memory://", api_transport=EmulatorTransport({HOST: emu}))
    settings = {**emu.account_settings(trust="download"), **overrides}
    notifier.add_account("shop", "wechatpay-v3", **{k: v for k, v in settings.items() if v is not None})
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    return notifier, delivered


async def post(notifier: Notifier, emu: WeChatPayV3Emulator, order: str) -> int:
    headers, body = emu.notification(order=order)
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as client:
        return (await client.post("/shop/notify", content=body, headers=headers)).status_code


async def test_certificates_are_downloaded_at_open_and_notifications_then_verify() -> None:
    emu = emulator(clock=time.time)
    emu.pay("order-1")
    notifier, delivered = shop(emu)
    assert await post(notifier, emu, "order-1") == 401  # before open: no certificate is trusted yet
    async with notifier:
        assert emu.requests.count(CERTIFICATES) == 1
        assert await post(notifier, emu, "order-1") in (200, 204)
    assert [r.key_id for r in delivered] == [platform().key_id]


async def test_an_unknown_serial_is_refused_then_adopted_for_the_resend() -> None:
    emu = emulator(clock=time.time)
    notifier, delivered = shop(emu)
    async with notifier:
        new = emu.rotate_certificate()  # WeChat Pay now signs with a certificate issued after open
        emu.pay("order-2")
        # The refresher allows one download a minute; the first was at open.
        assert notifier._upkeep is not None
        refresher = notifier._upkeep._running["shop"][1]
        assert isinstance(refresher, CertificateRefresher)
        refresher._last = time.monotonic() - 61
        assert await post(notifier, emu, "order-2") == 401  # refused now; WeChat Pay resends
        await refresher.wait()
        assert emu.requests.count(CERTIFICATES) == 2
        assert await post(notifier, emu, "order-2") in (200, 204)
    assert [r.key_id for r in delivered] == [new.key_id]


async def test_update_account_keeps_the_downloaded_certificates_without_a_download() -> None:
    emu = emulator(clock=time.time)
    emu.pay("order-3")
    notifier, delivered = shop(emu)
    async with notifier:
        notifier.update_account("shop", "wechatpay-v3", **{
            k: v for k, v in emu.account_settings(trust="download").items() if v is not None
        })  # fmt: skip
        assert await post(notifier, emu, "order-3") in (200, 204)
        assert emu.requests.count(CERTIFICATES) == 1
    assert len(delivered) == 1


async def test_an_account_added_after_open_gets_its_upkeep() -> None:
    emu = emulator(clock=time.time)
    emu.pay("order-4")
    notifier = Notifier("memory://", api_transport=EmulatorTransport({HOST: emu}))
    async with notifier:
        notifier.add_account("late", "wechatpay-v3", **{
            k: v for k, v in emu.account_settings(trust="download").items() if v is not None
        })  # fmt: skip
        for _ in range(100):
            if emu.requests.count(CERTIFICATES):
                break
            await asyncio.sleep(0.01)
        assert emu.requests.count(CERTIFICATES) == 1


async def test_wechat_pay_unreachable_never_stops_the_notifier_from_opening() -> None:
    emu = emulator(clock=time.time)
    emu.down = True
    notifier, _ = shop(emu)
    started = time.monotonic()
    async with notifier:
        assert time.monotonic() - started < notifier.options.query_timeout + 1
        # Asked within the Send's bounds (query_attempts), then served with what it has.
        assert 1 <= emu.requests.count(CERTIFICATES) <= notifier.options.query_attempts
