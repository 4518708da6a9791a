"""WSGI: `notifier.wsgi()` mounted in a Flask app with werkzeug's DispatcherMiddleware, served over
HTTP by waitress, plus the edges of PEP 3333 that no server here sends on its own."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from _alipay_keys import VECTOR_APP_ID, vector, vector_key
from _echo_provider import BODY, QUERY, EchoProvider, seen
from _servers import raw_post, waitress_thread
from conftest import APP_ID, SECRET, example_notify
from flask import Flask
from paynotify_examplepay import sign
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from paynotify import Notifier, PaymentResult
from paynotify._wsgi import NotificationWSGIApp

NOTIFY = vector("notify_trade_success.form")
RETURN = vector("return_page_pay.query")
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass
class Shop:
    url: str
    notifier: Notifier
    delivered: list[PaymentResult]


def make_notifier(**options: Any) -> tuple[Notifier, list[PaymentResult]]:
    notifier = Notifier("memory://", **options)
    notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    notifier.add_account("sandbox", "alipay", app_id=VECTOR_APP_ID, alipay_public_key=vector_key())
    notifier.add_account("echo", EchoProvider())
    delivered: list[PaymentResult] = []
    lock = threading.Lock()

    @notifier.subscribe
    def record(result: PaymentResult) -> None:  # sync: run in a worker thread
        if result.order_id.startswith("slow-"):
            time.sleep(0.5)
        with lock:
            delivered.append(result)

    return notifier, delivered


@pytest.fixture
def shop() -> Iterator[Shop]:
    notifier, delivered = make_notifier()
    app = Flask(__name__)

    @app.get("/orders/<order_id>")
    def order(order_id: str) -> dict[str, int]:
        return {"deliveries": sum(r.order_id == order_id for r in delivered)}

    payments = notifier.wsgi()
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/payments": payments})  # type: ignore[method-assign]
    with waitress_thread(app) as url:
        yield Shop(url, notifier, delivered)
    payments.close()


def awkward_notification(order_id: str) -> tuple[dict[str, str], bytes]:
    """Signed bytes a framework would be tempted to touch: a form content type on a JSON body, UTF-8,
    CRLF and trailing whitespace, all covered by the HMAC."""
    body = (
        f'{{"order_id": "{order_id}", "txn_id": "t-{order_id}", "amount": "1.00",\r\n'
        f' "status": "paid", "app_id": "app-1", "note": "测试 + %2B"}}\r\n  \n'
    ).encode()
    return {"x-signature": sign(body, SECRET), "content-type": FORM}, body


def test_round_trip_beside_a_flask_route(shop: Shop) -> None:
    headers, body = example_notify("o-1")
    with httpx.Client(base_url=shop.url) as http:
        first = http.post("/payments/shop/notify", content=body, headers=headers)
        again = http.post("/payments/shop/notify", content=body, headers=headers)
        state = http.get("/orders/o-1")
    assert (first.status_code, first.content) == (200, b"OK")
    assert first.headers["content-type"] == "text/plain; charset=utf-8"
    assert again.content == b"OK"
    assert state.json() == {"deliveries": 1}


def test_alipay_vector_and_return(shop: Shop) -> None:
    with httpx.Client(base_url=shop.url + "/payments/sandbox") as http:
        first = http.post("/notify", content=NOTIFY, headers={"content-type": FORM})
        again = http.post("/notify", content=NOTIFY, headers={"content-type": FORM})
        forged = http.post(
            "/notify",
            content=NOTIFY.replace(b"total_amount=0.01", b"total_amount=1.00"),
            headers={"content-type": FORM},
        )
        back = http.get("/return?" + RETURN.decode("ascii"))
    assert (first.status_code, first.content) == (200, b"success")
    assert again.content == b"success"
    assert forged.content == b"fail"
    assert back.status_code == 200
    assert back.content != b"success"
    assert b"1703141270" in back.content
    assert [r.order_id for r in shop.delivered] == ["1703147160"]


def test_body_bytes_reach_the_provider_exactly(shop: Shop) -> None:
    headers, body = awkward_notification("o-exact")

    def chunked() -> Iterator[bytes]:  # no Content-Length: waitress de-chunks it
        yield body[:7]
        yield body[7:]

    with httpx.Client(base_url=shop.url) as http:
        plain = http.post("/payments/shop/notify", content=body, headers=headers)
        streamed = http.post("/payments/shop/notify", content=chunked(), headers=headers)
        forged = http.post("/payments/shop/notify", content=body.rstrip(), headers=headers)
    assert (plain.status_code, plain.content) == (200, b"OK")
    assert (streamed.status_code, streamed.content) == (200, b"OK")
    assert (forged.status_code, forged.content) == (400, b"RETRY")
    (result,) = shop.delivered
    assert result.raw["note"] == "测试 + %2B"


def test_providers_get_the_query_and_body_bytes_exactly(shop: Shop) -> None:
    status, reply = raw_post(
        shop.url, "/payments/echo/notify?" + QUERY, BODY, {"Content-Type": FORM, "X-Odd": "a b"}
    )
    assert status == 400
    got = seen(reply)
    assert (got["method"], got["query"], got["body"]) == ("POST", QUERY.encode(), BODY)
    assert got["headers"]["content-type"] == FORM
    assert got["headers"]["x-odd"] == "a b"
    assert got["headers"]["content-length"] == str(len(BODY))


def test_unknown_account_channel_or_path_is_404(shop: Shop) -> None:
    headers, body = example_notify("o-404")
    with httpx.Client(base_url=shop.url) as http:
        for path in (
            "/payments/nobody/notify",
            "/payments/shop/refund",
            "/payments/shop/notify/x",
            "/payments/",
        ):
            assert http.post(path, content=body, headers=headers).status_code == 404, path
        assert "serves /shop/notify" in http.post("/payments/shop/refund", content=body).text
        assert http.get("/payments/shop/notify").status_code == 405
        assert http.put("/payments/sandbox/return").headers["allow"] == "GET, POST"
    assert shop.delivered == []


def test_body_over_the_limit_is_413(shop: Shop) -> None:
    headers, _ = example_notify("o-big")

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"y" * 1024

    with httpx.Client(base_url=shop.url) as http:
        sized = http.post("/payments/shop/notify", content=b"x" * (64 * 1024 + 1), headers=headers)
        streamed = http.post("/payments/shop/notify", content=chunks(), headers=headers)
    assert sized.status_code == 413
    assert streamed.status_code == 413
    assert shop.delivered == []


def test_concurrent_duplicates_are_dispatched_once(shop: Shop) -> None:
    headers, body = example_notify("slow-1")
    replies: list[tuple[int, bytes]] = []

    def post() -> None:
        response = httpx.post(shop.url + "/payments/shop/notify", content=body, headers=headers)
        replies.append((response.status_code, response.content))

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(replies) == [(200, b"OK")] + [(400, b"RETRY")] * 4
    assert httpx.post(shop.url + "/payments/shop/notify", content=body, headers=headers).content == b"OK"
    assert [r.order_id for r in shop.delivered] == ["slow-1"]


# -- PEP 3333 edges, called directly ----------------------------------------------------------------


class Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


class Trickle(io.RawIOBase):
    """A stream that returns at most 3 bytes a read, then ends: reads may be short (PEP 3333)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = self.data[: min(3, size)], self.data[min(3, size) :]
        return chunk


def call(app: NotificationWSGIApp, body: io.IOBase, **environ: str | bool) -> tuple[str, bytes]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/shop/notify",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": body,
    }
    base.update(environ)
    status: list[str] = []
    chunks = app(base, lambda s, h, e=None: status.append(s))  # type: ignore[arg-type]
    return status[0], b"".join(chunks)


@pytest.fixture
def direct() -> Iterator[tuple[NotificationWSGIApp, list[PaymentResult]]]:
    notifier, delivered = make_notifier()
    app = notifier.wsgi()
    yield app, delivered
    app.close()


def test_too_large_content_length_is_413_before_reading(
    direct: tuple[NotificationWSGIApp, list[PaymentResult]],
) -> None:
    app, _ = direct
    assert call(app, Unreadable(), CONTENT_LENGTH=str(64 * 1024 + 1))[0] == "413 Request Entity Too Large"


def test_short_reads_and_a_terminated_stream_keep_the_body_exact(
    direct: tuple[NotificationWSGIApp, list[PaymentResult]],
) -> None:
    app, delivered = direct
    headers, body = awkward_notification("o-trickle")
    sized = call(app, Trickle(body), CONTENT_LENGTH=str(len(body)), HTTP_X_SIGNATURE=headers["x-signature"])
    headers, body = awkward_notification("o-terminated")
    # gunicorn's chunked request: no CONTENT_LENGTH, and the server says where the stream ends.
    ended = call(
        app, Trickle(body), HTTP_X_SIGNATURE=headers["x-signature"], **{"wsgi.input_terminated": True}
    )
    assert sized == ("200 OK", b"OK")
    assert ended == ("200 OK", b"OK")
    assert [r.order_id for r in delivered] == ["o-trickle", "o-terminated"]
    over = call(app, Trickle(b"z" * (64 * 1024 + 1)), **{"wsgi.input_terminated": True})
    assert over[0] == "413 Request Entity Too Large"


def test_a_body_shorter_than_its_content_length_is_400_not_a_hang(
    direct: tuple[NotificationWSGIApp, list[PaymentResult]],
) -> None:
    app, delivered = direct
    headers, body = example_notify("o-short")
    reply = call(
        app, Trickle(body[:10]), CONTENT_LENGTH=str(len(body)), HTTP_X_SIGNATURE=headers["x-signature"]
    )
    assert reply == ("400 Bad Request", b"client disconnected")
    assert call(app, Trickle(b""), CONTENT_LENGTH="12x")[0] == "400 Bad Request"
    assert delivered == []


def test_the_store_opens_on_first_use_and_close_closes_it(caplog: pytest.LogCaptureFixture) -> None:
    notifier, delivered = make_notifier()
    app = notifier.wsgi()
    headers, body = example_notify("o-open")
    for _ in range(2):  # a request after close() opens the Notifier again
        reply = call(
            app, io.BytesIO(body), CONTENT_LENGTH=str(len(body)), HTTP_X_SIGNATURE=headers["x-signature"]
        )
        assert reply == ("200 OK", b"OK")
        with caplog.at_level("INFO", logger="paynotify"):
            app.close()
        assert "paynotify: notifier closed" in caplog.text
        caplog.clear()
    assert len(delivered) == 1


# Python 3.12+ warns on fork with threads running; forking such a process is what is tested here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_worker_gets_a_loop_of_its_own(
    direct: tuple[NotificationWSGIApp, list[PaymentResult]],
) -> None:
    # gunicorn forks workers; the parent's loop thread does not exist in a child, so a child that
    # reused it would wait forever for its reply.
    app, _ = direct
    headers, body = example_notify("o-parent")
    assert (
        call(app, io.BytesIO(body), CONTENT_LENGTH=str(len(body)), HTTP_X_SIGNATURE=headers["x-signature"])[1]
        == b"OK"
    )
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer one notification, report, and leave without running pytest's exit
        try:
            headers, body = example_notify("o-child")
            status, reply = call(
                app, io.BytesIO(body), CONTENT_LENGTH=str(len(body)), HTTP_X_SIGNATURE=headers["x-signature"]
            )
            os.write(write_end, f"{status}|{reply.decode()}".encode())
            app.close()
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 20
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child never got its reply")
        time.sleep(0.05)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"200 OK|OK"
    headers, body = example_notify("o-parent-2")  # and the parent's loop still serves
    assert (
        call(app, io.BytesIO(body), CONTENT_LENGTH=str(len(body)), HTTP_X_SIGNATURE=headers["x-signature"])[1]
        == b"OK"
    )


def test_the_wsgi_adapter_imports_no_framework() -> None:
    code = (
        "import sys, paynotify, paynotify._wsgi; paynotify.Notifier('memory://').wsgi(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'flask', 'werkzeug', 'a2wsgi'}))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "[]\n"
    )
