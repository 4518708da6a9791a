"""Key rotation under load: accounts are swapped with update_account while notifications are in
flight; nothing that the configuration before and after both accept is refused, nothing is lost,
and a retired key stops verifying at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from paynotify_alipay import testing as alipay_testing
from paynotify_wechatpay import testing as wx_testing

from paynotify import Notifier, PaymentResult

APP_ID = "2021000000000042"
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _swap_while(
    notifier: Notifier, name: str, configs: list[dict[str, Any]], done: asyncio.Event
) -> int:
    swaps = 0
    while not done.is_set():
        notifier.update_account(name, **configs[swaps % len(configs)])
        swaps += 1
        await asyncio.sleep(0)
    return swaps


async def test_alipay_rotation_under_load_refuses_nothing_both_configurations_accept() -> None:
    old, new, stranger = (alipay_testing.generate_key() for _ in range(3))
    old_pem, new_pem = alipay_testing.public_key_pem(old), alipay_testing.public_key_pem(new)
    new_cert = alipay_testing.certificate_pem(new)
    notifier = Notifier("memory://")
    notifier.add_account("shop", "alipay", app_id=APP_ID, alipay_public_key=old_pem)
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    # Every configuration of the rotation trusts the old key: notifications it signed never fail.
    rotation = [
        {"app_id": APP_ID, "alipay_public_key": [old_pem, new_pem]},
        {"app_id": APP_ID, "alipay_public_key": [old_pem], "alipay_public_cert": [new_cert]},
        {"app_id": APP_ID, "alipay_public_key": [new_pem, old_pem]},
    ]
    bodies = [alipay_testing.make_notify(old, app_id=APP_ID, out_trade_no=f"o-{i}") for i in range(150)]
    forged = alipay_testing.make_notify(stranger, app_id=APP_ID, out_trade_no="forged")
    done = asyncio.Event()
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        swapper = asyncio.create_task(_swap_while(notifier, "shop", rotation, done))
        replies = await asyncio.gather(
            *(client.post("/shop/notify", content=b, headers=FORM) for b in [*bodies, forged])
        )
        done.set()
        swaps = await swapper
        assert swaps > 10, "the accounts were not swapped while requests were in flight"
        assert [r.text for r in replies[:-1]] == ["success"] * len(bodies)
        assert replies[-1].text == "fail"
        assert len({r.order_id for r in seen}) == len(bodies) == len(seen)
        key_ids = {r.key_id for r in seen}
        assert len(key_ids) == 1  # all verified by the old key ...
        assert None not in key_ids  # ... and each says which

        # Retire the old key: from this moment its notifications are refused.
        notifier.update_account("shop", app_id=APP_ID, alipay_public_cert=new_cert)
        late = alipay_testing.make_notify(old, app_id=APP_ID, out_trade_no="late")
        assert (await client.post("/shop/notify", content=late, headers=FORM)).text == "fail"
        fresh = alipay_testing.make_notify(new, app_id=APP_ID, out_trade_no="fresh")
        assert (await client.post("/shop/notify", content=fresh, headers=FORM)).text == "success"


async def test_wechatpay_v3_migration_to_a_public_key_under_load() -> None:
    certificate = wx_testing.generate_v3_platform_certificate()
    public_key = wx_testing.generate_v3_public_key()
    apiv3_key = wx_testing.generate_apiv3_key()
    base = {"mchid": wx_testing.MCH_ID, "appid": wx_testing.APPID, "apiv3_key": apiv3_key}
    notifier = Notifier("memory://")
    notifier.add_account("wx", "wechatpay-v3", **base, **certificate.account_settings())
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    both = {**base, **certificate.account_settings(), **public_key.account_settings()}
    # During the migration WeChat signs with either key at random: both configurations trust both.
    rotation = [both, {**both, "timestamp_tolerance": 299}]
    notifier.update_account("wx", **both)
    notes = [
        wx_testing.make_v3_transaction_notify(
            certificate if i % 2 else public_key,
            apiv3_key,
            appid=wx_testing.APPID,
            mchid=wx_testing.MCH_ID,
            out_trade_no=f"o-{i}",
        )
        for i in range(100)
    ]
    done = asyncio.Event()
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        swapper = asyncio.create_task(_swap_while(notifier, "wx", rotation, done))
        replies = await asyncio.gather(*(client.post("/wx/notify", content=b, headers=h) for h, b in notes))
        done.set()
        assert await swapper > 10
        assert [r.status_code for r in replies] == [204] * len(notes)
        assert {r.key_id for r in seen} == {certificate.key_id, public_key.key_id}

        # Migration finished: the platform certificate is retired and refused at once.
        notifier.update_account("wx", **base, **public_key.account_settings())
        headers, body = wx_testing.make_v3_transaction_notify(
            certificate, apiv3_key, appid=wx_testing.APPID, mchid=wx_testing.MCH_ID, out_trade_no="late"
        )
        assert (await client.post("/wx/notify", content=body, headers=headers)).status_code == 401
    assert len(seen) == len(notes)
