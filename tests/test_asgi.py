"""The one route, over HTTP semantics: status codes the pipeline cannot decide, and mounting."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from _wechatpay_v2 import APPID, MCH_ID, key, payment
from conftest import example_notify, post_example
from starlette.applications import Starlette
from starlette.routing import Mount

from paynotify import InboundRequest, Notifier, PaymentResult, StoreError, UnknownAccount, UnknownChannel


async def test_notify_round_trip(client: httpx.AsyncClient, delivered: list[PaymentResult]) -> None:
    response = await post_example(client, example_notify())
    assert (response.status_code, response.content) == (200, b"OK")
    assert len(delivered) == 1


async def test_unknown_account_is_404(client: httpx.AsyncClient, delivered: list[PaymentResult]) -> None:
    response = await post_example(client, example_notify(), account="nobody")
    assert (response.status_code, response.text) == (404, "unknown account")
    assert delivered == []


async def test_unknown_channel_of_a_known_account_is_404_naming_its_channels(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    response = await client.post("/shop/foo", content=b"x")
    assert response.status_code == 404
    assert response.text == "unknown channel; account 'shop' serves /shop/notify"
    assert delivered == []


async def test_the_pipeline_tells_an_unknown_channel_from_an_unknown_account(notifier: Notifier) -> None:
    inbound = InboundRequest("POST", "foo", {}, b"", b"")
    with pytest.raises(UnknownChannel) as caught:
        await notifier.handle("shop", inbound)
    assert caught.value.channels == frozenset({"notify"})
    with pytest.raises(UnknownAccount) as missing:
        await notifier.handle("nobody", inbound)
    assert not isinstance(missing.value, UnknownChannel)


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
    for garbage in [b"", b"\xff\xfe\x00", b"{" * 10000]:
        response = await client.post("/shop/notify", content=garbage, headers={"x-signature": "00"})
        assert response.status_code == 400
    assert (await post_example(client, example_notify())).content == b"OK"
    assert len(delivered) == 1


async def test_xml_with_a_doctype_reaches_the_parser_and_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    # To a WeChat Pay v2 account, whose provider parses XML: the DOCTYPE is seen and refused there.
    n = Notifier("memory://")
    n.add_account("wx", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=key())
    seen: list[PaymentResult] = []
    n.subscribe(seen.append)
    entity = b'<!DOCTYPE xml [<!ENTITY x "SUCCESS">]><xml><return_code>&x;</return_code></xml>'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://t") as c:
        for body in (b"<!DOCTYPE xml><xml><return_code>SUCCESS</return_code></xml>", entity):
            response = await c.post("/wx/notify", content=body)
            assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.content
        assert (await c.post("/wx/notify", content=payment())).content.count(b"SUCCESS") == 1
    assert "DTD" in caplog.text or "DOCTYPE" in caplog.text
    assert len(seen) == 1


async def call(app: object, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drive an ASGI app by hand: what it is sent, and what it answers."""
    inbox = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return sent


def http_scope(path: str, method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None,
               root_path: str = "") -> dict[str, Any]:  # fmt: skip
    return {"type": "http", "method": method, "path": path, "root_path": root_path,
            "headers": headers or [], "query_string": b""}  # fmt: skip


async def test_other_methods_are_405_with_allow(notifier: Notifier) -> None:
    sent = await call(notifier.asgi(), http_scope("/shop/notify", "PUT"), [])
    assert sent[0]["status"] == 405
    assert (b"allow", b"POST") in sent[0]["headers"]
    sent = await call(notifier.asgi(), http_scope("/shop/return", "DELETE"), [])
    assert (sent[0]["status"], dict(sent[0]["headers"])[b"allow"]) == (405, b"GET, POST")


@pytest.mark.parametrize("path", ["/", "/shop", "/shop/notify/", "//notify", "/a/b/c", ""])
async def test_paths_outside_the_route_are_404(notifier: Notifier, path: str) -> None:
    sent = await call(notifier.asgi(), http_scope(path), [{"type": "http.request", "body": b"x"}])
    assert sent[0]["status"] == 404


async def test_body_in_chunks_and_first_of_repeated_headers(
    notifier: Notifier, delivered: list[PaymentResult]
) -> None:
    headers, body = example_notify()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"x-signature", b"00"))  # a second copy: the first one counts
    chunks = [
        {"type": "http.request", "body": body[i : i + 7], "more_body": True} for i in range(0, len(body), 7)
    ]
    chunks.append({"type": "http.request", "body": b"", "more_body": False})
    sent = await call(notifier.asgi(), http_scope("/shop/notify", headers=raw_headers), chunks)
    assert (sent[0]["status"], sent[1]["body"]) == (200, b"OK")
    assert dict(sent[0]["headers"])[b"content-length"] == b"2"
    assert len(delivered) == 1


async def test_client_gone_before_the_body_is_400_and_nothing_dispatched(
    notifier: Notifier, delivered: list[PaymentResult]
) -> None:
    first = {"type": "http.request", "body": b"abc", "more_body": True}
    sent = await call(notifier.asgi(), http_scope("/shop/notify"), [first])  # then http.disconnect
    assert sent[0]["status"] == 400
    assert delivered == []


async def test_root_path_from_a_mount_is_honoured(notifier: Notifier, delivered: list[PaymentResult]) -> None:
    headers, body = example_notify()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = http_scope("/payments/shop/notify", headers=raw_headers, root_path="/payments")
    sent = await call(notifier.asgi(), scope, [{"type": "http.request", "body": body}])
    assert sent[1]["body"] == b"OK"
    # A root_path that is only a prefix of a path segment is not a mount point.
    scope = http_scope("/paymentsX/shop/notify", headers=raw_headers, root_path="/payments")
    assert (await call(notifier.asgi(), scope, [{"type": "http.request", "body": body}]))[0]["status"] == 404


async def test_lifespan_opens_and_closes_the_notifier(tmp_path: Path) -> None:
    n = Notifier(f"sqlite:///{tmp_path / 'events.db'}")
    n.add_account("shop", "examplepay", app_id="app-1", secret="example-secret-for-tests")
    sent = await call(
        n.asgi(), {"type": "lifespan"}, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert (tmp_path / "events.db").exists()


async def test_lifespan_startup_failure_is_reported(tmp_path: Path) -> None:
    n = Notifier(f"sqlite:///{tmp_path / 'missing-dir' / 'events.db'}")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    with pytest.raises(StoreError):
        await n.asgi()({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "missing-dir" in sent[0]["message"]


async def test_a_body_of_exactly_the_limit_is_read_one_byte_more_is_not() -> None:
    headers, body = example_notify()
    for declared in (True, False):  # by Content-Length up front, and while streaming without it
        n = Notifier("memory://", body_limit=len(body))
        n.add_account("shop", "examplepay", app_id="app-1", secret="example-secret-for-tests")
        seen: list[PaymentResult] = []
        n.subscribe(seen.append)

        async def stream(data: bytes) -> AsyncIterator[bytes]:
            yield data

        transport = httpx.ASGITransport(app=n.asgi())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            exact = await c.post("/shop/notify", content=body if declared else stream(body), headers=headers)
            over = body + b" "
            too_big = await c.post(
                "/shop/notify", content=over if declared else stream(over), headers=headers
            )
        assert (exact.status_code, too_big.status_code) == (200, 413)
        assert len(seen) == 1


def test_the_return_url_escapes_the_order_id() -> None:
    from paynotify._return_page import default_return_reply

    result = PaymentResult(
        provider="examplepay", account="shop", kind="payment", status="pending", provider_status="RETURN",
        order_id="o 1/2?x=<y>&z", event_id="e-1", source="return",
    )  # fmt: skip
    reply = default_return_reply(result, "https://shop.example/orders/{order_id}/thanks")
    assert reply.status == 303
    assert reply.headers["location"] == "https://shop.example/orders/o%201%2F2%3Fx%3D%3Cy%3E%26z/thanks"
    page = default_return_reply(result, None)
    assert b"&lt;y&gt;" in page.body
    assert b"<y>" not in page.body


async def test_every_read_leaves_the_body_deadline_whatever_its_end(notifier: Notifier) -> None:
    # A read still on the watchdog's books after its request would be a leak, and a stale entry
    # would keep the watchdog waking for ever.
    app = notifier.asgi()
    headers, body = example_notify()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    whole = [{"type": "http.request", "body": body, "more_body": False}]
    cut = [{"type": "http.request", "body": b"abc", "more_body": True}]  # then http.disconnect
    over = [{"type": "http.request", "body": b"x" * (notifier.options.body_limit + 1), "more_body": False}]
    for messages in (whole, cut, over):
        sent = await call(app, http_scope("/shop/notify", headers=raw_headers), messages)
        assert sent[0]["status"] in (200, 400, 413)
    assert app._deadline._reading == {}
    assert app._deadline._expired == set()


async def test_a_declared_body_over_the_limit_is_413_before_anything_is_received(notifier: Notifier) -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/shop/notify",
        "query_string": b"",
        "headers": [(b"content-length", str(10**9).encode())],
    }
    await notifier.asgi()(scope, receive, send)
    assert sent[0]["status"] == 413
