"""Signing in to a bearer-token console from a plain browser (headless Chromium, no credentials of
its own): the 401 is the sign-in form, the token typed in opens a session cookie, a retry goes
through with that session's CSRF token, and signing out closes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from _console_data import shop
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount
from test_console import TOKEN
from test_console_browser import Console, aside, browser, shot

from paynotify import EventState
from paynotify.cli._serve import background_server
from paynotify.ops._auth import BearerToken
from paynotify.ops._console import console_app
from paynotify.ops._sessions import COOKIE

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = ["browser"]  # the fixture, shared with tests/test_console_browser.py


@pytest.fixture
def console() -> Iterator[Console]:
    data = aside(shop)
    app = Starlette(
        routes=[Mount("/console", app=console_app(data.notifier, auth=BearerToken(SecretStr(TOKEN))))]
    )
    with background_server(app) as port:
        yield Console(data, f"http://127.0.0.1:{port}/console")


def test_sign_in_retry_and_sign_out_in_a_plain_browser(console: Console, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        first = page.goto(console.url + "/")
        assert first is not None
        assert first.status == 401
        assert page.locator("h1").inner_text() == "Sign in"
        shot(page, "sign-in")

        page.fill("input[name=token]", TOKEN[:-1] + "X")
        page.click("#sign-in-button")
        assert page.locator("#failed").is_visible()
        assert context.cookies() == []

        page.fill("input[name=token]", TOKEN)
        page.click("#sign-in-button")
        assert page.locator("h1").inner_text() == "Overview"
        [cookie] = context.cookies()
        assert cookie["name"] == COOKIE
        assert cookie["value"] != TOKEN
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/console/"
        assert time.time() < cookie["expires"] < time.time() + 9 * 3600
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it

        page.goto(console.url + f"/events/{console.shop.ids['dead']}")
        page.click("text=Retry…")
        page.click("#confirm")  # the browser's own POST: its Origin, this session's token
        assert page.locator("h1").inner_text() == "Retry: 1 of 1 delivered"
        assert console.shop.delivered == ["order-dead"]
        assert console.state("dead") is EventState.DONE
        assert TOKEN not in page.content()

        page.click("#sign-out button")
        assert page.locator("h1").inner_text() == "Sign in"
        assert context.cookies() == []
        again = page.goto(console.url + "/events")
        assert again is not None
        assert again.status == 401
        assert TOKEN not in page.url
    finally:
        context.close()
