"""The sync-return page: Chinese or English by Accept-Language, Chinese when unsure, replaceable."""

from __future__ import annotations

import httpx
import pytest
from _alipay_keys import APP_ID, key, pem
from paynotify_alipay.testing import make_return

from paynotify import Notifier, PaymentResult, Reply
from paynotify._return_page import page_language


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "zh"),
        ("", "zh"),
        ("fr-FR, de;q=0.8", "zh"),  # neither: Chinese
        ("*", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en;q=0.5, zh-TW;q=0.9", "zh"),
        ("zh;q=0.3, en;q=0.7", "en"),
        ("en, zh", "en"),  # same q: the earlier one
        ("zh;q=0, en;q=0.1", "en"),  # q=0 means "not this one"
        ("en;q=oops, zh;q=0.2", "zh"),
    ],
)
def test_page_language(header: str | None, language: str) -> None:
    assert page_language(header) == language


async def _get_return(notifier: Notifier, query: str, language: str | None) -> httpx.Response:
    headers = {"accept-language": language} if language is not None else {}
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(f"/shop/return?{query}", headers=headers)


def _shop() -> Notifier:
    notifier = Notifier("memory://")
    notifier.add_account("shop", "alipay", app_id=APP_ID, alipay_public_key=pem())
    return notifier


@pytest.mark.parametrize(
    ("language", "expected", "content_language"),
    [
        (None, "正在确认您的付款", "zh-CN"),
        ("zh-CN", "正在确认您的付款", "zh-CN"),
        ("en-GB", "confirming", "en"),
    ],
)
async def test_the_page_is_in_the_browsers_language(
    language: str | None, expected: str, content_language: str
) -> None:
    notifier = _shop()
    query = make_return(key(), app_id=APP_ID, out_trade_no="o-1").decode("ascii")
    page = await _get_return(notifier, query, language)
    await notifier.aclose()
    assert page.status_code == 200
    assert expected in page.text
    assert "o-1" in page.text
    assert page.headers["content-language"] == content_language
    assert page.headers["vary"] == "Accept-Language"


@pytest.mark.parametrize(("language", "expected"), [("en", "could not be verified"), (None, "无法验证")])
async def test_the_failure_page_is_in_the_browsers_language(language: str | None, expected: str) -> None:
    notifier = _shop()
    query = make_return(key(), app_id=APP_ID, out_trade_no="o-1").decode("ascii") + "&forged=1"
    page = await _get_return(notifier, query, language)
    await notifier.aclose()
    assert page.status_code == 400
    assert expected in page.text
    assert b"success" not in page.content


async def test_on_return_still_replaces_the_page() -> None:
    notifier = _shop()

    @notifier.on_return
    def page(result: PaymentResult) -> Reply:
        return Reply.html(f"<p>mine {result.order_id}</p>")

    query = make_return(key(), app_id=APP_ID, out_trade_no="o-2").decode("ascii")
    reply = await _get_return(notifier, query, "en")
    await notifier.aclose()
    assert reply.text == "<p>mine o-2</p>"


# -- security headers (issue 25): a page of paynotify's is never framed, sniffed or cached ---------

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}


async def _pages() -> list[httpx.Response]:
    """The thank-you page, the failure page, and the redirect to a return_url."""
    notifier = _shop()
    redirecting = Notifier("memory://")
    redirecting.add_account(
        "shop",
        "alipay",
        app_id=APP_ID,
        alipay_public_key=pem(),
        return_url="https://shop.example/o/{order_id}",
    )
    query = make_return(key(), app_id=APP_ID, out_trade_no="o-3").decode("ascii")
    pages = [
        await _get_return(notifier, query, "en"),
        await _get_return(notifier, query + "&forged=1", "en"),
        await _get_return(redirecting, query, "en"),
    ]
    await notifier.aclose()
    await redirecting.aclose()
    assert [p.status_code for p in pages] == [200, 400, 303]
    return pages


@pytest.mark.parametrize("name", sorted(HEADERS))
async def test_every_return_page_and_redirect_carries(name: str) -> None:
    for page in await _pages():
        assert page.headers.get(name) == HEADERS[name], (page.status_code, name)
