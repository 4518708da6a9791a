"""A NUL character in a filter is a usage error (the console's 400), on every SQL backend alike:
PostgreSQL cannot even send one in text, and its refusal would otherwise read as the store down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from _console_data import PASSWORD, USER, shop
from _store_backends import drop, isolated_url
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from paynotify import EventState, Notifier
from paynotify._stores.filters import InvalidFilter
from paynotify.ops._auth import BasicAuth
from paynotify.ops._console import console_app


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("field", ["order_id", "account", "provider", "kind"])
async def test_a_nul_in_a_store_filter_is_refused_as_a_filter(
    tmp_path: Path, backend: str, field: str
) -> None:
    url = isolated_url(backend, tmp_path)
    n = Notifier(url)
    try:
        filters: dict[str, Any] = {field: "o-1\x00"}
        with pytest.raises(InvalidFilter, match="NUL"):
            await n.store.find(**filters)
        with pytest.raises(InvalidFilter, match="NUL"):
            await n.store.find(created_before=1.0, before_event_id="a\x00")
        with pytest.raises(InvalidFilter, match="NUL"):
            await n.store.purge(before=1.0, states=[EventState.DONE], order_id="o\x00")
    finally:
        await n.store.close()
        await drop(backend, url)


@pytest.mark.parametrize(
    "query", ["order_id=a%00b", "account=%00", "since=2026-01-01T00:00%00", "before=1&before_id=a%00"]
)
async def test_a_nul_in_a_console_filter_answers_400(query: str) -> None:
    s = await shop()
    app = Starlette(
        routes=[Mount("/console", app=console_app(s.notifier, auth=BasicAuth(USER, SecretStr(PASSWORD))))]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c.test", auth=(USER, PASSWORD)) as c:
        reply = await c.get(f"/console/events?{query}")
    assert reply.status_code == 400, reply.text
