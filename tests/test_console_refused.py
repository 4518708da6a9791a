"""The Refused page and the ring behind it (issue 23): each refusal the notification route makes is
kept per account with its reason, provider, channel, time and the peer's address from every door
(ASGI, WSGI, Django), never a byte of the body, a header's value or the error's message; the rings
are bounded, and requests for accounts that do not exist share one ring, so that inventing names
cannot grow memory. Every notification here is really signed (with a key the account does not
trust, for the forgeries)."""

from __future__ import annotations

import io
from collections.abc import Callable
from urllib.parse import quote

import httpx
from _console_data import APP_ID, INJECTION, KEY, PASSWORD, USER, Shop, alipay_settings, shop
from paynotify_alipay.testing import SELLER_ID, generate_key, make_notify
from test_console import client

from paynotify import InboundRequest, Outcome, RecentRefusals
from paynotify._route import remote_address

FORGER = generate_key()
MARKER = "ORDER-SEEN-ONLY-IN-THE-BODY-4711"
FORM = {"content-type": "application/x-www-form-urlencoded"}
PEER = ("203.0.113.7", 40001)


def forged(order_id: str = MARKER) -> bytes:
    """A notification signed with a key the account does not trust."""
    return make_notify(FORGER, app_id=APP_ID, out_trade_no=order_id)


async def post(data: Shop, path: str, body: bytes, peer: tuple[str, int] = PEER) -> httpx.Response:
    transport = httpx.ASGITransport(app=data.notifier.asgi(), client=peer)
    async with httpx.AsyncClient(transport=transport, base_url="http://pay.test") as http:
        return await http.post(path, content=body, headers=FORM)


def request(channel: str = "notify", client: object = None) -> InboundRequest:
    return InboundRequest("POST", channel, FORM, b"", b"", client)


async def test_a_forged_notification_is_shown_with_reason_provider_and_peer_never_its_body() -> None:
    data = await shop()
    reply = await post(data, "/shop/notify", forged())
    assert reply.status_code == 200  # Alipay is told `fail` in a 200
    async with client(data, login=(USER, PASSWORD)) as http:
        page = await http.get("/console/refused")
    assert page.status_code == 200
    row = page.text.split('id="refused"', 1)[1]
    assert "refused_signature" in row
    assert "VerificationError" in row
    assert PEER[0] in row
    assert ">alipay<" in row
    # Nothing of the request itself: no field of the body, no signature, no message quoting it.
    assert MARKER not in page.text
    assert "sign=" not in page.text
    assert "no configured key" not in page.text  # the message (it is the log line's)
    [kept] = data.notifier.refused_requests.of("shop")
    assert (kept.account, kept.provider, kept.channel) == ("shop", "alipay", "notify")
    assert (kept.reason, kept.error) == (Outcome.REFUSED_SIGNATURE.value, "VerificationError")
    assert kept.remote == PEER[0]


async def test_a_verified_notification_is_not_kept() -> None:
    data = await shop()  # the control: the account's own key, refused only later by a check
    await post(data, "/shop/notify", make_notify(KEY, app_id=APP_ID, out_trade_no="order-fine"))
    assert len(data.notifier.refused_requests) == 0


async def test_every_ring_is_bounded_and_newest_first() -> None:
    recent = RecentRefusals(per_account=100)
    data = await shop()
    account = data.notifier.accounts["shop"]
    for i in range(150):
        peer = (f"198.51.100.{i % 250}", 1)
        recent.refused(account, request(client=peer), "malformed", "MalformedNotification")
    kept = recent.of("shop")
    assert len(kept) == 100
    assert kept[0].remote == "198.51.100.149"  # the newest
    assert kept[-1].remote == "198.51.100.50"  # the 50 oldest are gone


async def test_inventing_account_names_cannot_grow_memory() -> None:
    data = await shop()
    for i in range(300):
        reply = await post(data, f"/invented-{i}/notify", forged())
        assert reply.status_code == 404
    recent = data.notifier.refused_requests
    assert recent.accounts() == []  # no ring per invented name
    unknown = recent.of_unknown()
    assert len(unknown) == 100
    assert unknown[0].account == "invented-299"
    assert (unknown[0].reason, unknown[0].provider, unknown[0].remote) == ("unknown_account", "-", PEER[0])
    assert len(recent) == 100


async def test_past_max_accounts_a_configured_account_shares_the_unknown_ring() -> None:
    data = await shop()
    recent = RecentRefusals(per_account=5, unknown=7, max_accounts=1)
    data.notifier.add_account("app", "alipay", **alipay_settings(SELLER_ID))
    first, second = data.notifier.accounts["shop"], data.notifier.accounts["app"]
    for _ in range(10):
        recent.refused(first, request(), "malformed", "MalformedNotification")
        recent.refused(second, request(), "malformed", "MalformedNotification")
    assert recent.accounts() == ["shop"]
    assert len(recent.of("shop")) == 5
    assert [r.account for r in recent.of_unknown()] == ["app"] * 7


async def test_an_unknown_channel_of_a_known_account_is_kept_in_its_ring() -> None:
    data = await shop()
    reply = await post(data, "/shop/notfy", forged())
    assert reply.status_code == 404
    [kept] = data.notifier.refused_requests.of("shop")
    assert (kept.reason, kept.channel) == ("unknown_channel", "notfy")


async def test_an_unknown_account_name_is_cut_and_escaped_on_the_page() -> None:
    data = await shop()
    name = INJECTION.replace("/", "") + "x" * 200
    await post(data, "/" + quote(name, safe="") + "/notify", forged())
    [kept] = data.notifier.refused_requests.of_unknown()
    assert len(kept.account) == 64
    async with client(data, login=(USER, PASSWORD)) as http:
        page = await http.get("/console/refused", params={"account": "(unknown accounts)"})
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_the_page_filters_by_account() -> None:
    data = await shop()
    await post(data, "/shop/notify", forged(), peer=("192.0.2.1", 1))
    await post(data, "/nobody/notify", forged(), peer=("192.0.2.2", 1))
    async with client(data, login=(USER, PASSWORD)) as http:
        every = await http.get("/console/refused")
        shop_only = await http.get("/console/refused", params={"account": "shop"})
        unknown = await http.get("/console/refused", params={"account": "(unknown accounts)"})
        nul = await http.get("/console/refused", params={"account": "a\x00b"})
    assert "192.0.2.1" in every.text
    assert "192.0.2.2" in every.text
    assert "192.0.2.1" in shop_only.text
    assert "192.0.2.2" not in shop_only.text
    assert "192.0.2.2" in unknown.text
    assert "192.0.2.1" not in unknown.text
    assert nul.status_code == 400


async def test_a_forged_return_is_kept_on_the_return_channel() -> None:
    data = await shop()
    transport = httpx.ASGITransport(app=data.notifier.asgi(), client=PEER)
    async with httpx.AsyncClient(transport=transport, base_url="http://pay.test") as http:
        await http.get("/shop/return?out_trade_no=x&sign=AAAA&sign_type=RSA2")
    [kept] = data.notifier.refused_requests.of("shop")
    assert kept.channel == "return"
    assert kept.reason in (Outcome.REFUSED_SIGNATURE.value, Outcome.MALFORMED.value)


def test_the_wsgi_door_passes_remote_addr() -> None:
    import asyncio

    data = asyncio.run(shop())
    app = data.notifier.wsgi()
    body = forged()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/shop/notify", "QUERY_STRING": "",
        "CONTENT_TYPE": FORM["content-type"], "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "192.0.2.99", "wsgi.input": io.BytesIO(body), "SERVER_NAME": "pay.test",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http",
    }  # fmt: skip
    try:
        b"".join(app(environ, lambda status, headers, exc_info=None: lambda _: None))
    finally:
        app.close()
    [kept] = data.notifier.refused_requests.of("shop")
    assert (kept.remote, kept.reason) == ("192.0.2.99", Outcome.REFUSED_SIGNATURE.value)


def test_the_remote_address_is_read_from_what_any_door_passes() -> None:
    assert remote_address(("203.0.113.7", 5)) == "203.0.113.7"
    assert remote_address("192.0.2.1") == "192.0.2.1"
    assert remote_address(None) is None
    assert remote_address("") is None
    assert remote_address(("/run/" + "s" * 100, 0)) == ("/run/" + "s" * 100)[:64]


async def test_a_body_over_the_limit_is_kept_as_the_door_refused_it() -> None:
    data = await shop()
    big = b"x" * (data.notifier.body_limit + 1)
    assert (await post(data, "/shop/notify", big)).status_code == 413
    assert (await post(data, "/nobody/notify", big)).status_code == 413
    [kept] = data.notifier.refused_requests.of("shop")
    assert (kept.reason, kept.error, kept.provider, kept.remote) == (
        "too_large",
        "HTTP 413",
        "alipay",
        PEER[0],
    )
    [unknown] = data.notifier.refused_requests.of_unknown()
    assert (unknown.account, unknown.reason, unknown.provider) == ("nobody", "too_large", "-")


def test_the_wsgi_door_keeps_its_own_refusals() -> None:
    import asyncio

    data = asyncio.run(shop())
    app = data.notifier.wsgi()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/shop/notify", "QUERY_STRING": "",
        "CONTENT_TYPE": FORM["content-type"], "CONTENT_LENGTH": str(data.notifier.body_limit + 1),
        "REMOTE_ADDR": "192.0.2.98", "wsgi.input": io.BytesIO(b""), "SERVER_NAME": "pay.test",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http",
    }  # fmt: skip
    statuses: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda _: None

    try:
        b"".join(app(environ, start_response))
    finally:
        app.close()
    assert statuses[0].startswith("413")
    [kept] = data.notifier.refused_requests.of("shop")
    assert (kept.reason, kept.remote) == ("too_large", "192.0.2.98")
