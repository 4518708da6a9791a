"""WeChat Pay platform certificates downloaded from the emulator's /v3/certificates: decrypted with the
APIv3 key, their answer verified, adopted without a restart, refreshed on an unknown serial
(single-flight, at most once a minute); never adopted from an answer that fails a check."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _query_emulator_send import app_client, emulator_send
from paynotify_wechatpay import WeChatPayV3Settings
from paynotify_wechatpay._v3_certificates import CertificateRefresher
from paynotify_wechatpay.testing import WeChatPayV3Emulator, generate_apiv3_key
from test_query_v3 import API, PROVIDER, account_of, apiv3, emulator, platform, public

from paynotify import (
    Account,
    ApiRequest,
    ApiResponse,
    InboundRequest,
    MemoryStore,
    Notifier,
    PaymentResult,
    ProviderApiError,
    Send,
    VerificationError,
)

CERTIFICATES = ("GET", "/v3/certificates")


def parse(emu: WeChatPayV3Emulator, acct: Account[WeChatPayV3Settings], order: str) -> PaymentResult:
    headers, body = emu.notification(order=order)
    request = InboundRequest("POST", "notify", {k.lower(): v for k, v in headers.items()}, body=body)
    result = PROVIDER.parse(request, acct)
    assert isinstance(result, PaymentResult)
    return result


def downloads(emu: WeChatPayV3Emulator) -> int:
    return emu.requests.count(CERTIFICATES)


async def test_an_account_with_no_wechat_key_downloads_its_certificates_and_then_verifies() -> None:
    emu = emulator()
    acct = account_of(emu, trust="download")
    emu.pay("order-1")
    with pytest.raises(VerificationError, match=r"configured: none"):
        parse(emu, acct, "order-1")
    async with emulator_send(emu) as send:
        refresher = await API.watch_certificates(send, lambda: acct)
        assert refresher is not None
        await refresher.aclose()
    assert downloads(emu) == 1
    assert [key.key_id for key in acct.settings.certificates.downloaded] == [platform().key_id]
    assert parse(emu, acct, "order-1").key_id == platform().key_id


async def test_download_certificates_returns_them_without_adopting() -> None:
    emu = emulator()
    rotated = emu.rotate_certificate()
    acct = account_of(emu, trust="download")
    async with emulator_send(emu) as send:
        keys = await API.download_certificates(send, acct)
    assert [key.key_id for key in keys] == [platform().key_id, rotated.key_id]
    assert acct.settings.certificates.downloaded == ()


async def test_a_public_key_account_downloads_nothing() -> None:
    emu = emulator(signing_key=public())
    acct = account_of(emu)
    async with emulator_send(emu) as send:
        assert await API.watch_certificates(send, lambda: acct) is None
    assert emu.requests == []


async def test_an_unknown_serial_in_a_notification_refreshes_once_and_it_then_verifies() -> None:
    emu = emulator()
    acct = account_of(emu)  # trusts the configured certificate
    now = [0.0]
    async with emulator_send(emu) as send:
        refresher = CertificateRefresher(API.download_certificates, send, lambda: acct, clock=lambda: now[0])
        refresher.watch()
        assert await refresher.refresh()
        assert downloads(emu) == 1
        now[0] = 100.0  # over a minute later
        new = emu.rotate_certificate()  # WeChat Pay signs with a certificate the account has never seen
        emu.pay("order-2")
        emu.stall = asyncio.Event()  # the download answers only once every delivery below was refused
        # Many deliveries at once, from worker threads as a sync WSGI server would run them.
        results = await asyncio.gather(
            *(asyncio.to_thread(parse, emu, acct, "order-2") for _ in range(8)), return_exceptions=True
        )
        assert all(isinstance(r, VerificationError) for r in results)
        emu.stall.set()
        await refresher.wait()
        assert downloads(emu) == 2  # one download for all eight, not eight
        assert parse(emu, acct, "order-2").key_id == new.key_id
        await refresher.aclose()


async def test_concurrent_refreshes_share_one_download() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.stall = asyncio.Event()
    sent = asyncio.Event()
    async with emulator_send(emu) as through:

        async def send(request: ApiRequest) -> ApiResponse:
            sent.set()
            return await through(request)

        refresher = CertificateRefresher(API.download_certificates, send, lambda: acct, interval=0)
        calls = [asyncio.ensure_future(refresher.refresh()) for _ in range(10)]
        await sent.wait()  # the first download is under way; every caller has started
        emu.stall.set()
        assert await asyncio.gather(*calls) == [True] * 10
    assert downloads(emu) == 1
    assert refresher.downloads == 1


async def test_at_most_one_download_a_minute_however_many_unknown_serials() -> None:
    emu = emulator()
    acct = account_of(emu)
    now = [100.0]
    async with emulator_send(emu) as send:
        refresher = CertificateRefresher(API.download_certificates, send, lambda: acct, clock=lambda: now[0])
        refresher.watch()
        assert await refresher.refresh()
        emu.rotate_certificate()
        emu.pay("order-3")
        now[0] += 59.0
        for serial in ("FORGED1", "FORGED2"):
            acct.settings.keyring.find(serial)  # a forged notification's serial: no download yet
        await refresher.wait()
        assert downloads(emu) == 1
        with pytest.raises(VerificationError):
            parse(emu, acct, "order-3")
        await refresher.wait()
        assert downloads(emu) == 1
        now[0] += 1.0  # a minute after the last download
        with pytest.raises(VerificationError):
            parse(emu, acct, "order-3")
        await refresher.wait()
        assert downloads(emu) == 2
        assert parse(emu, acct, "order-3").key_id == emu.signing_key.key_id
        await refresher.aclose()


async def _refused(emu: WeChatPayV3Emulator, acct: Account[WeChatPayV3Settings], send: Send) -> Any:
    refresher = CertificateRefresher(API.download_certificates, send, lambda: acct)
    assert not await refresher.refresh()
    assert acct.settings.certificates.downloaded == ()
    return refresher.last_error


async def test_a_tampered_download_is_refused_and_nothing_adopted() -> None:
    emu = emulator()
    emu.rotate_certificate()
    acct = account_of(emu, platform_certificates=[platform().certificate_pem])
    emu.signing_key = platform()  # signed by the configured one: verified before it is read
    emu.tamper = lambda body: body.replace(b'"data":[{', b'"data":[ {')
    async with emulator_send(emu) as send:
        error = await _refused(emu, acct, send)
    assert isinstance(error, VerificationError)
    assert "does not verify" in str(error)


async def test_a_download_signed_by_a_key_it_does_not_contain_is_refused() -> None:
    emu = emulator()
    acct = account_of(emu, trust="download")
    emu.signing_key = platform("stranger")  # not listed, not configured
    async with emulator_send(emu) as send:
        error = await _refused(emu, acct, send)
    assert isinstance(error, VerificationError)
    assert "names no trusted key" in str(error)


async def test_certificates_not_encrypted_with_the_accounts_apiv3_key_are_refused() -> None:
    emu = emulator(apiv3_key=generate_apiv3_key())  # someone else's APIv3 key sealed the list
    acct = account_of(emu, trust="download", apiv3_key=apiv3())
    async with emulator_send(emu) as send:
        error = await _refused(emu, acct, send)
    assert isinstance(error, VerificationError)
    assert "does not decrypt with this account's apiv3_key" in str(error)


async def test_a_download_the_provider_refuses_is_an_api_error() -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.down = True
    async with emulator_send(emu) as send:
        error = await _refused(emu, acct, send)
    assert isinstance(error, ProviderApiError)


async def test_through_the_notifier_a_new_certificate_is_adopted_without_a_restart() -> None:
    emu = emulator()
    emu.pay("order-4")
    delivered: list[PaymentResult] = []
    notifier = Notifier(MemoryStore())
    notifier.add_account("shop", PROVIDER, **emu.account_settings())
    notifier.subscribe(delivered.append)
    async with notifier, emulator_send(emu) as send, app_client(notifier.asgi()) as client:
        refresher = await API.watch_certificates(send, lambda: notifier.accounts["shop"], interval=0)
        assert refresher is not None
        emu.rotate_certificate()
        assert await emu.push(client, "/shop/notify", order="order-4") == [401]
        await refresher.wait()
        assert await emu.push(client, "/shop/notify", order="order-4", copies=2) == [204, 204]
        await refresher.aclose()
    assert [r.order_id for r in delivered] == ["order-4"]
    assert delivered[0].key_id == emu.signing_key.key_id


async def test_after_update_account_watch_again_keeps_the_downloaded_certificates() -> None:
    emu = emulator()
    emu.pay("order-5")
    notifier = Notifier(MemoryStore())
    notifier.add_account("shop", PROVIDER, **emu.account_settings(trust="download"))
    async with emulator_send(emu) as send:
        refresher = await API.watch_certificates(send, lambda: notifier.accounts["shop"])
        assert refresher is not None
        notifier.update_account("shop", PROVIDER, **emu.account_settings(trust="download"))  # a rotation
        with pytest.raises(VerificationError, match=r"configured: none"):
            parse(emu, notifier.accounts["shop"], "order-5")  # a new holder: nothing downloaded yet
        refresher.watch()
        assert parse(emu, notifier.accounts["shop"], "order-5").key_id == platform().key_id
        await refresher.aclose()
    assert downloads(emu) == 1
