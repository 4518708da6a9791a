"""The one route, over HTTP semantics: status codes the pipeline cannot decide, and mounting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import example_notify, post_example
from starlette.applications import Starlette
from starlette.routing import Mount

from paynotify import Notifier, PaymentResult


async def test_notify_round_trip(client: httpx.AsyncClient, delivered: list[PaymentResult]) -> None:
    response = await post_example(client, example_notify())
    assert (response.status_code, response.content) == (200, b"OK")
    assert len(delivered) == 1


async def test_unknown_account_is_404(client: httpx.AsyncClient, delivered: list[PaymentResult]) -> None:
    response = await post_example(client, example_notify(), account="nobody")
    assert response.status_code == 404
    assert (await client.post("/shop/unknown-channel", content=b"x")).status_code == 404
    assert delivered == []


async def test_notify_must_be_post(client: httpx.AsyncClient) -> None:
    response = await client.get("/shop/notify")
    assert response.status_code == 405


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, delivered: list[PaymentResult]) -> None:
    headers, _ = example_notify()
    response = await client.post("/shop/notify", content=b"x" * (64 * 1024 + 1), headers=headers)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit holds while streaming
        for _ in range(100):
            yield b"y" * 1024

    response = await client.post("/shop/notify", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert delivered == []


async def test_body_limit_is_configurable() -> None:
    n = Notifier("memory://", body_limit=100)
    n.add_account("shop", "examplepay", app_id="app-1", secret="example-secret-for-tests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://t") as c:
        assert (await post_example(c, example_notify())).status_code == 413


@pytest.mark.parametrize("prefix", ["/payments", "/api/v1/notify-hooks"])
async def test_mounted_under_any_prefix(
    notifier: Notifier, delivered: list[PaymentResult], prefix: str
) -> None:
    app = Starlette(routes=[Mount(prefix, app=notifier.asgi())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers, body = example_notify()
        response = await c.post(f"{prefix}/shop/notify", content=body, headers=headers)
    assert response.content == b"OK"
    assert len(delivered) == 1


async def test_server_keeps_serving_after_garbage(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    for garbage in [b"", b"\xff\xfe\x00", b"{" * 10000, b"<xml><!DOCTYPE x></xml>"]:
        response = await client.post("/shop/notify", content=garbage, headers={"x-signature": "00"})
        assert response.status_code == 400
    assert (await post_example(client, example_notify())).content == b"OK"
    assert len(delivered) == 1
