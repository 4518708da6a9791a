"""The notification route for any WSGI server or app (Flask, via werkzeug's DispatcherMiddleware):
`POST /{account}/notify` and `GET|POST /{account}/return`, as the ASGI route answers them.

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/payments": notifier.wsgi()})

Its own adapter rather than a2wsgi's ASGIMiddleware over `notifier.asgi()`, which (1.10, measured)
drops a body sent without Content-Length even when the server says the stream ends
(`wsgi.input_terminated`, gunicorn's chunked requests), fails with a 500 on a query string that is
not ASCII, and spins forever on a body shorter than its Content-Length. Here the body is read
exactly, bounded by `notifier.body_limit`; the query string is the bytes the server received
(PEP 3333 gives them as latin-1 text).
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, BinaryIO

from paynotify._adapter import Notifier, keep_door_refusal, notifier_loop
from paynotify._http import InboundRequest, Reply
from paynotify._route import (
    BAD_LENGTH,
    DISCONNECTED,
    NOT_FOUND,
    TOO_LARGE,
    TOO_SLOW,
    declared_over,
    method_reply,
    split,
)
from paynotify._socket_deadline import body_deadline

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["NotificationWSGIApp"]


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def read_body(environ: WSGIEnvironment, limit: int, timeout: float) -> bytes:
    """The body as bytes, exactly; never more than `limit` of them read, nor for longer than
    `timeout` seconds where the server lets the app cut a read short (`_Refused` otherwise)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        if not length.isdigit():
            raise _Refused(BAD_LENGTH)
        if declared_over(length, limit):
            raise _Refused(TOO_LARGE)
    elif not environ.get("wsgi.input_terminated"):
        # Without a length PEP 3333 leaves reading undefined, unless the server ends the stream itself.
        return b""
    stream: BinaryIO = environ["wsgi.input"]
    with body_deadline(environ, timeout) as read:
        try:
            body = _read(stream, int(length) if length else limit + 1)
        except OSError:  # a chunked stream cut short: by the deadline, or by the client
            body = None
    if read.expired:
        raise _Refused(TOO_SLOW)
    if body is None or (length and len(body) < int(length)):
        raise _Refused(DISCONNECTED)
    if len(body) > limit:
        raise _Refused(TOO_LARGE)
    return body


def _read(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes; `read(n)` may return fewer than asked before the end, so ask again."""
    chunks: list[bytes] = []
    while size > 0:
        chunk = stream.read(min(size, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = {
        name[5:].lower().replace("_", "-"): value
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.lower().replace("_", "-")] = environ[name]
    return headers


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class NotificationWSGIApp:
    """The WSGI app of a Notifier; its store opens on the first request and closes at exit or `close()`."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._loop = notifier_loop(notifier)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        reply = self._reply(environ)
        headers = [("Content-Length", str(len(reply.body)))]
        if reply.content_type is not None:
            headers.append(("Content-Type", reply.content_type))
        # PEP 3333 leaves hop-by-hop headers to the server (wsgiref refuses them): TOO_SLOW's
        # `connection: close` is the server's to act on, and its read side is shut anyway.
        headers.extend((name, value) for name, value in reply.headers.items() if name.lower() != "connection")
        start_response(_status_line(reply.status), headers)
        return [reply.body]

    def close(self) -> None:
        """Close the Notifier's store and stop its loop (also done at interpreter exit)."""
        self._loop.close()

    def _reply(self, environ: WSGIEnvironment) -> Reply:
        route = split(environ.get("PATH_INFO", ""))
        if route is None:
            return NOT_FOUND
        account, channel = route
        method: str = environ["REQUEST_METHOD"]
        refused = method_reply(method, channel)
        if refused is not None:
            return refused
        try:
            body = read_body(environ, self.notifier.body_limit, self.notifier.options.body_timeout)
        except _Refused as exc:
            keep_door_refusal(self.notifier, account, channel, exc.reply, environ.get("REMOTE_ADDR"))
            return exc.reply
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        inbound = InboundRequest(method, channel, _headers(environ), query, body, environ.get("REMOTE_ADDR"))
        return self._loop.submit(account, inbound).result()
