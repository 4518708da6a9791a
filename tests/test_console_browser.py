"""The operator console in a real browser: Debian's Chromium, driven by Playwright, against the
console served by uvicorn on 127.0.0.1. Each test saves a screenshot of the page it checks to
docs/images/console-*.png (the pictures in docs/console.md).

Skipped, saying why, without the playwright package or /usr/bin/chromium; failed instead when
PAYNOTIFY_REQUIRE_SERVICES is set (CI installs both: a skip there would hide a broken setup).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from _console_data import INJECTION, PASSWORD, USER, Shop, fix, history, shop
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from paynotify import EventState, StoredEvent
from paynotify.cli._serve import background_server
from paynotify.ops._auth import BasicAuth
from paynotify.ops._console import console_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
T = TypeVar("T")
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install -r requirements-test.txt"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (bash .ci/run does)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    why = _unavailable()
    if why is not None:
        if os.environ.get("PAYNOTIFY_REQUIRE_SERVICES"):
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Never the browser Playwright downloads (its host is out of reach): the system's.
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


def aside(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end on a thread of its own: Playwright's sync API keeps an event loop
    running on this one, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass
class Console:
    shop: Shop
    url: str

    def event(self, name: str) -> StoredEvent | None:
        return aside(lambda: self.shop.notifier.store.get(self.shop.ids[name]))

    def state(self, name: str) -> EventState:
        event = self.event(name)
        assert event is not None
        return event.state


@pytest.fixture
def console() -> Iterator[Console]:
    # The events are recorded before the server starts and read after each step: the memory store
    # has no tie to an event loop, and only one side uses it at a time.
    data = aside(shop)
    guard = BasicAuth(USER, SecretStr(PASSWORD))
    app = Starlette(routes=[Mount("/console", app=console_app(data.notifier, auth=guard))])
    with background_server(app) as port:
        yield Console(data, f"http://127.0.0.1:{port}/console")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD}, viewport={"width": 1280, "height": 800}
    )
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    """Every test takes its page's picture; they replace the ones in docs/ only when asked
    (PAYNOTIFY_SCREENSHOTS=docs), so a test run leaves the checkout as it was."""
    folder = IMAGES if os.environ.get("PAYNOTIFY_SCREENSHOTS") == "docs" else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


def test_signed_in_the_overview_counts_every_state_and_draws_the_chart(console: Console, page: Page) -> None:
    aside(lambda: history(console.shop))  # a day and more of deliveries, for the chart
    counts = aside(console.shop.notifier.store.count)
    response = page.goto(console.url + "/")
    assert response is not None
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Overview"
    # The inline style applied: the policy's hash matches it in a real browser.
    header = page.locator("header").evaluate("(e) => getComputedStyle(e).backgroundColor")
    assert header == "rgb(29, 35, 48)"
    cells = page.locator("#counts tr").nth(1).locator("td").all_inner_texts()
    assert cells == [*(str(counts.get(state, 0)) for state in EventState), str(sum(counts.values()))]
    bars = page.locator("#chart rect.bar")
    assert bars.count() == 24
    drawn = [int(t.rsplit(": ", 1)[1]) for t in page.locator("#chart rect.bar title").all_text_contents()]
    assert drawn[-1] >= 7  # this hour: the seven events of every test, and this hour's history
    assert len(set(drawn)) > 3  # the history's shape, not one flat line
    assert page.locator("#accounts tr").count() == 1 + 4  # alipay/app, alipay/pos, alipay/shop, v3/mini
    shot(page, "overview")


def test_without_credentials_every_page_is_401(console: Console, browser: Browser) -> None:
    from playwright.sync_api import Error

    context = browser.new_context()
    try:
        anonymous = context.new_page()
        for path in ("/", "/events", f"/events/{console.shop.ids['dead']}/retry"):
            # Chromium, challenged and holding no credentials, gives up on the page.
            with pytest.raises(Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
                anonymous.goto(console.url + path)
            response = context.request.get(console.url + path)
            assert response.status == 401
            assert response.headers["www-authenticate"].startswith("Basic realm=")
            assert "order-dead" not in response.text()
        refused = context.request.post(console.url + f"/events/{console.shop.ids['dead']}/retry")
        assert refused.status == 401
    finally:
        context.close()
    assert console.shop.delivered == []


def test_the_list_filters_and_escapes(console: Console, page: Page) -> None:
    page.goto(console.url + "/events")
    assert page.locator("#events tr").count() == 1 + 7
    # The injected order id is shown as text: no script ran, no element was made of it.
    assert page.locator("td.mono", has_text="<script>window.__pwned = 1</script>").count() == 1
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main img").count() == 0
    shot(page, "events")

    page.select_option("select[name=state]", "dead")
    page.click("button[type=submit]")
    assert "state=dead" in page.url
    rows = page.locator("#events tr")
    assert rows.count() == 2
    assert "order-dead" in rows.nth(1).inner_text()

    page.goto(console.url + "/events")
    page.fill("input[name=account]", "app")
    page.select_option("select[name=kind]", "payment")
    page.click("button[type=submit]")
    accounts = page.locator("#events tr td:nth-child(4)").all_inner_texts()
    assert accounts == ["app", "app"]

    page.goto(console.url + "/events")
    page.fill("input[name=order_id]", INJECTION)
    page.click("button[type=submit]")
    assert page.locator("#events tr").count() == 2
    assert page.locator("input[name=order_id]").input_value() == INJECTION


def test_an_event_shows_its_result_fields_attempts_error_and_subscribers_never_settings(
    console: Console, page: Page
) -> None:
    page.goto(console.url + "/events?state=dead")
    page.locator("#events tr").nth(1).locator("a").click()
    assert page.locator("h1").inner_text().startswith("Event ")
    assert page.locator("#last-error").inner_text() == "ConnectionError: the warehouse API is down"
    assert page.locator("#done").inner_text() == "none yet"
    assert page.locator("#result").inner_text().count("order-dead") == 1
    assert "out_trade_no" in page.locator("#raw").inner_text()
    html = page.content()
    assert "PUBLIC KEY" not in html
    assert "alipay_public_key" not in html
    shot(page, "event")

    page.goto(console.url + f"/events/{console.shop.ids['done']}")
    assert page.locator("#done").inner_text() == "ship"


def test_retry_a_dead_letter_after_confirming_and_see_it_delivered(console: Console, page: Page) -> None:
    page.goto(console.url + f"/events/{console.shop.ids['dead']}")
    page.click("text=Retry…")
    assert page.locator("h1").inner_text().startswith("Retry event")
    assert console.state("dead") is EventState.DEAD  # the confirmation page changed nothing
    shot(page, "confirm")
    page.click("#confirm")
    assert page.locator("h1").inner_text() == "Retry: 1 of 1 delivered"
    assert page.locator("#record .state").inner_text() == "done"
    assert page.locator("#done").inner_text() == "ship"
    shot(page, "delivered")
    assert console.shop.delivered == ["order-dead"]
    assert console.state("dead") is EventState.DONE


def test_replay_a_rejected_payment_once_its_account_is_fixed(console: Console, page: Page) -> None:
    rejected = console.url + f"/events/{console.shop.ids['rejected']}"
    page.goto(rejected)
    assert "this account expects '2088000000000009'" in page.locator("#last-error").inner_text()
    page.click("text=Replay…")
    page.click("#confirm")
    assert page.locator("h1").inner_text() == "Replay: 0 of 1 delivered"
    assert "still refused" in page.locator("#outcomes").inner_text()
    shot(page, "still-refused")
    assert console.state("rejected") is EventState.REJECTED

    fix(console.shop)  # update_account with the right seller_id, as an operator would
    page.goto(rejected)
    page.click("text=Replay…")
    page.click("#confirm")
    assert page.locator("h1").inner_text() == "Replay: 1 of 1 delivered"
    assert console.shop.delivered == ["order-rejected"]
    assert console.state("rejected") is EventState.DONE


def test_a_selection_is_requeued_after_its_confirmation(console: Console, page: Page) -> None:
    page.goto(console.url + "/events?state=dead")
    page.click("text=Requeue the matching events…")
    assert page.locator("h1").inner_text() == "Requeue 1 event?"
    page.click("#confirm")
    assert page.locator("h1").inner_text() == "Requeue: 1 of 1 requeued"
    assert console.state("dead") is EventState.PENDING


def test_a_forged_csrf_token_is_refused(console: Console, page: Page) -> None:
    page.goto(console.url + f"/events/{console.shop.ids['dead']}/retry")
    token = page.locator("input[name=csrf]")
    real = token.input_value()
    forged = ("0" if real[0] != "0" else "1") + real[1:]
    token.evaluate("(field, value) => { field.value = value; }", forged)
    page.click("#confirm")
    assert page.locator("h1").inner_text() == "Refused: the form's token is not valid"
    shot(page, "forged")
    # The same POST outside the form, with the browser's credentials: refused too.
    response = page.request.post(
        console.url + f"/events/{console.shop.ids['dead']}/retry", form={"csrf": forged}
    )
    assert response.status == 403
    assert console.shop.delivered == []
    assert console.state("dead") is EventState.DEAD
