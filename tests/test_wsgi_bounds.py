"""Bounded bodies outside the ASGI route (issue 25, item 4), over raw sockets.

gunicorn and werkzeug's server hand the app its socket, so the WSGI app enforces its own body
deadline there (408 within `body_timeout`, however the client trickles or stalls). waitress reads the
whole body before the app runs, so there the bounds are its own settings, as docs/flask.md shows them:
`max_request_body_size` near `body_limit`, `channel_timeout` and `cleanup_interval`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import socket
import threading
import time
import wsgiref.simple_server
from collections.abc import Iterator

import httpx
import pytest
import waitress.server
from _raw_http import chunked_flood, connect, head, read_status
from _servers import Served, subprocess_server
from _wsgi_bounded import BODY_TIMEOUT, application
from conftest import example_notify
from werkzeug.serving import make_server

NOTIFY = "/shop/notify"
LIMIT = 64 * 1024
# The watchdog cuts a read at the deadline; the rest is a loaded machine's slack.
RELEASED_WITHIN = BODY_TIMEOUT + 3.0


@pytest.fixture(scope="module", autouse=True)
def _close_notifier() -> Iterator[None]:
    yield
    application.close()  # the in-process servers opened it; closed while pytest's streams are open


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("gunicorn")
    home = tmp_path_factory.mktemp("gunicorn")  # its control socket goes there, one per run
    # docs/flask.md's settings, with more threads (30 stalled uploads and a genuine notification
    # side by side).
    command = (
        "gunicorn",
        "--bind=127.0.0.1:0",
        "--worker-class=gthread",
        "--threads=40",
        "--timeout=30",
        "--limit-request-line=4094",
        "--limit-request-fields=50",
        "--limit-request-field_size=8190",
        "--keep-alive=10",  # longer than the body deadline: a kept-alive socket outlives it
        "_wsgi_bounded",
    )
    with subprocess_server(*command, env={"HOME": str(home)}) as served:
        yield served


@pytest.fixture(scope="module")
def werkzeug() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture(params=["gunicorn", "werkzeug"])
def base_url(request: pytest.FixtureRequest) -> str:
    if request.param == "gunicorn":
        served: Served = request.getfixturevalue("gunicorn")
        return served.base_url
    url: str = request.getfixturevalue("werkzeug")
    return url


def _trickle(base_url: str, byte_every: float) -> tuple[int | None, float]:
    with contextlib.closing(connect(base_url)) as sock:
        started = time.monotonic()
        sock.sendall(head(NOTIFY, "Content-Length: 1000", "Content-Type: application/json"))
        status = None
        while status is None and time.monotonic() - started < RELEASED_WITHIN + 5:
            with contextlib.suppress(OSError):
                sock.sendall(b"{")  # never idle for long, never done
            status = read_status(sock, timeout=byte_every)
        return status, time.monotonic() - started


def test_a_slow_upload_is_408_within_the_body_deadline(base_url: str) -> None:
    status, elapsed = _trickle(base_url, byte_every=0.3)
    assert status == 408
    assert BODY_TIMEOUT <= elapsed < RELEASED_WITHIN


def _stalled(base_url: str) -> socket.socket:
    sock = connect(base_url)
    sock.sendall(head(NOTIFY, "Content-Length: 1000", "Content-Type: application/json") + b'{"order_id"')
    return sock


def test_stalled_uploads_are_released_while_notifications_are_answered(base_url: str) -> None:
    stalled = [_stalled(base_url) for _ in range(30)]
    started = time.monotonic()
    try:
        headers, body = example_notify("order-beside-the-stalled")
        genuine = httpx.post(base_url + NOTIFY, content=body, headers=headers, timeout=5)
        answered = time.monotonic() - started
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            statuses = list(pool.map(lambda s: read_status(s, timeout=RELEASED_WITHIN + 2), stalled))
        released = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert (genuine.status_code, genuine.content) == (200, b"OK")
    assert answered < BODY_TIMEOUT
    assert statuses == [408] * 30
    assert released < RELEASED_WITHIN


def test_a_declared_gigabyte_is_413_at_once(base_url: str) -> None:
    with contextlib.closing(connect(base_url)) as sock:
        started = time.monotonic()
        sock.sendall(head(NOTIFY, f"Content-Length: {10**9}", "Content-Type: application/json"))
        status = read_status(sock, timeout=10)
    assert status == 413
    assert time.monotonic() - started < 2.0


def test_a_chunked_256_mib_body_is_413_after_a_bounded_read(base_url: str) -> None:
    sock = connect(base_url)
    sock.sendall(head(NOTIFY, "Transfer-Encoding: chunked", "Content-Type: application/json"))
    with chunked_flood(sock, 256 * 1024 * 1024) as flood:
        status = read_status(sock, timeout=15)
        sent = flood.sent
    assert status == 413
    assert sent < 16 * 1024 * 1024, sent


def test_a_kept_alive_connection_outlives_the_deadline_of_a_body_read_in_time(gunicorn: Served) -> None:
    # The watchdog must leave alone a socket whose body arrived in time: the connection's next
    # request reads from it.
    host, port = gunicorn.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        replies = []
        for order_id in ("order-kept-1", "order-kept-2", "order-kept-3"):
            headers, body = example_notify(order_id)
            connection.request("POST", NOTIFY, body=body, headers=headers)
            if order_id == "order-kept-1":
                first_socket = connection.sock
            response = connection.getresponse()
            replies.append((response.status, response.read()))
            time.sleep(BODY_TIMEOUT + 1)
        assert connection.sock is first_socket  # one connection throughout, never reopened
    finally:
        connection.close()
    assert replies == [(200, b"OK")] * 3


def test_gunicorn_bounds_the_request_line_and_headers(gunicorn: Served) -> None:
    with contextlib.closing(connect(gunicorn.base_url)) as sock:
        sock.sendall(head(NOTIFY + "?" + "a" * 5000, "Content-Length: 0"))
        assert read_status(sock, timeout=10) == 414
    with contextlib.closing(connect(gunicorn.base_url)) as sock:
        sock.sendall(head(NOTIFY, "Content-Length: 0", *(f"X-Field-{i}: x" for i in range(60))))
        assert read_status(sock, timeout=10) in (400, 431)  # gunicorn 27 answers 431
    with contextlib.closing(connect(gunicorn.base_url)) as sock:
        sock.sendall(head(NOTIFY, "Content-Length: 0", "X-Field: " + "x" * 9000))
        assert read_status(sock, timeout=10) in (400, 431)


def test_under_wsgiref_a_body_that_came_too_slowly_is_408_once_it_is_in() -> None:
    # wsgiref gives the app no socket: the deadline is checked when the read returns, so a stalled
    # upload is held (docs/flask.md), but a late one is not taken. The 408 carries no hop-by-hop
    # header, which wsgiref refuses from an app (PEP 3333).
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, application, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with contextlib.closing(connect(f"http://127.0.0.1:{server.server_port}")) as sock:
            sock.sendall(head(NOTIFY, "Content-Length: 12", "Content-Type: application/json"))
            for _ in range(12):  # 12 bytes over ~3.6 s, past the 2 s deadline
                time.sleep(0.3)
                sock.sendall(b"{")
            assert read_status(sock, timeout=10) == 408
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# -- waitress: its own settings ---------------------------------------------------------------------

# As docs/flask.md sets them, but the idle timeout short so the test takes seconds.
CHANNEL_TIMEOUT, CLEANUP_INTERVAL = 2, 1


@pytest.fixture(scope="module")
def waitress_url() -> Iterator[str]:
    server = waitress.server.create_server(
        application,
        host="127.0.0.1",
        port=0,
        threads=4,
        max_request_body_size=LIMIT,
        channel_timeout=CHANNEL_TIMEOUT,
        cleanup_interval=CLEANUP_INTERVAL,
    )
    assert isinstance(server, waitress.server.BaseWSGIServer)
    assert server.socket is not None
    port: int = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(10)


def test_waitress_refuses_a_declared_gigabyte_at_once(waitress_url: str) -> None:
    with contextlib.closing(connect(waitress_url)) as sock:
        started = time.monotonic()
        sock.sendall(head(NOTIFY, f"Content-Length: {10**9}", "Content-Type: application/json"))
        status = read_status(sock, timeout=10)
    assert status == 413
    assert time.monotonic() - started < 2.0


def test_waitress_refuses_a_chunked_256_mib_body_after_a_bounded_read(waitress_url: str) -> None:
    sock = connect(waitress_url)
    sock.sendall(head(NOTIFY, "Transfer-Encoding: chunked", "Content-Type: application/json"))
    with chunked_flood(sock, 256 * 1024 * 1024) as flood:
        status = read_status(sock, timeout=15)
        sent = flood.sent
    assert status == 413
    assert sent < 16 * 1024 * 1024, sent


def test_waitress_closes_a_stalled_upload_after_its_channel_timeout(waitress_url: str) -> None:
    with contextlib.closing(_stalled(waitress_url)) as sock:
        started = time.monotonic()
        status = read_status(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert status is None  # closed without a reply: the app never saw it
    assert elapsed < CHANNEL_TIMEOUT + CLEANUP_INTERVAL + 2
