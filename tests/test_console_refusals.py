"""What the console must refuse, each next to the same request that it must accept: a wrong user
name with the right password, an action on refused content, and (for the notification route) a
declared body over the limit before any of it is read."""

from __future__ import annotations

import base64
from collections.abc import MutableMapping
from typing import Any

from _console_data import PASSWORD, USER, shop
from conftest import APP_ID, SECRET
from pydantic import SecretStr
from test_console import client, csrf_of

from paynotify import EventState, Notifier, UnhandledEvent, make_event_id
from paynotify.ops._auth import BasicAuth


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_basic_auth_checks_the_user_name_as_well_as_the_password() -> None:
    data = await shop()
    guard = BasicAuth(USER, SecretStr(PASSWORD))
    async with client(data, guard, headers=basic(USER, PASSWORD)) as right:
        assert (await right.get("/console/")).status_code == 200
    async with client(data, guard, headers=basic("intruder", PASSWORD)) as wrong_user:
        refused = await wrong_user.get("/console/")
    assert refused.status_code == 401
    assert "order-dead" not in refused.text


async def test_no_delivering_action_is_offered_or_taken_on_refused_content() -> None:
    """Content refused for its shape is recorded `rejected` with kind `unhandled`: replaying it
    would hand subscribers something that is not a payment. A rejected payment, the control, is
    offered the replay."""
    data = await shop()
    store = data.notifier.store
    invalid = UnhandledEvent(
        provider="examplepay",
        account="shop",
        event_type="INVALID",
        event_id=make_event_id("shop", "invalid", "digest"),
        raw={"out_trade_no": "order-cut"},
    )
    await store.record(invalid, EventState.REJECTED, reason="total_amount '-1' is not a decimal")
    async with client(data, login=(USER, PASSWORD)) as http:
        control = await http.get(f"/console/events/{data.ids['rejected']}/replay")
        assert 'id="confirm"' in control.text
        assert "Replay…" in (await http.get(f"/console/events/{data.ids['rejected']}")).text

        page = await http.get(f"/console/events/{invalid.event_id}")
        assert page.status_code == 200
        assert "Replay…" not in page.text
        assert "Retry…" not in page.text
        confirm = await http.get(f"/console/events/{invalid.event_id}/replay")
        assert 'id="confirm"' not in confirm.text
        assert "not a payment, refund or transfer" in confirm.text
        token = csrf_of(control)
        await http.post(f"/console/events/{invalid.event_id}/replay", data={"csrf": token})
    after = await store.get(invalid.event_id)
    assert after is not None
    assert after.state is EventState.REJECTED
    assert data.delivered == []


async def test_a_declared_body_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    n = Notifier("memory://", body_limit=1024)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    app = n.asgi()
    reads = 0

    async def receive() -> dict[str, object]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    def scope(length: int) -> dict[str, Any]:
        return {
            "type": "http",
            "method": "POST",
            "path": "/shop/notify",
            "headers": [(b"content-length", str(length).encode())],
            "query_string": b"",
        }

    await app(scope(10**9), receive, send)
    assert sent[0]["status"] == 413
    assert reads == 0  # refused on the header alone
    # The control: a body that fits is read (and then refused as not ExamplePay's format).
    sent.clear()

    async def one_chunk() -> dict[str, object]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    await app(scope(2), one_chunk, send)
    assert reads == 1
    assert sent[0]["status"] != 413
