"""Django under uvicorn with `paynotify_asgi` (issue 25, item 3): the body is bounded before Django's
ASGI handler would read it whole. The probe's cases over raw sockets: a chunked 256 MiB body, a
`Content-Length: 10^9`, a slow upload, 30 stalled uploads beside a genuine notification."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from _raw_http import chunked_flood, connect, head, read_status
from _servers import Served, subprocess_server
from conftest import example_notify
from django_project.asgi import django_application
from django_project.payments import BODY_TIMEOUT, notifier

from paynotify.contrib.django import close, paynotify_asgi

NOTIFY = "/payments/shop/notify"
LIMIT = 64 * 1024
# The deadline lands between BODY_TIMEOUT and BODY_TIMEOUT + 1 s (a watchdog wakes every second);
# the rest is a loaded machine's slack.
RELEASED_WITHIN = BODY_TIMEOUT + 1 + 3.0


@pytest.fixture(scope="module", autouse=True)
def _close_notifier() -> Iterator[None]:
    yield
    close(notifier)  # the in-process tests opened it; closed while pytest's streams are open


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    command = ("uvicorn", "django_project.asgi:application", "--host", "127.0.0.1", "--port", "0")
    with subprocess_server(*command) as served:
        yield served


def test_a_chunked_256_mib_body_is_413_after_a_bounded_read(server: Served) -> None:
    sock = connect(server.base_url)
    sock.sendall(head(NOTIFY, "Transfer-Encoding: chunked", "Content-Type: application/json"))
    with chunked_flood(sock, 256 * 1024 * 1024) as flood:
        status = read_status(sock, timeout=15)
        sent = flood.sent
    assert status == 413
    # What the server took before answering is the limit plus socket buffers, never the whole body.
    assert sent < 16 * 1024 * 1024, sent


def test_a_declared_gigabyte_is_413_at_once(server: Served) -> None:
    with contextlib.closing(connect(server.base_url)) as sock:
        started = time.monotonic()
        sock.sendall(head(NOTIFY, f"Content-Length: {10**9}", "Content-Type: application/json"))
        status = read_status(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert status == 413
    assert elapsed < 2.0


def test_a_slow_upload_is_408_within_the_body_deadline(server: Served) -> None:
    with contextlib.closing(connect(server.base_url)) as sock:
        started = time.monotonic()
        sock.sendall(head(NOTIFY, "Content-Length: 1000", "Content-Type: application/json"))
        sock.settimeout(0.5)
        status = None
        while status is None and time.monotonic() - started < RELEASED_WITHIN + 5:
            with contextlib.suppress(OSError):
                sock.sendall(b"{")  # a byte every half second: never idle, never done
            status = read_status(sock, timeout=0.5)
        elapsed = time.monotonic() - started
    assert status == 408
    assert BODY_TIMEOUT <= elapsed < RELEASED_WITHIN


def _stalled(base_url: str) -> socket.socket:
    sock = connect(base_url)
    sock.sendall(head(NOTIFY, "Content-Length: 1000", "Content-Type: application/json") + b'{"order_id"')
    return sock


def test_stalled_uploads_are_released_while_notifications_are_answered(server: Served) -> None:
    stalled = [_stalled(server.base_url) for _ in range(30)]
    started = time.monotonic()
    try:
        headers, body = example_notify("order-beside-the-stalled")
        genuine = httpx.post(server.base_url + NOTIFY, content=body, headers=headers, timeout=5)
        answered = time.monotonic() - started
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            statuses = list(pool.map(lambda s: read_status(s, timeout=RELEASED_WITHIN + 2), stalled))
        released = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert (genuine.status_code, genuine.content) == (200, b"OK")
    assert answered < BODY_TIMEOUT  # not queued behind the stalled ones
    assert statuses == [408] * 30
    assert released < RELEASED_WITHIN


def test_the_rest_of_the_site_is_django(server: Served) -> None:
    with httpx.Client(base_url=server.base_url, timeout=5) as http:
        assert http.get("/delivered").status_code == 200
        assert http.post("/guarded", content=b"{}").status_code == 403  # Django's CSRF middleware
        # A path beside the prefix is Django's, which has no such URL.
        assert http.post("/payments-other/shop/notify", content=b"{}").status_code == 404
        assert http.get(NOTIFY).headers["allow"] == "POST"  # the route's own 405


async def test_the_prefix_is_found_below_the_root_path() -> None:
    app = paynotify_asgi(django_application, notifier, prefix="/payments/")
    transport = httpx.ASGITransport(app=app, root_path="/site")
    headers, body = example_notify("order-under-a-root-path")
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        reply = await http.post("/site" + NOTIFY, content=body, headers=headers)
        too_big = await http.post("/site" + NOTIFY, content=b"x" * (LIMIT + 1), headers=headers)
        beside = await http.get("/site/delivered")
    assert (reply.status_code, reply.content) == (200, b"OK")
    assert too_big.status_code == 413
    assert "order-under-a-root-path" in beside.json()["orders"]


@pytest.mark.parametrize("prefix", ["payments/", "/payments", ""])
def test_a_prefix_must_be_a_path_with_both_slashes(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix must start and end with '/'"):
        paynotify_asgi(django_application, notifier, prefix=prefix)


# -- Django under WSGI: the view's own body deadline, where the server gives the socket --------------


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("gunicorn")
    home = tmp_path_factory.mktemp("gunicorn")  # its control socket goes there, one per run
    command = (
        "gunicorn",
        "--bind=127.0.0.1:0",
        "--worker-class=gthread",
        "--threads=40",
        "django_project.wsgi:application",
    )
    with subprocess_server(*command, env={"HOME": str(home)}) as served:
        yield served


def test_under_gunicorn_a_slow_upload_is_408_within_the_body_deadline(gunicorn: Served) -> None:
    test_a_slow_upload_is_408_within_the_body_deadline(gunicorn)


def test_under_gunicorn_stalled_uploads_are_released(gunicorn: Served) -> None:
    test_stalled_uploads_are_released_while_notifications_are_answered(gunicorn)
