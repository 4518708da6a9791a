"""Issue 23's newcomer walk, end to end (headless Chromium and the CLI by subprocess): `paynotify
init` writes a service, `paynotify serve` runs it with a basic-auth console on the ops port, and
`paynotify send` posts one Alipay payment signed with init's test keys. From a plain browser (no
credentials of its own) at a phone's 390 px: the sign-in page, the search box finding the payment by
the provider's transaction id, its attempts, a replay through the confirmation page (CSRF), and on
the event page, the Audit page and `paynotify events audit`, the signed-in operator who did it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _servers import Served, subprocess_server
from test_cli_robust import paynotify
from test_console_browser import browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

__all__ = ["browser"]  # the fixture, shared with tests/test_console_browser.py

OPERATOR = "night-shift-alice"
PASSWORD = "walk-pass-7f3c9e1d"
PHONE: ViewportSize = {"width": 390, "height": 844}
_ANNOUNCED = re.compile(r"ops: .*(http://127\.0\.0\.1:\d+/console/)")
_NOTIFY = re.compile(r"notify (http://127\.0\.0\.1:\d+)/shop-alipay/notify")


@dataclass
class Service:
    directory: Path
    base: str  # the notify URLs' root, as serve printed it
    console: str  # the console's URL, as serve printed it, ending in /
    served: Served


def _announced(served: Served, pattern: re.Pattern[str], timeout: float = 30.0) -> str:
    """What serve printed at start (every account's URLs, then the ops port's): read from its log."""
    deadline = time.monotonic() + timeout
    while not (match := pattern.search(served.log.decode(errors="replace"))):
        assert served.process is not None
        if served.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"serve did not announce {pattern.pattern}: {served.log.decode()}")
        time.sleep(0.05)
    return match.group(1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    directory = tmp_path / "svc"
    paynotify("init", "svc", cwd=tmp_path, code=0)  # the config, its test keys and its store
    env = {"PAYNOTIFY_CONSOLE_USER": OPERATOR, "PAYNOTIFY_CONSOLE_PASSWORD": PASSWORD}
    # Both ports picked by the system: serve prints the ones it bound.
    command = ("paynotify", "serve", "--config", "paynotify.toml", "--port", "0", "--ops-port", "0")
    with subprocess_server(*command, cwd=directory, env=env) as served:
        console = _announced(served, _ANNOUNCED)
        assert ":0/" not in console
        base = _announced(served, _NOTIFY)
        yield Service(directory, base, console, served)
        log = served.stop()
    assert PASSWORD not in log


def _fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (page.url, width)


def _cells(page: Page, rows: str, index: int = 1) -> list[str]:
    return page.locator(f"{rows} tr").nth(index).locator("td").all_inner_texts()


def test_the_newcomer_finds_a_payment_by_its_transaction_id_replays_it_and_sees_who_did(
    service: Service, browser: Browser
) -> None:
    cwd = service.directory
    send = ("send", "shop-alipay", "--kind", "payment", "--order", "walk-order-1", "--amount", "12.30")
    out, _ = paynotify(*send, "--to", service.base, "--config", "paynotify.toml", cwd=cwd, code=0)
    assert out.rstrip().endswith(": acknowledged")
    listed, _ = paynotify("events", "list", "--json", "--config", "paynotify.toml", cwd=cwd, code=0)
    (event_id,) = [json.loads(line)["event_id"] for line in listed.splitlines()]
    shown, _ = paynotify("events", "show", event_id[:8], "--config", "paynotify.toml", cwd=cwd, code=0)
    transaction_id = json.loads(shown)["result"]["transaction_id"]
    assert transaction_id
    assert "walk-order-1" not in transaction_id  # found by what the provider calls it, not the order

    context = browser.new_context(viewport=PHONE)  # a plain browser: no credentials of its own
    try:
        # The URL serve printed answers 401 with the sign-in form; under basic auth its challenge
        # opens the browser's own dialog first (headless Chromium fails the navigation instead), so
        # the walk types into the form at sign-in, as an operator who cancels that dialog sees it.
        first = context.request.get(service.console)
        assert first.status == 401
        assert first.headers["www-authenticate"].startswith("Basic ")
        assert 'name="password"' in first.text()
        page = context.new_page()
        page.goto(service.console + "sign-in")
        assert page.locator("h1").inner_text() == "Sign in"
        _fits(page)
        page.fill("input[name=user]", OPERATOR)
        page.fill("input[name=password]", PASSWORD)
        page.click("#sign-in-button")
        assert page.locator("h1").inner_text() == "Overview"
        _fits(page)

        page.click("header >> text=Events")
        page.fill("input[name=search]", transaction_id)
        page.click("form.filters button[type=submit]")
        assert page.locator("#events td.oid").all_inner_texts() == ["walk-order-1"]
        row = _cells(page, "#events")
        assert "12.30" in row
        assert "CNY" in row
        _fits(page)

        page.locator("#events tr").nth(1).locator("td.t a").click()
        assert event_id in page.locator("h1").inner_text()
        assert page.locator("#attempts tr").count() == 1 + 1  # the header, the delivery serve made
        assert _cells(page, "#attempts")[1] == "delivered"
        assert page.locator("#operator-actions").count() == 0
        _fits(page)

        page.click("text=Replay…")
        assert page.locator("h1").inner_text() == f"Replay event {event_id}?"
        assert page.locator("form:has(#confirm) input[name=csrf]").get_attribute("value")
        _fits(page)
        page.click("#confirm")
        assert page.locator("h1").inner_text() == "Replay: 1 of 1 delivered"
        _fits(page)

        page.goto(service.console + f"events/{event_id}")
        assert page.locator("#attempts tr").count() == 1 + 2  # the replay's delivery, newest first
        assert _cells(page, "#attempts")[1] == "delivered"
        assert _cells(page, "#operator-actions")[1:4] == [OPERATOR, "replay", "ok"]
        _fits(page)

        page.click("header >> text=Audit")
        assert page.locator("h1").inner_text() == "Audit log"
        entry = _cells(page, "#audit")
        assert [entry[1], entry[2], entry[4]] == [OPERATOR, "replay", "ok"]
        assert entry[3] == event_id[:12]
        _fits(page)
        assert PASSWORD not in page.content()
    finally:
        context.close()

    audited, _ = paynotify("events", "audit", "--json", "--config", "paynotify.toml", cwd=cwd, code=0)
    (action,) = [json.loads(line) for line in audited.splitlines()]
    assert (action["operator"], action["action"], action["event_ids"], action["outcome"]) == (
        OPERATOR, "replay", [event_id], "ok",
    )  # fmt: skip
    text, _ = paynotify("events", "audit", "--since", "1h", "--config", "paynotify.toml", cwd=cwd, code=0)
    assert OPERATOR in text
    assert event_id in text
