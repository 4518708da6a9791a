"""The console's reconciliation pages over HTTP: the stored reports by day and account, one report's
discrepancies linked to their events, filters, errors, escaping, and no page without credentials.
tests/test_console_reconciliation_browser.py drives them in Chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from _console_data import PASSWORD, USER
from _ledger_provider import DAY, pin_store_clock
from _recon_console import BEFORE, INJECTED, Reconciled, reconciled
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from paynotify.ops._auth import BasicAuth
from paynotify.ops._console import console_app


@pytest.fixture
async def shop(monkeypatch: pytest.MonkeyPatch) -> Reconciled:
    pin_store_clock(monkeypatch)
    return await reconciled()


def client(s: Reconciled, login: tuple[str, str] | None = (USER, PASSWORD)) -> httpx.AsyncClient:
    guard = BasicAuth(USER, SecretStr(PASSWORD))
    app = Starlette(routes=[Mount("/console", app=console_app(s.notifier, auth=guard))])
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test", auth=login
    )


@pytest.fixture
async def http(shop: Reconciled) -> AsyncIterator[httpx.AsyncClient]:
    async with client(shop) as c:
        yield c


def cells(html: str, row_id: str) -> list[str]:
    row = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', html, re.DOTALL)
    assert row, html
    return [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.DOTALL)
    ]


async def test_the_list_shows_each_day_newest_first_with_its_counts(http: httpx.AsyncClient) -> None:
    page = await http.get("/console/reconciliation")
    assert page.status_code == 200
    assert '<a href="/console/reconciliation">Reconciliation</a>' in page.text  # in the nav
    days = re.findall(r'<tr id="report-shop-([0-9-]+)">', page.text)
    assert days == [DAY.isoformat(), BEFORE.isoformat()]
    # day, account, provider, missing, unknown, amount, state, healed, open, ran, healing
    row = cells(page.text, f"report-shop-{DAY}")
    assert row[:10] == [DAY.isoformat(), "shop", "test-ledger", "2", "1", "1", "1", "0", "5", row[9]]
    assert row[10] == "no"
    assert cells(page.text, f"report-shop-{BEFORE}")[3:9] == ["0", "0", "0", "0", "0", "0"]
    assert f'href="/console/reconciliation/shop/{DAY}"' in page.text


async def test_the_list_filters_by_account_and_day(http: httpx.AsyncClient) -> None:
    since = await http.get("/console/reconciliation", params={"since": DAY.isoformat()})
    assert re.findall(r'<tr id="report-shop-([0-9-]+)">', since.text) == [DAY.isoformat()]
    other = await http.get("/console/reconciliation", params={"account": "nobody"})
    assert other.status_code == 200
    assert "No reconciliation report is stored for these filters" in other.text
    bad = await http.get("/console/reconciliation", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "since must be a day like 2026-01-31" in bad.text


async def test_a_report_lists_its_discrepancies_linked_to_their_events(
    http: httpx.AsyncClient, shop: Reconciled
) -> None:
    page = await http.get(f"/console/reconciliation/shop/{DAY}")
    assert page.status_code == 200
    report = shop.reports[DAY.isoformat()]
    kinds = re.findall(r'<tr class="k-([a-z_]+)">', page.text)
    assert kinds == [d.kind.value for d in report.discrepancies]
    assert sorted(kinds) == ["amount_mismatch", "missing", "missing", "state_mismatch", "unknown"]
    linked = re.findall(r'<a href="/console/events/([0-9a-f]+)">', page.text)
    assert linked == [d.event_id for d in report.discrepancies if d.event_id]
    assert len(linked) == 3  # the mismatches and the unknown one; a missing line has no event
    for event_id in linked:  # each link opens its event's page
        event = await http.get(f"/console/events/{event_id}")
        assert event.status_code == 200
        assert event_id in event.text
    assert re.search(r'id="count-missing">2<', page.text)
    assert INJECTED not in page.text  # a bill's order id is escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


async def test_an_unknown_report_is_404_and_a_bad_day_400(http: httpx.AsyncClient) -> None:
    missing = await http.get("/console/reconciliation/shop/2020-01-01")
    assert missing.status_code == 404
    assert "no reconciliation of &#39;shop&#39; on 2020-01-01 is stored" in missing.text
    assert (await http.get("/console/reconciliation/nobody/2020-01-01")).status_code == 404
    assert (await http.get("/console/reconciliation/shop/01-01-2020")).status_code == 400


async def test_no_reconciliation_page_without_credentials(shop: Reconciled) -> None:
    async with client(shop, login=None) as anonymous:
        for path in ("/console/reconciliation", f"/console/reconciliation/shop/{DAY}"):
            response = await anonymous.get(path)
            assert response.status_code == 401
            assert "o-2" not in response.text
