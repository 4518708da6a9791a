"""The console's search box, money columns, JSON fields and phone width, in headless Chromium
(the fixtures of test_console_browser.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from _console_data import PASSWORD, USER
from test_console_browser import Console, aside, browser, console, page, shot

from paynotify import Kind, PaymentResult, Status, make_event_id

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["browser", "console", "page"]  # fixtures, used by name

LONG_ORDER = "SUBSCRIPTION-RENEWAL-2024-11-30-CUSTOMER-000123456789-MONTHLY-PLAN"
TXN = "2024113022001412345678901234"


def paid(store_console: Console) -> PaymentResult:
    r = PaymentResult(
        provider="alipay", account="shop", kind=Kind.PAYMENT, status=Status.SUCCEEDED,
        provider_status="TRADE_SUCCESS", order_id=LONG_ORDER, transaction_id=TXN,
        amount=Decimal("88.80"), currency="CNY",
        event_id=make_event_id("shop", Kind.PAYMENT, TXN, None, "TRADE_SUCCESS"),
        raw={"out_trade_no": LONG_ORDER,
             "fund_bill_list": [{"amount": "88.80", "fundChannel": "ALIPAYACCOUNT"}]},
    )  # fmt: skip
    aside(lambda: store_console.shop.notifier.store.enqueue(r))
    return r


@pytest.fixture
def searched(console: Console) -> tuple[Console, PaymentResult]:
    return console, paid(console)


def search(page: Page, url: str, text: str) -> list[str]:
    page.goto(url + "/events")
    page.fill("input[name=search]", text)
    page.click("button[type=submit]")
    return page.locator("#events tr td.oid").all_inner_texts() if page.locator("#events").count() else []


def test_the_search_box_finds_by_transaction_id_order_prefix_and_event_id_prefix(
    searched: tuple[Console, PaymentResult], page: Page
) -> None:
    console, r = searched
    assert search(page, console.url, TXN) == [LONG_ORDER]
    row = page.locator("#events tr").nth(1).locator("td").all_inner_texts()
    assert "88.80" in row
    assert "CNY" in row
    assert page.locator("td.oid").first.get_attribute("title") == LONG_ORDER
    assert search(page, console.url, TXN[:-1]) == []  # a transaction id matches whole
    assert search(page, console.url, "subscription-renewal") == [LONG_ORDER]
    assert sorted(search(page, console.url, "ORDER-0")) == ["order-000", "order-001", "order-002"]
    assert search(page, console.url, r.event_id[:8].upper()) == [LONG_ORDER]
    shot(page, "search")


Searched = tuple[Console, PaymentResult]


def test_nested_fields_are_json_on_the_event_page(searched: Searched, page: Page) -> None:
    console, r = searched
    page.goto(console.url + f"/events/{r.event_id}")
    cell = page.locator("#raw tr", has_text="fund_bill_list").locator("pre.json")
    assert json.loads(cell.inner_text()) == r.raw["fund_bill_list"]


def test_the_events_page_fits_a_390_px_phone(searched: Searched, browser: Browser) -> None:
    console, r = searched
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD}, viewport={"width": 390, "height": 844}
    )
    try:
        phone = context.new_page()
        for path in ("/events", f"/events/{r.event_id}"):
            phone.goto(console.url + path)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        phone.goto(console.url + "/events")
        shot(phone, "events-390")
    finally:
        context.close()
