"""The Expectations and Refused pages in headless Chromium (the fixtures of test_console_browser.py):
what they list, their filters, that nothing a sender wrote runs as script, and that they fit a
390 px phone."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from _console_data import INJECTION, PASSWORD, USER
from test_console_browser import Console, aside, browser, console, page, shot
from test_console_expectations import T0
from test_console_refused import forged, post

from paynotify import ExpectationState

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["browser", "console", "page"]  # fixtures, used by name


def expecting(console: Console) -> None:
    async def make() -> None:
        expectations = console.shop.notifier.store.expectations
        for i in range(3):
            await expectations.expect("shop", f"order-x{i}", amount="88.88", until=T0 + 86400, now=T0 + i)
        await expectations.expect("shop", INJECTION, amount="1.00", until=T0 + 86400, now=T0 + 10)
        await expectations.settle("shop", "order-x0", outcome="succeeded", now=T0 + 60)
        expired = ExpectationState.EXPIRED
        await expectations.settle("shop", "order-x1", outcome="unpaid", state=expired, now=T0 + 90)

    aside(make)


def refusing(console: Console) -> None:
    async def make() -> None:
        await post(console.shop, "/shop/notify", forged(), peer=("203.0.113.7", 1))
        await post(console.shop, "/" + quote(INJECTION.replace("/", ""), safe="") + "/notify", forged())

    aside(make)


def test_the_expectations_page_lists_filters_and_escapes(console: Console, page: Page) -> None:
    expecting(console)
    page.goto(console.url + "/")
    page.click("header >> text=Expectations")
    assert page.locator("h1").inner_text() == "Expectations"
    rows = page.locator("#expectations tr")
    assert rows.count() == 1 + 4
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main img").count() == 0
    assert page.locator("#expectations td.oid", has_text="<script>").count() == 1
    assert page.locator("#recovered-none").count() == 1  # no Instrumentation attached here
    shot(page, "expectations")

    page.select_option("select[name=state]", "expired")
    page.click("form.filters button[type=submit]")
    assert "state=expired" in page.url
    assert page.locator("#expectations tr").count() == 2
    assert "unpaid" in page.locator("#expectations tr").nth(1).inner_text()


def test_the_refused_page_shows_reason_and_peer_never_script(console: Console, page: Page) -> None:
    refusing(console)
    page.goto(console.url + "/")
    page.click("header >> text=Refused")
    assert page.locator("h1").inner_text() == "Refused requests"
    rows = page.locator("#refused tr")
    assert rows.count() == 1 + 2
    texts = rows.all_inner_texts()
    assert any("refused_signature" in t and "203.0.113.7" in t and "alipay" in t for t in texts)
    assert any("unknown_account" in t for t in texts)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main img").count() == 0
    shot(page, "refused")

    page.fill("form.filters input[name=account]", "shop")
    page.click("form.filters button[type=submit]")
    assert page.locator("#refused tr").count() == 2
    assert "refused_signature" in page.locator("#refused tr").nth(1).inner_text()


def test_both_pages_and_the_overview_fit_a_390_px_phone(console: Console, browser: Browser) -> None:
    expecting(console)
    refusing(console)
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD}, viewport={"width": 390, "height": 844}
    )
    try:
        phone = context.new_page()
        for path in ("/expectations", "/refused", "/"):
            phone.goto(console.url + path)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        phone.goto(console.url + "/refused")
        shot(phone, "refused-390")
        phone.goto(console.url + "/expectations")
        shot(phone, "expectations-390")
    finally:
        context.close()
