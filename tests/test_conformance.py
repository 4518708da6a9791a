"""Every installed provider that offers demo requests, through the same route and the same rules.

The requests are genuinely signed by each provider's testing helpers with throwaway keys.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from paynotify import DemoRequest, Notifier, PaymentResult, Provider, Source, registry
from paynotify.cli._demo import run_demo
from paynotify.recovery import EmulatorTransport

PROVIDERS = [name for name in registry.names() if registry.get(name).demo() is not None]


def test_first_party_providers_are_installed() -> None:
    assert {"alipay", "wechatpay-v2"} <= set(PROVIDERS)


async def send(client: httpx.AsyncClient, account: str, request: DemoRequest) -> httpx.Response:
    url = f"/{account}/{request.channel}" + (f"?{request.query.decode()}" if request.query else "")
    return await client.request(request.method, url, content=request.body, headers=dict(request.headers))


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> Provider[Any]:
    return registry.get(request.param)


def setup(
    provider: Provider[Any],
) -> tuple[Notifier, list[PaymentResult], list[DemoRequest], DemoRequest]:
    demo = provider.demo()
    assert demo is not None
    assert demo.forged is not None
    # A provider that must be asked about a request (a v2 refund's confirmation) is, at its emulator.
    emulators = EmulatorTransport()
    notifier = Notifier("memory://", api_transport=emulators)
    notifier.add_account("acct", provider, **demo.settings)
    if demo.api is not None:
        emulators.mount(urlsplit(demo.settings["base_url"]).hostname or "", demo.api)
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    return notifier, seen, list(demo.requests), demo.forged


def client_for(notifier: Notifier) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=notifier.asgi()), base_url="http://t")


async def test_genuine_requests_are_acked_and_delivered_once(provider: Provider[Any]) -> None:
    notifier, seen, requests, _ = setup(provider)
    ack = provider.ack()
    notify = [r for r in requests if r.channel == "notify"]
    async with client_for(notifier) as client:
        for request in requests:
            response = await send(client, "acct", request)
            if request.channel == "notify":
                assert (response.status_code, response.content) == (ack.status, ack.body), request.label
            else:
                assert response.status_code in (200, 303), request.label
                assert response.content != ack.body  # a return never answers like an ack
        for request in notify:  # every retry: acknowledged, not delivered again
            assert (await send(client, "acct", request)).content == ack.body
    assert len(seen) == len(notify)
    assert all(r.source is Source.NOTIFY for r in seen)
    assert len({r.event_id for r in seen}) == len(seen)


async def test_forged_and_truncated_requests_are_refused(provider: Provider[Any]) -> None:
    notifier, seen, requests, forged = setup(provider)
    ack = provider.ack()
    async with client_for(notifier) as client:
        response = await send(client, "acct", forged)
        assert response.content != ack.body or response.status_code != ack.status
        for request in requests:
            if request.channel != "notify":
                continue
            for cut in (0, 1, len(request.body) // 2, len(request.body) - 1):
                response = await send(client, "acct", replace(request, body=request.body[:cut]))
                assert response.content != ack.body or response.status_code != ack.status
    assert seen == []


async def test_subscriber_failure_is_retried(provider: Provider[Any]) -> None:
    notifier, seen, requests, _ = setup(provider)
    failures = iter([RuntimeError("fulfilment service down")])

    @notifier.subscribe
    def flaky(result: PaymentResult) -> None:
        if (error := next(failures, None)) is not None:
            raise error

    first = next(r for r in requests if r.channel == "notify")
    ack = (provider.ack().status, provider.ack().body)
    async with client_for(notifier) as client:
        failed = await send(client, "acct", first)
        retried = await send(client, "acct", first)
    assert (failed.status_code, failed.content) != ack
    assert (retried.status_code, retried.content) == ack
    assert len(seen) == 1  # the subscriber that succeeded the first time is not run again


def test_demo_command_runs() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "success" in text
    assert "(duplicate)" in text
    assert "forged" in text.lower()
    for name in ("alipay", "wechatpay-v2"):
        assert f"demo-{name}" in text
