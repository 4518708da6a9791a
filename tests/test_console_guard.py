"""The console's door over HTTP: the sign-in page and its session cookie, per-session CSRF tokens
that expire, the Origin (or Referer) check on every POST, the mount point's relative 307 inside the
guard, and the security headers on every kind of response. tests/test_console_browser_sign_in.py
walks the same sign-in in Chromium."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from _console_data import PASSWORD, USER, Shop, shop
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount
from test_console import TOKEN, csrf_of

from paynotify import EventState
from paynotify.ops import _sessions, ops_app
from paynotify.ops._auth import BasicAuth, BearerToken
from paynotify.ops._console import console_app

BASE = "http://console.test"
SAME = {"origin": BASE}
BEARER = BearerToken(SecretStr(TOKEN))


@pytest.fixture
async def data() -> Shop:
    return await shop()


def client(s: Shop, guard: object = BEARER, *, base: str = BASE, **kwargs: object) -> httpx.AsyncClient:
    app = Starlette(routes=[Mount("/console", app=console_app(s.notifier, auth=guard, **kwargs))])  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


async def signed_in(c: httpx.AsyncClient, form: dict[str, str] | None = None) -> httpx.Response:
    response = await c.post(
        "/console/sign-in", data=form or {"token": TOKEN}, headers={"origin": str(c.base_url)}
    )
    assert response.status_code == 303, response.text
    return response


@pytest.fixture
async def session(data: Shop) -> AsyncIterator[httpx.AsyncClient]:
    async with client(data) as c:
        await signed_in(c)
        yield c


def retry_path(s: Shop) -> str:
    return f"/console/events/{s.ids['dead']}/retry"


async def state(s: Shop) -> EventState:
    event = await s.notifier.store.get(s.ids["dead"])
    assert event is not None
    return event.state


# -- sign-in -------------------------------------------------------------------------------------


async def test_a_bearer_console_opens_from_a_plain_browser_through_its_sign_in_form(data: Shop) -> None:
    async with client(data) as c:
        anonymous = await c.get("/console/")
        assert anonymous.status_code == 401
        assert 'name="token"' in anonymous.text  # the 401 is the sign-in page itself
        assert anonymous.headers["www-authenticate"].startswith("Bearer realm=")
        assert (await c.get("/console/sign-in")).status_code == 200

        refused = await c.post("/console/sign-in", data={"token": TOKEN[:-1] + "X"}, headers=SAME)
        assert refused.status_code == 401
        assert "not accepted" in refused.text
        assert "set-cookie" not in refused.headers

        done = await signed_in(c)
        assert done.headers["location"] == "./"
        cookie = done.headers["set-cookie"]
        sid = cookie.split(";")[0].split("=", 1)[1]
        assert len(sid) >= 40
        assert TOKEN not in cookie
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "max-age", "path"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert "path=/console/" in cookie.lower()
        assert "secure" not in attributes  # plain HTTP here: see the next test for TLS
        page = await c.get("/console/")
        assert page.status_code == 200
        assert 'id="sign-out"' in page.text
        assert TOKEN not in page.text


async def test_the_cookie_is_secure_when_served_over_tls(data: Shop) -> None:
    async with client(data, base="https://console.test") as c:
        done = await signed_in(c)
        assert "secure" in {p.strip().lower() for p in done.headers["set-cookie"].split(";")}


async def test_the_cookie_is_secure_behind_a_proxy_that_ends_tls_when_told(data: Shop) -> None:
    # The proxy speaks http to the console; the browser saw https.
    async with client(data, secure_cookie=True) as c:
        done = await signed_in(c)
        assert "secure" in {p.strip().lower() for p in done.headers["set-cookie"].split(";")}


async def test_basic_sign_in_checks_the_user_name_as_well_as_the_password(data: Shop) -> None:
    async with client(data, BasicAuth(USER, SecretStr(PASSWORD))) as c:
        form = (await c.get("/console/sign-in")).text
        assert 'name="user"' in form
        assert 'name="password"' in form
        wrong = await c.post(
            "/console/sign-in", data={"user": "intruder", "password": PASSWORD}, headers=SAME
        )
        assert wrong.status_code == 401
        assert (await c.get("/console/")).status_code == 401
        await signed_in(c, {"user": USER, "password": PASSWORD})
        assert (await c.get("/console/")).status_code == 200


async def test_header_credentials_keep_working_for_scripts(data: Shop) -> None:
    async with client(data) as c:
        c.headers["authorization"] = f"Bearer {TOKEN}"
        token = csrf_of(await c.get(retry_path(data)))
        # No Origin and no Referer: a script's request, not a browser's.
        done = await c.post(retry_path(data), data={"csrf": token})
        assert done.status_code == 200
        assert "1 of 1 delivered" in done.text
    assert data.delivered == ["order-dead"]


async def test_sign_out_ends_the_session(data: Shop, session: httpx.AsyncClient) -> None:
    token = csrf_of(await session.get(retry_path(data)))
    forged = await session.post("/console/sign-out", data={"csrf": "0" * 64}, headers=SAME)
    assert forged.status_code == 403
    assert (await session.get("/console/")).status_code == 200
    cookie = session.cookies.get(_sessions.COOKIE)
    out = await session.post("/console/sign-out", data={"csrf": token}, headers=SAME)
    assert out.status_code == 303
    assert out.headers["location"] == "sign-in"
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert (await session.get("/console/")).status_code == 401
    # The old id, sent again by hand, opens nothing: the session is gone on the server.
    session.cookies.set(_sessions.COOKIE, str(cookie), path="/console/")
    assert (await session.get("/console/")).status_code == 401


# -- CSRF ------------------------------------------------------------------------------------------


async def test_a_token_is_this_sessions_own_and_no_others(data: Shop) -> None:
    async with client(data) as first, client(data) as second:
        await signed_in(first)
        await signed_in(second)
        mine = csrf_of(await first.get(retry_path(data)))
        theirs = csrf_of(await second.get(retry_path(data)))
        assert mine != theirs  # the same credential, two sign-ins, two tokens
        refused = await first.post(retry_path(data), data={"csrf": theirs}, headers=SAME)
        assert refused.status_code == 403
        assert data.delivered == []
        accepted = await first.post(retry_path(data), data={"csrf": mine}, headers=SAME)
        assert accepted.status_code == 200
    assert data.delivered == ["order-dead"]


async def test_a_header_authenticated_token_is_bound_to_the_operator(data: Shop) -> None:
    alice, bob = BasicAuth("alice", SecretStr(PASSWORD)), BasicAuth("bob", SecretStr(PASSWORD))
    secret = b"s" * 32
    async with client(data, alice, csrf_secret=secret) as a, client(data, bob, csrf_secret=secret) as b:
        a.auth, b.auth = ("alice", PASSWORD), ("bob", PASSWORD)
        alices = csrf_of(await a.get(retry_path(data)))
        assert (await b.post(retry_path(data), data={"csrf": alices})).status_code == 403
        assert (await a.post(retry_path(data), data={"csrf": alices})).status_code == 200


async def test_a_session_and_its_token_expire(data: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.time()
    monkeypatch.setattr(_sessions, "now", lambda: start)
    async with client(data, session_seconds=600) as browser:
        assert "max-age=600" in (await signed_in(browser)).headers["set-cookie"].lower()
        token = csrf_of(await browser.get(retry_path(data)))

        monkeypatch.setattr(_sessions, "now", lambda: start + 599)
        assert (await browser.get("/console/")).status_code == 200

        monkeypatch.setattr(_sessions, "now", lambda: start + 601)
        expired = await browser.post(retry_path(data), data={"csrf": token}, headers=SAME)
        assert expired.status_code == 401  # the session is gone, and its token with it
        assert 'name="token"' in expired.text
        await signed_in(browser)
        assert (await browser.post(retry_path(data), data={"csrf": token}, headers=SAME)).status_code == 403
        fresh = csrf_of(await browser.get(retry_path(data)))
        assert (await browser.post(retry_path(data), data={"csrf": fresh}, headers=SAME)).status_code == 200
    assert data.delivered == ["order-dead"]


# -- Origin ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://console.test.evil.example"},
        {"referer": "http://evil.example/console/"},
        {},  # a browser's cookie always comes with one of them
    ],
)
async def test_a_cross_origin_post_is_refused_even_with_the_right_token(
    data: Shop, session: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    token = csrf_of(await session.get(retry_path(data)))
    refused = await session.post(retry_path(data), data={"csrf": token}, headers=headers)
    assert refused.status_code == 403
    assert "another site" in refused.text
    assert "Nothing was changed" in refused.text
    assert await state(data) is EventState.DEAD
    assert data.delivered == []


async def test_a_header_authenticated_post_from_another_origin_is_refused(data: Shop) -> None:
    async with client(data, BasicAuth(USER, SecretStr(PASSWORD))) as c:
        c.auth = (USER, PASSWORD)  # a browser resends basic credentials cross-site
        token = csrf_of(await c.get(retry_path(data)))
        refused = await c.post(
            retry_path(data), data={"csrf": token}, headers={"origin": "http://evil.example"}
        )
        assert refused.status_code == 403
        signing_in = await c.post(
            "/console/sign-in",
            data={"user": USER, "password": PASSWORD},
            headers={"origin": "http://evil.example"},
        )
        assert signing_in.status_code == 403
        assert "set-cookie" not in signing_in.headers
    assert data.delivered == []


async def test_a_matching_referer_stands_in_for_a_missing_origin(
    data: Shop, session: httpx.AsyncClient
) -> None:
    token = csrf_of(await session.get(retry_path(data)))
    done = await session.post(
        retry_path(data), data={"csrf": token}, headers={"referer": BASE + retry_path(data)}
    )
    assert done.status_code == 200
    assert data.delivered == ["order-dead"]


# -- the mount point, headers ----------------------------------------------------------------------


def ops(s: Shop) -> httpx.AsyncClient:
    app = ops_app(s.notifier, console=console_app(s.notifier, auth=BEARER))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def test_the_mount_point_redirects_inside_the_guard_with_a_relative_location(data: Shop) -> None:
    async with ops(data) as c:
        anonymous = await c.get("/console", headers={"host": "evil.example"})
        assert anonymous.status_code == 401
        assert "location" not in anonymous.headers
        signed = await c.get("/console", headers={"host": "evil.example", "authorization": f"Bearer {TOKEN}"})
        assert signed.status_code == 307
        assert signed.headers["location"] == "console/"
        assert signed.headers["x-frame-options"] == "DENY"
        assert signed.headers["cache-control"] == "no-store"
        followed = await c.get("/console/", headers={"authorization": f"Bearer {TOKEN}"})
        assert followed.status_code == 200
        # The sign-in form served at the mount point posts to the console's own sign-in.
        assert 'action="/console/sign-in"' in anonymous.text


async def test_every_kind_of_response_carries_the_headers(data: Shop, session: httpx.AsyncClient) -> None:
    token = csrf_of(await session.get(retry_path(data)))
    responses = [
        await session.get("/console/"),  # 200
        await session.post(retry_path(data), data={"csrf": token}, headers={"origin": "http://evil.example"}),
        await session.post(
            "/console/sign-out", content=b"{}", headers={**SAME, "content-type": "application/json"}
        ),
    ]
    async with client(data) as anonymous:
        responses += [
            await anonymous.get("/console/sign-in"),  # 200, the form
            await anonymous.get("/console/events"),  # 401
            await anonymous.post("/console/sign-in", data={"token": "wrong"}, headers=SAME),  # 401
            await anonymous.post("/console/sign-in", data={"token": TOKEN}, headers=SAME),  # 303
        ]
    async with ops(data) as c:
        responses.append(await c.get("/console", headers={"authorization": f"Bearer {TOKEN}"}))  # 307
        responses.append(await c.get("/console"))  # 401 at the mount point
        responses.append(await c.post("/console"))  # any method: the guard's 401, not a bare 405
    assert {r.status_code for r in responses} == {200, 303, 307, 400, 401, 403}
    expected = {
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
    }
    for r in responses:
        for name, value in expected.items():
            assert r.headers.get(name) == value, (r.status_code, r.url, name)
        assert r.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
        assert TOKEN not in r.text
        assert TOKEN not in str(r.headers)


def test_a_session_shows_no_secret_in_its_repr() -> None:
    sessions = _sessions.Sessions()
    sid, session = sessions.open("bearer")
    assert session.csrf not in repr(session)
    assert sid not in repr(sessions)
