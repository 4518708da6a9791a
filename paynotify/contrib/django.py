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
first request and closed at interpreter exit (paynotify/_adapter.py says why; docs/django.md how).
This is the only module that imports Django.
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
from paynotify._adapter import TOO_LARGE, method_reply, notifier_loop

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["close", "notification_view", "paynotify_urls", "with_lifespan"]

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
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > limit:
            return _response(TOO_LARGE)
        # read(), not request.body: no DATA_UPLOAD_MAX_MEMORY_SIZE in the way, and never more than
        # the limit in memory when Content-Length is missing (chunked).
        body = request.read(limit + 1)
        if len(body) > limit:
            return _response(TOO_LARGE)
        headers = {name.lower(): value for name, value in request.headers.items()}
        inbound = InboundRequest(method, channel, headers, _query_bytes(request), body)
        reply = await asyncio.wrap_future(loop.submit(account, inbound))
        response = _response(reply)
        # paynotify logged the outcome at its own level (an in-flight duplicate's 503 at INFO,
        # refusals sampled): django.request would add a line per reply, 5xx at ERROR.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response

    return notification


def close(notifier: Notifier) -> None:
    """Close the Notifier's store and stop its loop now (done at interpreter exit otherwise)."""
    notifier_loop(notifier).close()


def with_lifespan(application: Callable[..., Awaitable[None]], notifier: Notifier) -> ASGIApp:
    """Django's ASGI application, answering the ASGI lifespan: at shutdown the Notifier is closed.

        application = with_lifespan(get_asgi_application(), notifier)   # asgi.py

    Django refuses lifespan messages, and uvicorn ends on SIGTERM by re-raising the signal once it
    has stopped, so interpreter exit (atexit) never comes: the lifespan is the hook that does.
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


def _query_bytes(request: HttpRequest) -> bytes:
    # Under ASGI Django decodes the query string as UTF-8 into META, so only the scope has the
    # bytes; under WSGI META is the environ, whose strings are latin-1 (PEP 3333).
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict):
        raw = scope.get("query_string", b"")
        return raw if isinstance(raw, bytes) else str(raw).encode("latin-1")
    query: str = request.META.get("QUERY_STRING", "")
    return query.encode("latin-1")


def _response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status)
    if reply.content_type is None:
        del response["Content-Type"]  # Django would add text/html; the ASGI route sends none
    else:
        response["Content-Type"] = reply.content_type
    for name, value in reply.headers.items():
        response[name] = value
    return response
