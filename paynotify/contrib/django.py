"""Django: the notification route as URL patterns to include (extra `paynotify[django]`).

    # urls.py
    from django.urls import include, path
    from paynotify.contrib.django import paynotify_urls

    urlpatterns = [path("payments/", include(paynotify_urls(notifier)))]
    # POST /payments/shop/notify
    # reverse("paynotify:endpoint", kwargs={"account": "shop", "channel": "notify"})

The view is async and CSRF-exempt (a provider has no CSRF token; the signature is the proof). It
never lets Django parse the body: the pipeline gets the bytes received, and the query string as
the server received it. The Notifier runs on paynotify's own event loop thread, opened on the
first request and closed when the process exits (paynotify/_adapter.py says why; docs/django.md
how). Built of `paynotify.adapters`, the public kit of a door, as any framework's adapter can be.
Under ASGI, `paynotify_asgi` answers the same paths before Django's handler reads a body. This is
the only module that imports Django.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from starlette.types import ASGIApp, Receive, Scope, Send

from paynotify import InboundRequest, Reply
from paynotify.adapters import (
    DISCONNECTED,
    TOO_LARGE,
    TOO_SLOW,
    body_deadline,
    declared_over,
    keep_door_refusal,
    method_reply,
    notification_asgi,
    notifier_loop,
)

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["close", "notification_view", "paynotify_asgi", "paynotify_urls", "with_lifespan"]

APP_NAME = "paynotify"

View = Callable[[HttpRequest, str, str], Coroutine[Any, Any, HttpResponse]]


def paynotify_urls(notifier: Notifier) -> tuple[list[URLPattern], str]:
    """`(patterns, "paynotify")` for `include()`: `<account>/<channel>`, named `paynotify:endpoint`.

    A second Notifier in the same project takes another namespace:
    `include(paynotify_urls(other), namespace="other")`.
    """
    return [path("<str:account>/<str:channel>", notification_view(notifier), name="endpoint")], APP_NAME


def notification_view(notifier: Notifier) -> View:
    """The async view itself, for a URL pattern of your own that passes `account` and `channel`."""
    loop = notifier_loop(notifier)

    @csrf_exempt
    async def notification(request: HttpRequest, account: str, channel: str) -> HttpResponse:
        method = request.method or ""
        refused = method_reply(method, channel)
        if refused is not None:
            return _response(refused)
        limit = notifier.body_limit
        if declared_over(request.META.get("CONTENT_LENGTH"), limit):
            return _refused_at_door(notifier, request, account, channel, TOO_LARGE)
        # read(), not request.body: no DATA_UPLOAD_MAX_MEMORY_SIZE in the way, and never more than
        # the limit in memory when Content-Length is missing (chunked). Under WSGI the read waits on
        # the client, so it has the WSGI app's deadline; under ASGI Django has read it all already.
        with body_deadline(request.META, notifier.options.body_timeout) as reading:
            try:
                body = request.read(limit + 1)
            except OSError:  # UnreadablePostError: cut short, by the deadline or by the client
                body = None
        if reading.expired:  # only under WSGI, where a hop-by-hop header is the server's (PEP 3333)
            too_slow = _refused_at_door(notifier, request, account, channel, TOO_SLOW)
            del too_slow["Connection"]
            return too_slow
        if body is None:
            return _refused_at_door(notifier, request, account, channel, DISCONNECTED)
        if len(body) > limit:
            return _refused_at_door(notifier, request, account, channel, TOO_LARGE)
        headers = {name.lower(): value for name, value in request.headers.items()}
        inbound = InboundRequest(
            method, channel, headers, _query_bytes(request), body, request.META.get("REMOTE_ADDR")
        )
        reply = await asyncio.wrap_future(loop.submit(account, inbound))
        return _response(reply)

    return notification


def close(notifier: Notifier) -> None:
    """Close the Notifier's store and stop its loop now (done at interpreter exit otherwise)."""
    notifier_loop(notifier).close()


def with_lifespan(application: Callable[..., Awaitable[None]], notifier: Notifier) -> ASGIApp:
    """Django's ASGI application, answering the ASGI lifespan: at shutdown the Notifier is closed.

        application = with_lifespan(get_asgi_application(), notifier)   # asgi.py

    Django refuses lifespan messages, and uvicorn ends on SIGTERM by re-raising the signal once it
    has stopped, so no exit hook of the process runs: the lifespan is the hook that does.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await application(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})  # the store opens on first use
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(close, notifier)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


def paynotify_asgi(
    application: Callable[..., Awaitable[None]], notifier: Notifier, *, prefix: str
) -> ASGIApp:
    """Django's ASGI application with paynotify's paths answered before Django sees them, and the
    ASGI lifespan answered as `with_lifespan` does.

        application = paynotify_asgi(get_asgi_application(), notifier, prefix="/payments/")

    Django's ASGI handler reads a whole body (spooled to disk past 2.5 MB) before any view runs, so
    no view can refuse one early; under `prefix` the request goes instead to paynotify's ASGI route
    (the body limit, the body deadline and the early 413 of `notifier.asgi()`), answering through
    the same loop as the view. `prefix` is where `paynotify_urls` is included, so `reverse()` names
    the URLs this serves; everything else, websockets included, is Django's.
    """
    if not (prefix.startswith("/") and prefix.endswith("/")):
        raise ValueError(f"prefix must start and end with '/', as '/payments/' does, not {prefix!r}")
    mount = prefix.rstrip("/")
    notifications = notification_asgi(notifier)
    django = with_lifespan(application, notifier)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root: str = scope.get("root_path", "")
            path: str = scope["path"]
            below = path[len(root) :] if root and path.startswith(root) else path
            if below.startswith(prefix):
                # Mounted as Starlette mounts an app: the route reads its path below root_path.
                scope = {**scope, "root_path": root + mount, "path": root + below}
                return await notifications(scope, receive, send)
        await django(scope, receive, send)

    return app


def _query_bytes(request: HttpRequest) -> bytes:
    # Under ASGI Django decodes the query string as UTF-8 into META, so only the scope has the
    # bytes; under WSGI META is the environ, whose strings are latin-1 (PEP 3333).
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict):
        raw = scope.get("query_string", b"")
        return raw if isinstance(raw, bytes) else str(raw).encode("latin-1")
    query: str = request.META.get("QUERY_STRING", "")
    return query.encode("latin-1")


def _refused_at_door(
    notifier: Notifier, request: HttpRequest, account: str, channel: str, reply: Reply
) -> HttpResponse:
    keep_door_refusal(notifier, account, channel, reply, request.META.get("REMOTE_ADDR"))
    return _response(reply)


def _response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status)
    if reply.content_type is None:
        del response["Content-Type"]  # Django would add text/html; the ASGI route sends none
    else:
        response["Content-Type"] = reply.content_type
    for name, value in reply.headers.items():
        response[name] = value
    # paynotify logged this outcome at its own level (an in-flight duplicate's 503 at INFO, a
    # forged request's refusal sampled): django.request would log every 5xx again at ERROR and
    # every 4xx at WARNING, unsampled. This is the flag Django's log_response reads.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
