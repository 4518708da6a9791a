"""The only Starlette code: one route, `/{account}/{channel}`, for every provider and account.

Mount it under any prefix:

    app = Starlette(routes=[Mount("/payments", app=notifier.asgi())])   # POST /payments/shop/notify
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from paynotify._errors import UnknownAccount
from paynotify._http import InboundRequest

if TYPE_CHECKING:
    from paynotify._notifier import Notifier

__all__ = ["build_app"]


class _TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body as bytes, read once; refuses to buffer more than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(notifier: Notifier) -> Starlette:
    async def endpoint(request: Request) -> Response:
        account = request.path_params["account"]
        channel = request.path_params["channel"]
        if channel == "notify" and request.method != "POST":
            return PlainTextResponse("notifications are POSTed", 405, headers={"allow": "POST"})
        try:
            body = await read_body(request, notifier.body_limit)
        except _TooLarge:
            return PlainTextResponse("body too large", 413)
        except ClientDisconnect:
            return PlainTextResponse("client disconnected", 400)
        inbound = InboundRequest(
            method=request.method,
            channel=channel,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(request.scope["headers"])},
            query=request.scope.get("query_string", b""),
            body=body,
        )
        try:
            reply = await notifier.handle(account, inbound)
        except UnknownAccount:
            return PlainTextResponse("unknown account", 404)
        return Response(reply.body, reply.status, headers=dict(reply.headers), media_type=reply.content_type)

    return Starlette(
        routes=[Route("/{account}/{channel}", endpoint, methods=["GET", "POST"])],
        lifespan=notifier.lifespan,
    )
