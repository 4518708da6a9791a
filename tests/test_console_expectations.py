"""The Expectations page (issue 21): open, settled and expired expectations, filtered by account and
state, a page at a time and never deeper than DEEPEST; and per account what the sweeper recovered
(`paynotify_recovered_total`, from the Instrumentation attached to the notifier), on this page and
on the overview. Times are pinned (2026-01-31 08:00 UTC), never today's."""

from __future__ import annotations

import re

import pytest
from _console_data import INJECTION, PASSWORD, USER, Shop, shop
from prometheus_client import CollectorRegistry, generate_latest
from test_console import client

from paynotify import ExpectationState
from paynotify.ops import Instrumentation
from paynotify.ops._console_expectations import DEEPEST, PAGE_SIZE

T0 = 1769846400.0  # 2026-01-31 08:00:00 UTC


async def expecting(
    data: Shop, count: int, account: str = "shop", prefix: str = "order", at: float = T0
) -> None:
    expectations = data.notifier.store.expectations
    for i in range(count):
        await expectations.expect(account, f"{prefix}-{i:04d}", amount="88.88", until=at + 86400, now=at + i)


def rows(html: str) -> list[str]:
    if 'id="expectations"' not in html:
        return []
    table = html.split('id="expectations"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'title="([^"]*)"', table)


async def test_open_settled_and_expired_are_listed_and_filtered() -> None:
    data = await shop()
    expectations = data.notifier.store.expectations
    await expecting(data, 3)
    await expecting(data, 2, account="app", prefix="app-order", at=T0 + 10)
    await expectations.settle("shop", "order-0000", outcome="succeeded", now=T0 + 60)
    expired_state = ExpectationState.EXPIRED
    await expectations.settle("shop", "order-0001", outcome="unpaid", state=expired_state, now=T0 + 90)
    async with client(data, login=(USER, PASSWORD)) as http:
        every = await http.get("/console/expectations")
        shop_only = await http.get("/console/expectations", params={"account": "shop"})
        settled = await http.get("/console/expectations", params={"state": "settled"})
        expired = await http.get("/console/expectations", params={"account": "shop", "state": "expired"})
        opened = await http.get("/console/expectations", params={"state": "open"})
        wrong = await http.get("/console/expectations", params={"state": "paid"})
    assert every.status_code == 200
    assert rows(every.text) == ["app-order-0001", "app-order-0000", "order-0002", "order-0001", "order-0000"]
    assert rows(shop_only.text) == ["order-0002", "order-0001", "order-0000"]
    assert rows(settled.text) == ["order-0000"]
    assert "succeeded" in settled.text
    assert rows(expired.text) == ["order-0001"]
    assert "unpaid" in expired.text
    assert rows(opened.text) == ["app-order-0001", "app-order-0000", "order-0002"]
    assert "88.88" in every.text
    assert "2026-01-31 08:00:02" in every.text  # order-0002's creation
    assert wrong.status_code == 400


async def test_pages_of_fifty_newest_first_never_deeper_than_the_bound() -> None:
    data = await shop()
    await expecting(data, 2 * PAGE_SIZE + 7)
    seen: list[str] = []
    async with client(data, login=(USER, PASSWORD)) as http:
        path: str | None = "/console/expectations"
        while path is not None:
            page = await http.get(path)
            assert page.status_code == 200
            shown = rows(page.text)
            assert len(shown) <= PAGE_SIZE
            seen += shown
            older = re.search(r'id="older" href="([^"]+)"', page.text)
            path = older[1].replace("&amp;", "&") if older else None
        too_deep = await http.get("/console/expectations", params={"start": str(DEEPEST + 1)})
        not_a_number = await http.get("/console/expectations", params={"start": "-5"})
    assert seen == [f"order-{i:04d}" for i in reversed(range(2 * PAGE_SIZE + 7))]
    assert too_deep.status_code == 400
    assert not_a_number.status_code == 400


async def test_an_order_id_is_escaped() -> None:
    data = await shop()
    await data.notifier.store.expectations.expect("shop", INJECTION, amount="1", until=T0 + 60, now=T0)
    async with client(data, login=(USER, PASSWORD)) as http:
        page = await http.get("/console/expectations")
    assert "<script>" not in page.text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page.text


@pytest.mark.parametrize("path", ["/console/expectations", "/console/"])
async def test_the_recovered_count_per_account_is_the_metrics_counter(path: str) -> None:
    data = await shop()
    registry = CollectorRegistry()
    instrumentation = Instrumentation(registry=registry, tracing=False).attach(data.notifier)
    for _ in range(3):  # as the sweeper tells the notifier's observer, per recovered final state
        instrumentation.recovered("alipay", "shop")
    scraped = generate_latest(registry).decode()
    assert 'paynotify_recovered_total{account="shop",provider="alipay"} 3.0' in scraped
    async with client(data, login=(USER, PASSWORD)) as http:
        page = await http.get(path)
    table = page.text.split('id="recovered"', 1)[1].split("</table>", 1)[0]
    assert re.search(r'>shop(</a>)?</td>(<td>alipay</td>)?<td class="n">3</td>', table), table


async def test_without_instrumentation_the_page_says_nothing_counts_them() -> None:
    data = await shop()
    async with client(data, login=(USER, PASSWORD)) as http:
        page = await http.get("/console/expectations")
        overview = await http.get("/console/")
    assert 'id="recovered-none"' in page.text
    assert 'id="recovered-none"' in overview.text
    assert 'id="recovered"' not in page.text


async def test_a_store_without_expectations_says_so() -> None:
    data = await shop()

    class Without:  # a third party's store, without expectations
        def __getattr__(self, name: str) -> object:
            if name == "expectations":
                raise NotImplementedError
            return getattr(real, name)

    real = data.notifier.store
    data.notifier.store = Without()  # type: ignore[assignment]
    async with client(data, login=(USER, PASSWORD)) as http:
        page = await http.get("/console/expectations")
    assert page.status_code == 200
    assert 'id="not-kept"' in page.text
