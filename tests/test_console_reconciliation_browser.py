"""The console's reconciliation pages in headless Chromium (the fixtures of test_console_browser.py):
from the nav to the list, to one day's report, to the event of a discrepancy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from _console_data import PASSWORD, USER
from _ledger_provider import DAY, pin_store_clock
from _recon_console import BEFORE, INJECTED, Reconciled, reconciled
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount
from test_console_browser import aside, browser, page, shot

from paynotify.cli._serve import background_server
from paynotify.ops._auth import BasicAuth
from paynotify.ops._console import console_app

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["browser", "page"]  # fixtures, used by name


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Reconciled, str]]:
    pin_store_clock(monkeypatch)
    data = aside(reconciled)
    guard = BasicAuth(USER, SecretStr(PASSWORD))
    app = Starlette(routes=[Mount("/console", app=console_app(data.notifier, auth=guard))])
    with background_server(app) as port:
        yield data, f"http://127.0.0.1:{port}/console"


def test_from_the_nav_to_a_days_report_to_the_event_of_a_discrepancy(
    served: tuple[Reconciled, str], page: Page
) -> None:
    data, url = served
    page.goto(url + "/")
    page.click("header >> text=Reconciliation")
    assert page.locator("h1").inner_text() == "Reconciliation"
    rows = page.locator("#reports tr")
    assert rows.count() == 1 + 2
    assert rows.nth(1).locator("td").first.inner_text() == DAY.isoformat()
    assert rows.nth(2).locator("td").first.inner_text() == BEFORE.isoformat()
    shot(page, "reconciliations")
    page.click(f"#reports >> text={DAY.isoformat()}")
    assert page.locator("h1").inner_text() == f"Reconciliation: shop, {DAY}"
    assert page.locator("#count-missing").inner_text() == "2"
    assert page.locator("#discrepancies tr").count() == 1 + 5
    # The injected order id is text, not markup: no image was made of it.
    assert page.locator("#discrepancies img").count() == 0
    assert INJECTED in page.locator("#discrepancies").inner_text()
    shot(page, "reconciliation")
    mismatch = page.locator("#discrepancies tr.k-amount_mismatch")
    event_id = mismatch.locator("a").inner_text()
    expected = next(d.event_id for d in data.reports[DAY.isoformat()].discrepancies if d.event_id)
    assert event_id == expected
    mismatch.locator("a").click()
    assert event_id in page.locator("h1").inner_text()
    assert "o-2" in page.content()
