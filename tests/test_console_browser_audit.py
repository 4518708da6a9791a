"""The attempt history and the audit log in a real browser (headless Chromium): an operator signs in
with the sign-in form, replays a delivered payment, and reads on the event's page the delivery
attempt it made and its own action, then finds it on the Audit page, under their name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from _console_data import PASSWORD, USER, shop
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount
from test_console_browser import Console, aside, browser, shot

from paynotify.cli._serve import background_server
from paynotify.ops._auth import BasicAuth
from paynotify.ops._console import console_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = ["browser"]  # the fixture, shared with tests/test_console_browser.py


@pytest.fixture
def console() -> Iterator[Console]:
    data = aside(shop)
    guard = BasicAuth(USER, SecretStr(PASSWORD))
    app = Starlette(routes=[Mount("/console", app=console_app(data.notifier, auth=guard))])
    with background_server(app) as port:
        yield Console(data, f"http://127.0.0.1:{port}/console")


def test_a_replay_shows_its_attempt_and_its_operator_on_the_event_and_the_audit_page(
    console: Console, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(console.url + "/sign-in")  # a basic-auth 401 is the browser's own dialog: the form
        page.fill("input[name=user]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("#sign-in-button")
        assert page.locator("h1").inner_text() == "Overview"

        done = console.shop.ids["done"]
        page.goto(console.url + f"/events/{done}")
        assert page.locator("#attempts").count() == 0  # recorded straight into the store: none yet
        page.click("text=Replay…")
        page.click("#confirm")
        assert page.locator("h1").inner_text() == "Replay: 1 of 1 delivered"

        page.goto(console.url + f"/events/{done}")
        attempt = page.locator("#attempts tr").nth(1).locator("td")
        assert attempt.nth(1).inner_text() == "delivered"
        assert attempt.nth(2).inner_text().endswith(" ms")
        assert ":" in attempt.nth(4).inner_text()  # the instance: host:pid
        action = page.locator("#operator-actions tr").nth(1).locator("td")
        assert [action.nth(i).inner_text() for i in (1, 2, 3)] == [USER, "replay", "ok"]
        shot(page, "event-attempts")

        page.click("header >> text=Audit")
        assert page.locator("h1").inner_text() == "Audit log"
        entry = page.locator("#audit tr").nth(1).locator("td")
        assert [entry.nth(i).inner_text() for i in (1, 2, 4)] == [USER, "replay", "ok"]
        entry.nth(3).locator("a").click()
        assert done in page.locator("h1").inner_text()
        page.goto(console.url + "/audit")
        shot(page, "audit")
        assert PASSWORD not in page.content()
    finally:
        context.close()
