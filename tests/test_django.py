"""Django: the URL patterns, the async view and the Notifier's own loop, with real Django (its test
client, with CSRF checks on) and over HTTP under uvicorn (ASGI) and waitress (WSGI)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Iterator

import django
import httpx
import pytest
from _alipay_keys import vector
from _echo_provider import BODY, QUERY, seen
from _servers import Served, raw_post, subprocess_server
from conftest import SECRET, example_notify
from django.test import AsyncClient, Client
from django.urls import reverse
from django_project.payments import DELIVERED, notifier
from paynotify_examplepay import sign

import paynotify.contrib.django
from paynotify import Reply
from paynotify.contrib.django import _response, close

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
django.setup()

NOTIFY = vector("notify_trade_success.form")
RETURN = vector("return_page_pay.query")
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@pytest.fixture(scope="module", autouse=True)
def _close_notifier() -> Iterator[None]:
    yield
    close(notifier)


@pytest.fixture
def client() -> Client:
    return Client(enforce_csrf_checks=True)


def order() -> str:
    """A fresh order id: the project's store lives as long as the test process."""
    return f"order-{uuid.uuid4().hex[:12]}"


def delivered(order_id: str) -> int:
    return sum(r.order_id == order_id for r in DELIVERED)


def awkward_notification(order_id: str) -> tuple[dict[str, str], bytes]:
    """Signed bytes a framework would be tempted to touch: a form content type on a JSON body, UTF-8,
    CRLF and trailing whitespace, all covered by the HMAC."""
    body = (
        f'{{"order_id": "{order_id}", "txn_id": "t-{order_id}", "amount": "1.00",\r\n'
        f' "status": "paid", "app_id": "app-1", "note": "测试 + %2B"}}\r\n  \n'
    ).encode()
    return {"HTTP_X_SIGNATURE": sign(body, SECRET)}, body


def test_patterns_are_namespaced_for_reverse() -> None:
    assert reverse("paynotify:endpoint", kwargs={"account": "shop", "channel": "notify"}) == (
        "/payments/shop/notify"
    )


def test_exported_names() -> None:
    assert paynotify.contrib.django.__all__ == [
        "close",
        "notification_view",
        "paynotify_asgi",
        "paynotify_urls",
        "with_lifespan",
    ]


def test_replies_become_responses_as_the_asgi_route_sends_them() -> None:
    redirect = _response(Reply.redirect("https://shop.example/orders/1"))
    assert (redirect.status_code, redirect.content, redirect["Location"]) == (
        303,
        b"",
        "https://shop.example/orders/1",
    )
    assert "Content-Type" not in redirect  # Django would add text/html
    xml = _response(Reply(200, b"<xml/>", "text/xml", {"x-extra": "1"}))
    assert (xml["Content-Type"], xml["X-Extra"], xml.content) == ("text/xml", "1", b"<xml/>")


def test_notification_round_trip(client: Client) -> None:
    order_id = order()
    headers, body = example_notify(order_id)
    response = client.post(
        "/payments/shop/notify",
        body,
        content_type=headers["content-type"],
        HTTP_X_SIGNATURE=headers["x-signature"],
    )
    assert (response.status_code, response.content) == (200, b"OK")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    again = client.post(
        "/payments/shop/notify",
        body,
        content_type=headers["content-type"],
        HTTP_X_SIGNATURE=headers["x-signature"],
    )
    assert again.content == b"OK"
    assert delivered(order_id) == 1


def test_body_bytes_reach_the_provider_exactly(client: Client) -> None:
    order_id = order()
    extra, body = awkward_notification(order_id)
    response = client.post("/payments/shop/notify", body, content_type=FORM, **extra)  # type: ignore[arg-type]
    assert (response.status_code, response.content) == (200, b"OK")
    (result,) = [r for r in DELIVERED if r.order_id == order_id]
    assert result.raw["note"] == "测试 + %2B"


def test_providers_get_the_query_and_body_bytes_exactly(client: Client) -> None:
    response = client.post(
        f"/payments/echo/notify?{QUERY}", BODY, content_type=FORM, headers={"x-odd": "a b"}
    )
    got = seen(response.content)
    assert (got["method"], got["query"], got["body"]) == ("POST", QUERY.encode(), BODY)
    assert (got["headers"]["content-type"], got["headers"]["x-odd"]) == (FORM, "a b")


def test_forged_body_is_refused(client: Client) -> None:
    order_id = order()
    extra, body = awkward_notification(order_id)
    forged = body.replace(b"1.00", b"9.00")
    response = client.post("/payments/shop/notify", forged, content_type=FORM, **extra)  # type: ignore[arg-type]
    assert (response.status_code, response.content) == (400, b"RETRY")
    assert delivered(order_id) == 0


def test_a_refusal_keeps_the_peer_django_saw(client: Client) -> None:
    extra, body = awkward_notification(order())
    forged = body.replace(b"1.00", b"9.00")
    client.post("/payments/shop/notify", forged, content_type=FORM, REMOTE_ADDR="192.0.2.55", **extra)  # type: ignore[arg-type]
    newest = notifier.refused_requests.of("shop")[0]
    assert (newest.remote, newest.reason, newest.channel) == ("192.0.2.55", "refused_signature", "notify")


def test_a_body_over_the_limit_is_kept_with_the_peer(client: Client) -> None:
    big = b"x" * (notifier.body_limit + 1)
    response = client.post("/payments/shop/notify", big, content_type=FORM, REMOTE_ADDR="192.0.2.56")
    assert response.status_code == 413
    newest = notifier.refused_requests.of("shop")[0]
    assert (newest.remote, newest.reason, newest.error) == ("192.0.2.56", "too_large", "HTTP 413")


def test_alipay_vector_and_return(client: Client) -> None:
    first = client.post("/payments/sandbox/notify", NOTIFY, content_type=FORM)
    again = client.post("/payments/sandbox/notify", NOTIFY, content_type=FORM)
    forged = client.post(
        "/payments/sandbox/notify",
        NOTIFY.replace(b"total_amount=0.01", b"total_amount=1.00"),
        content_type=FORM,
    )
    back = client.get("/payments/sandbox/return", QUERY_STRING=RETURN.decode("ascii"))
    assert (first.status_code, first.content) == (200, b"success")
    assert again.content == b"success"
    assert forged.content == b"fail"
    assert back.status_code == 200
    assert back.content != b"success"
    assert b"1703141270" in back.content
    assert delivered("1703147160") == 1


def test_the_route_is_csrf_exempt_and_csrf_is_on(client: Client) -> None:
    assert client.post("/guarded", b"{}", content_type="application/json").status_code == 403
    headers, body = example_notify(order())
    response = client.post(
        "/payments/shop/notify",
        body,
        content_type=headers["content-type"],
        HTTP_X_SIGNATURE=headers["x-signature"],
    )
    assert response.status_code == 200


def test_unknown_account_or_channel_is_404(client: Client) -> None:
    order_id = order()
    headers, body = example_notify(order_id)
    for path in ("/payments/nobody/notify", "/payments/shop/refund", "/payments/shop/notify/extra"):
        response = client.post(
            path, body, content_type=headers["content-type"], HTTP_X_SIGNATURE=headers["x-signature"]
        )
        assert response.status_code == 404, path
    assert delivered(order_id) == 0


def test_methods_as_the_asgi_route_answers(client: Client) -> None:
    response = client.get("/payments/shop/notify")
    assert (response.status_code, response["Allow"]) == (405, "POST")
    assert client.put("/payments/sandbox/return").status_code == 405


def test_too_large_content_length_is_413_before_reading(client: Client) -> None:
    limit = notifier.body_limit
    # The test client's input holds one byte and fails any read past it: a 413 means nothing was read.
    response = client.generic("POST", "/payments/shop/notify", b"x", CONTENT_LENGTH=str(limit + 1))
    assert response.status_code == 413
    order_id = order()
    big = client.post("/payments/shop/notify", b"y" * (limit + 1), content_type="application/json")
    assert big.status_code == 413
    assert delivered(order_id) == 0


async def test_concurrent_duplicates_are_dispatched_once() -> None:
    order_id = "slow-" + order()
    headers, body = example_notify(order_id)
    client = AsyncClient(enforce_csrf_checks=True)

    async def post() -> tuple[int, bytes]:
        response = await client.post(
            "/payments/shop/notify",
            body,
            content_type=headers["content-type"],
            headers={"x-signature": headers["x-signature"]},
        )
        return response.status_code, response.content

    replies = await asyncio.gather(*(post() for _ in range(5)))
    assert sorted(replies) == [(200, b"OK")] + [(400, b"RETRY")] * 4  # the in-flight ones are asked to retry
    assert await post() == (200, b"OK")
    assert delivered(order_id) == 1


# -- over HTTP, in a server process ------------------------------------------------------------------

SERVERS = {
    # uvicorn stops on SIGTERM; waitress-serve only on SIGINT (docs/django.md).
    # paynotify_asgi: paynotify's paths answered before Django's handler reads the body.
    "uvicorn-asgi": (
        ("uvicorn", "django_project.asgi:application", "--host", "127.0.0.1", "--port", "0"),
        signal.SIGTERM,
    ),
    # The view under Django's ASGI handler, as a project without paynotify_asgi serves it.
    "uvicorn-asgi-view": (
        ("uvicorn", "django_project.asgi:django_view", "--host", "127.0.0.1", "--port", "0"),
        signal.SIGTERM,
    ),
    "waitress-wsgi": (("waitress", "--listen=127.0.0.1:0", "django_project.wsgi:application"), signal.SIGINT),
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Served]:
    command, _ = SERVERS[request.param]
    with subprocess_server(*command) as served:
        yield served


def _orders(base_url: str) -> list[str]:
    orders: list[str] = httpx.get(f"{base_url}/delivered").json()["orders"]
    return orders


def test_served_notifications(server: Served) -> None:
    url = server.base_url + "/payments"
    with httpx.Client() as http:
        first = http.post(f"{url}/sandbox/notify", content=NOTIFY, headers={"content-type": FORM})
        forged = http.post(
            f"{url}/sandbox/notify",
            content=NOTIFY.replace(b"total_amount=0.01", b"total_amount=1.00"),
            headers={"content-type": FORM},
        )
        back = http.get(f"{url}/sandbox/return?" + RETURN.decode("ascii"))
        order_id = order()
        extra, body = awkward_notification(order_id)
        exact = http.post(
            f"{url}/shop/notify",
            content=body,
            headers={"content-type": FORM, "x-signature": extra["HTTP_X_SIGNATURE"]},
        )
        nobody = http.post(
            f"{url}/nobody/notify", content=body, headers={"x-signature": extra["HTTP_X_SIGNATURE"]}
        )
        guarded = http.post(f"{server.base_url}/guarded", content=b"{}")
    assert (first.status_code, first.content) == (200, b"success")
    assert forged.content == b"fail"
    assert back.status_code == 200
    assert b"1703141270" in back.content
    assert (exact.status_code, exact.content) == (200, b"OK")  # CSRF middleware on, route exempt
    assert guarded.status_code == 403
    assert nobody.status_code == 404
    assert _orders(server.base_url).count("1703147160") == 1
    assert order_id in _orders(server.base_url)


def test_served_query_and_body_bytes_are_exact(server: Served) -> None:
    status, reply = raw_post(server.base_url, "/payments/echo/notify?" + QUERY, BODY, {"Content-Type": FORM})
    assert status == 400
    got = seen(reply)
    assert (got["query"], got["body"]) == (QUERY.encode(), BODY)
    assert got["headers"]["content-type"] == FORM


def test_served_body_limit(server: Served) -> None:
    url = server.base_url + "/payments/shop/notify"
    headers, _ = example_notify()
    too_big = httpx.post(url, content=b"x" * (64 * 1024 + 1), headers=headers)
    assert too_big.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on what is read
        for _ in range(100):
            yield b"y" * 1024

    assert httpx.post(url, content=chunks(), headers=headers).status_code == 413


async def test_served_concurrent_duplicates(server: Served) -> None:
    order_id = "slow-" + order()
    headers, body = example_notify(order_id)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        replies = await asyncio.gather(
            *(http.post("/payments/shop/notify", content=body, headers=headers) for _ in range(5))
        )
        later = await http.post("/payments/shop/notify", content=body, headers=headers)
    assert sorted((r.status_code, r.content) for r in replies) == [(200, b"OK")] + [(400, b"RETRY")] * 4
    assert later.content == b"OK"
    assert _orders(server.base_url).count(order_id) == 1


def test_store_is_closed_when_the_server_stops() -> None:
    for name, (command, stop_signal) in SERVERS.items():
        with subprocess_server(*command) as served:
            headers, body = example_notify(order())
            assert (
                httpx.post(served.base_url + "/payments/shop/notify", content=body, headers=headers).content
                == b"OK"
            )
            log = served.stop(stop_signal)
        assert "paynotify: notifier closed" in log, (name, log)
        assert json.dumps(name)  # names the server in a failure


def test_the_django_adapter_is_built_of_public_names_only() -> None:
    # Imports point down, on seams: contrib/django.py takes the facade and the public kit of a door
    # (paynotify.adapters, issue 26), never a private module (tests/test_layers.py walks every layer).
    import ast
    from pathlib import Path

    tree = ast.parse(Path(paynotify.contrib.django.__file__).read_text())
    ours = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "paynotify"
    }
    ours |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] == "paynotify"
    }
    assert ours == {"paynotify", "paynotify.adapters"}
