"""The operator console's rules, over HTTP without a browser: no page without credentials, every
change a POST with this operator's CSRF token, no GET changes anything, everything escaped, the
security headers on every response. tests/test_console_browser.py drives the same pages in Chromium."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from _console_data import INJECTION, PASSWORD, USER, Shop, fix, payment, shop
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from paynotify import ConfigurationError, EventState, StoredEvent
from paynotify.ops import ops_app
from paynotify.ops._auth import BasicAuth, BearerToken, CsrfTokens
from paynotify.ops._console import console_app

TOKEN = "t0ken-for-tests-0123456789"
BASIC = BasicAuth(USER, SecretStr(PASSWORD))
CSRF_SECRET = b"one secret for every console here"
"""Shared, as by processes behind one address: another operator's token must be refused for who
they are, not because another console drew another secret."""


@pytest.fixture
async def data() -> Shop:
    return await shop()


def client(
    s: Shop,
    guard: object = BASIC,
    *,
    login: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    app = Starlette(
        routes=[Mount("/console", app=console_app(s.notifier, auth=guard, csrf_secret=CSRF_SECRET))]
    )
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://console.test", auth=login, headers=headers)


@pytest.fixture
async def http(data: Shop) -> AsyncIterator[httpx.AsyncClient]:
    async with client(data, login=(USER, PASSWORD)) as c:
        yield c


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f.]+)"', page.text)
    assert found, page.text
    return found[1]


async def snapshot(s: Shop) -> list[StoredEvent]:
    return sorted(await s.notifier.store.find(limit=1000), key=lambda e: e.event_id)


def pages(s: Shop) -> list[str]:
    every = [f"/console/events/{event_id}" for event_id in s.ids.values()]
    actions = [f"{page}/{action}" for page in every for action in ("retry", "replay", "requeue")]
    bulk = [f"/console/bulk/{action}?state=dead" for action in ("retry", "replay", "requeue")]
    lists = ["/console/", "/console/events", "/console/events?state=rejected", "/console/expectations"]
    others = ["/console/refused", "/console/bulk/replay?include_done=1"]
    return [*lists, *every, *actions, *bulk, *others]


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "", 0, object()])
def test_the_console_refuses_to_start_without_authentication(data: Shop, auth: object) -> None:
    with pytest.raises(ConfigurationError, match="needs authentication"):
        console_app(data.notifier, auth=auth)


def test_credentials_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYNOTIFY_CONSOLE_PASSWORD", raising=False)
    monkeypatch.setenv("PAYNOTIFY_CONSOLE_USER", USER)
    with pytest.raises(ConfigurationError, match="PAYNOTIFY_CONSOLE_PASSWORD is not set") as refused:
        BasicAuth.from_env()
    monkeypatch.setenv("PAYNOTIFY_CONSOLE_PASSWORD", PASSWORD)
    assert BasicAuth.from_env().password.get_secret_value() == PASSWORD
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert BearerToken.from_file(tmp_path / "token").token.get_secret_value() == TOKEN
    (tmp_path / "basic").write_text(f"{USER}:{PASSWORD}\n")
    assert BasicAuth.from_file(tmp_path / "basic").user == USER
    with pytest.raises(ConfigurationError, match="16 characters"):
        BearerToken(SecretStr("short"))
    with pytest.raises(ConfigurationError, match="cannot read"):
        BearerToken.from_file(tmp_path / "missing")
    assert PASSWORD not in repr(BasicAuth.from_env())
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        (BASIC, {}),
        (BASIC, {"authorization": "Basic " + "b3BlcmF0b3I6d3Jvbmc="}),  # operator:wrong
        (BASIC, {"authorization": "Basic !!!"}),
        (BearerToken(SecretStr(TOKEN)), {"authorization": "Bearer " + TOKEN[:-1] + "X"}),
        (BearerToken(SecretStr(TOKEN)), {"authorization": "Basic " + TOKEN}),
    ],
)
async def test_no_page_without_the_right_credentials(
    data: Shop, auth: object, headers: dict[str, str]
) -> None:
    async with client(data, auth, headers=headers) as c:
        for path in pages(data):
            response = await c.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith(("Basic realm=", "Bearer realm="))
            assert "order-dead" not in response.text
        response = await c.post(f"/console/events/{data.ids['dead']}/retry", data={"csrf": "x"})
        assert response.status_code == 401
    assert data.delivered == []


async def test_a_bearer_token_or_the_applications_own_check_lets_in(data: Shop) -> None:
    async with client(data, TOKEN, headers={"authorization": f"Bearer {TOKEN}"}) as c:
        assert (await c.get("/console/")).status_code == 200

    def staff_only(request: Request) -> bool:
        return request.headers.get("x-staff") == "yes"

    async with client(data, staff_only, headers={"x-staff": "yes"}) as c:
        assert (await c.get("/console/events")).status_code == 200
    async with client(data, staff_only) as c:
        assert (await c.get("/console/events")).status_code == 401

    async def staff_async(request: Request) -> bool:
        return request.headers.get("x-staff") == "yes"

    async with client(data, staff_async, headers={"x-staff": "yes"}) as c:
        assert (await c.get("/console/events")).status_code == 200
    async with client(data, staff_async, headers={"x-staff": "no"}) as c:
        assert (await c.get("/console/events")).status_code == 401


# -- headers, escaping ---------------------------------------------------------------------------


async def test_every_response_carries_the_security_headers(data: Shop, http: httpx.AsyncClient) -> None:
    responses = [await http.get(path) for path in pages(data)]
    responses.append(await http.get("/console/events/nope"))  # 404
    responses.append(await http.get("/console/events?state=nope"))  # 400
    responses.append(await http.post(f"/console/events/{data.ids['dead']}/retry", data={"csrf": "x"}))  # 403
    async with client(data) as anonymous:
        responses.append(await anonymous.get("/console/"))  # 401
    assert {r.status_code for r in responses} == {200, 400, 401, 403, 404}
    # Written out here, not read from the module: a header dropped there must fail this test.
    expected = {
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "referrer-policy": "same-origin",
        "x-content-type-options": "nosniff",
    }
    policy = re.compile(
        r"default-src 'none'; style-src 'sha256-([A-Za-z0-9+/=]{44})'; img-src 'self' data:; "
        r"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    for r in responses:
        for name, value in expected.items():
            assert r.headers.get(name) == value, (r.url, name)
        assert policy.fullmatch(r.headers.get("content-security-policy", "")), r.url
    # The one inline style block is the one the policy's hash allows (no 'unsafe-inline', no script).
    style = re.search(r"<style>(.*?)</style>", responses[0].text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    allowed = policy.fullmatch(responses[0].headers["content-security-policy"])
    assert allowed is not None
    assert allowed[1] == digest
    assert responses[0].text.count("<style>") == 1
    assert "style=" not in "".join(r.text for r in responses)  # attributes would need 'unsafe-hashes'


async def test_everything_shown_is_escaped(data: Shop, http: httpx.AsyncClient) -> None:
    event_id = data.ids["injected"]
    for path in [
        "/console/events",
        f"/console/events?order_id={INJECTION}",
        f"/console/events/{event_id}",
        f"/console/events/{event_id}/retry",
        "/console/bulk/retry?state=pending",
        f"/console/events?account={INJECTION}",
        f"/console/events?since={INJECTION}",  # the 400's message quotes it
    ]:
        page = await http.get(path, params=None)
        assert "<script>" not in page.text, path
        assert "<img" not in page.text, path
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&#34;&gt;&lt;img src=x&gt;" in page.text, path


# -- CSRF and GET ----------------------------------------------------------------------------------


async def test_no_get_changes_anything(data: Shop, http: httpx.AsyncClient) -> None:
    before = await snapshot(data)
    token = csrf_of(await http.get(f"/console/events/{data.ids['dead']}/retry"))
    for path in pages(data):
        for query in ("", f"csrf={token}", f"csrf={token}&id={data.ids['dead']}"):
            joiner = "&" if "?" in path else "?"
            response = await http.get(f"{path}{joiner}{query}" if query else path)
            assert response.status_code == 200, path
    assert await snapshot(data) == before
    assert data.delivered == []


@pytest.mark.parametrize("forged", ["", "0" * 64, "wrong", "token-of-another-operator"])
async def test_a_post_without_this_operators_token_is_refused_and_changes_nothing(
    data: Shop, http: httpx.AsyncClient, forged: str
) -> None:
    page = await http.get(f"/console/events/{data.ids['dead']}/retry")
    token = csrf_of(page)
    if forged == "token-of-another-operator":
        other = BasicAuth("someone-else", SecretStr(PASSWORD))
        async with client(data, other) as c:
            got = await c.get(f"/console/events/{data.ids['dead']}/retry", auth=("someone-else", PASSWORD))
            forged = csrf_of(got)
        assert forged != token
    before = await snapshot(data)
    for path, form in [
        (f"/console/events/{data.ids['dead']}/retry", {"csrf": forged}),
        (f"/console/events/{data.ids['dead']}/requeue", {"csrf": forged}),
        ("/console/bulk/retry", {"csrf": forged, "id": data.ids["dead"]}),
    ]:
        response = await http.post(path, data=form)
        assert response.status_code == 403, path
        assert "Nothing was changed" in response.text
    assert (await http.post(f"/console/events/{data.ids['dead']}/retry")).status_code in (400, 403)
    assert await snapshot(data) == before
    assert data.delivered == []


async def test_a_post_that_is_not_a_small_form_is_refused(data: Shop, http: httpx.AsyncClient) -> None:
    token = csrf_of(await http.get(f"/console/events/{data.ids['dead']}/retry"))
    path = f"/console/events/{data.ids['dead']}/retry"
    as_json = await http.post(path, json={"csrf": token})
    assert as_json.status_code == 400
    huge = await http.post("/console/bulk/retry", data={"csrf": token, "id": ["x" * 1000] * 70})
    assert huge.status_code == 400
    assert "too large" in huge.text
    assert data.delivered == []


async def test_retry_replay_and_requeue_with_the_token(data: Shop, http: httpx.AsyncClient) -> None:
    store = data.notifier.store
    token = csrf_of(await http.get(f"/console/events/{data.ids['dead']}/retry"))
    done = await http.post(f"/console/events/{data.ids['dead']}/retry", data={"csrf": token})
    assert done.status_code == 200
    assert "1 of 1 delivered" in done.text
    assert data.delivered == ["order-dead"]

    rejected = data.ids["rejected"]
    refused = await http.post(f"/console/events/{rejected}/replay", data={"csrf": token})
    assert "still refused" in refused.text
    assert "this account expects" in refused.text
    fix(data)
    replayed = await http.post(f"/console/events/{rejected}/replay", data={"csrf": token})
    assert "1 of 1 delivered" in replayed.text
    assert data.delivered == ["order-dead", "order-rejected"]
    event = await store.get(rejected)
    assert event is not None
    assert event.state is EventState.DONE

    # A selection: the confirmation lists what will be acted on; the POST acts on exactly that.
    for i in range(3):
        await store.enqueue(payment(f"bulk-{i}"))
    for lease in await store.acquire(limit=10, lease_seconds=60):  # the injected one is pending too
        await store.dead_letter(lease.event.event_id, lease.token, error="down")
    confirm = await http.get("/console/bulk/requeue?state=dead")
    ids = re.findall(r'name="id" value="([0-9a-f]+)"', confirm.text)
    assert len(ids) == 4
    result = await http.post("/console/bulk/requeue", data={"csrf": token, "id": ids})
    assert "4 of 4 requeued" in result.text
    assert await store.find(states=[EventState.DEAD]) == []
    assert len(await store.find(states=[EventState.PENDING])) == 4


# -- pages -----------------------------------------------------------------------------------------


async def test_the_list_pages_by_keyset_through_every_event(http: httpx.AsyncClient) -> None:
    s = await shop(done=130)
    async with client(s, login=(USER, PASSWORD)) as c:
        seen: list[str] = []
        path: str | None = "/console/events?limit=40"
        while path is not None:
            page = await c.get(path.replace("&amp;", "&"))
            assert page.status_code == 200
            seen += re.findall(r'href="/console/events/([0-9a-z-]+)"', page.text)
            older = re.search(r'id="older" href="([^"]+)"', page.text)
            path = older[1] if older else None
        everything = await s.notifier.store.find(limit=1000)
        assert seen == [e.event_id for e in everything]
        assert len(seen) == 134


async def test_the_overview_counts_states_accounts_and_hours(data: Shop, http: httpx.AsyncClient) -> None:
    page = await http.get("/console/")
    assert page.status_code == 200
    counts = re.search(r'<table id="counts">.*?</table>', page.text, re.S)
    assert counts is not None
    cells = re.findall(r">(\d+)</a></td>", counts[0])
    assert cells == ["1", "0", "0", "3", "1", "1", "1"]  # pending, in_flight, released, done, dead, ...
    assert "<svg" in page.text
    assert page.text.count('class="bar"') == 24
    per_hour = [int(n) for n in re.findall(r"<title>\d\d:00 UTC: (\d+)</title>", page.text)]
    assert len(per_hour) == 24
    assert sum(per_hour) == 7


async def test_a_nul_in_a_filter_is_a_400_not_a_store_error(data: Shop, http: httpx.AsyncClient) -> None:
    # PostgreSQL refuses a NUL in a text parameter (a 503 before); no event can hold one.
    for field in ("order_id", "account", "provider"):
        reply = await http.get("/console/events", params={field: "a\x00b"})
        assert reply.status_code == 400
        assert "NUL" in reply.text


async def test_a_cross_site_post_is_refused_even_with_a_good_token(
    data: Shop, http: httpx.AsyncClient
) -> None:
    path = f"/console/events/{data.ids['dead']}/retry"
    token = csrf_of(await http.get(path))
    for header in (
        {"origin": "http://evil.example"},
        {"origin": "null"},  # a sandboxed frame's, or a page that hides where it comes from
        {"referer": "http://evil.example/page"},
        {"origin": "http://console.test.evil.example"},
    ):
        refused = await http.post(path, data={"csrf": token}, headers=header)
        assert refused.status_code == 403, header
        assert "another site" in refused.text
    assert data.delivered == []
    # This console's own page (Origin or, without it, Referer naming this host) goes through.
    same = await http.post(path, data={"csrf": token}, headers={"origin": "http://console.test"})
    assert same.status_code == 200
    assert data.delivered == ["order-dead"]


def test_csrf_tokens_expire_and_differ_per_page() -> None:
    now = [1_000_000.0]
    tokens = CsrfTokens(b"s" * 32, lifetime=60, clock=lambda: now[0])
    one, two = tokens.token("alice"), tokens.token("alice")
    assert one != two  # a fresh token per page
    assert tokens.valid("alice", one)
    assert tokens.valid("alice", two)
    assert not tokens.valid("bob", one)  # bound to the operator
    assert not tokens.valid(
        "alice", one.replace(one.split(".")[0], str(int(now[0]) + 10_000))
    )  # expiry is signed
    now[0] += 61
    assert not tokens.valid("alice", one)  # expired
    assert tokens.valid("alice", tokens.token("alice"))


async def test_the_mount_point_redirects_inside_the_guard_with_a_relative_location(data: Shop) -> None:
    app = ops_app(data.notifier, console=console_app(data.notifier, auth=BASIC))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as ops:
        anonymous = await ops.get("/console", headers={"host": "evil.example"})
        assert anonymous.status_code == 401
        signed_in = await ops.get("/console", auth=(USER, PASSWORD), headers={"host": "evil.example"})
    assert signed_in.status_code == 307
    assert signed_in.headers["location"] == "console/"  # never built from the Host header
    for response in (anonymous, signed_in):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src" in response.headers["content-security-policy"]
