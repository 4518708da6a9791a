"""The one ASGI route, `/{account}/{channel}`, for every provider and account.

Mount it under any prefix:

    app = Starlette(routes=[Mount("/payments", app=notifier.asgi())])   # POST /payments/shop/notify

A plain ASGI callable rather than a Starlette router: a notification is one small body and one
small reply, and Starlette's Request, Response and routing cost more per notification than the
verification itself (docs/benchmarks.md). Starlette's types are the seam; its Mount is honoured
through `root_path` the way Starlette's own routes read it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.types import Receive, Scope, Send

from paynotify._errors import PayloadTooLarge, UnknownAccount
from paynotify._http import InboundRequest, Reply
from paynotify._route import (
    DISCONNECTED,
    NOT_FOUND,
    TOO_LARGE,
    TOO_SLOW,
    declared_over,
    method_reply,
    split,
    unknown_reply,
)

__all__ = ["Handle", "NotificationApp", "check_declared", "read_body"]

Handle = Callable[[str, InboundRequest], Awaitable[Reply]]
"""The pipeline's entry: (account name, request) -> reply; raises `UnknownAccount`."""
Lifespan = Callable[[object], AbstractAsyncContextManager[None]]


class _Disconnected(Exception):
    pass


def route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette's Mount leaves `path` whole and sets `root_path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


def check_declared(headers: Mapping[str, str], limit: int) -> None:
    """`PayloadTooLarge` for a Content-Length over `limit`, before anything is read."""
    declared = headers.get("content-length")
    if declared_over(declared, limit):
        raise PayloadTooLarge(f"declared body of {declared} bytes is over the {limit}-byte limit")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The body as bytes, read once; `PayloadTooLarge` rather than buffer more than `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        if not message.get("more_body", False):
            return b"".join((*chunks, chunk)) if chunks else chunk
        chunks.append(chunk)


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [(b"content-length", str(len(reply.body)).encode())]
    if reply.content_type is not None:
        headers.append((b"content-type", reply.content_type.encode("latin-1")))
    for name, value in reply.headers.items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


class ReadDeadline:
    """Body reads cut off after `seconds`: a client that stalls mid-upload would hold its socket for
    ever, and uvicorn has no body-read deadline of its own.

    One watchdog task per event loop, waking every second while reads are in progress, cancels
    the ones that overran (so a deadline lands between `seconds` and `seconds` + 1). A timer per
    request (`asyncio.timeout`) cost ~8.6 us a request on uvloop, more than verifying a WeChat
    Pay v2 notification; this costs a dict insert and delete.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def begin(self) -> asyncio.Task[Any] | None:
        """Start the clock on the current task's read (an ASGI server runs each request in a task)."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - ASGI servers run each request in a task
            return None
        self._reading[task] = time.monotonic()
        watchdog = self._watchdog
        if watchdog is None or watchdog.done() or watchdog.get_loop() is not task.get_loop():
            self._watchdog = task.get_loop().create_task(self._watch(), name="paynotify-body-deadline")
        return task

    def overran(self, task: asyncio.Task[Any] | None) -> bool:
        """After a CancelledError during the read: True (and the cancellation undone) when it was
        this deadline's, False when someone else cancelled the task."""
        if task is not None and task in self._expired:
            task.uncancel()
            return True
        return False

    def end(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            del self._reading[task]
            self._expired.discard(task)

    async def _watch(self) -> None:
        while self._reading:
            await asyncio.sleep(min(1.0, self.seconds))
            now = time.monotonic()
            for task, started in list(self._reading.items()):
                if now - started >= self.seconds and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


class NotificationApp:
    """`POST /{account}/notify` and `GET|POST /{account}/return` for every account `handle` knows;
    its ASGI lifespan, when given one, opens and closes the Notifier (store, dispatcher)."""

    def __init__(
        self,
        handle: Handle,
        *,
        body_limit: int,
        body_timeout: float = 10.0,
        lifespan: Lifespan | None = None,
        refused: Callable[[str, str, Reply, object], None] | None = None,
    ) -> None:
        self.handle = handle
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        self._deadline = ReadDeadline(body_timeout)
        self.refused = refused
        """Told of what this adapter refuses before the pipeline sees it (a body over the limit, too
        slow, of a bad length): `(account, channel, reply, client)`."""
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = split(route_path(scope))
        if route is None:
            return await send_reply(send, NOT_FOUND)
        account, channel = route
        method: str = scope["method"]
        refused = method_reply(method, channel)
        if refused is not None:
            return await send_reply(send, refused)
        # The deadline's bookkeeping is written out here rather than as a wrapper coroutine: one
        # coroutine less per request.
        # Repeated headers: the first one counts (it is written last), as in Starlette's Headers.
        raw_headers = reversed(scope["headers"])
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers}
        deadline = self._deadline
        reading = deadline.begin()
        refusal: Reply | None = None
        try:
            check_declared(headers, self.body_limit)
            body = await read_body(receive, self.body_limit)
        except asyncio.CancelledError:
            if not deadline.overran(reading):
                raise
            refusal = TOO_SLOW
        except PayloadTooLarge:
            refusal = TOO_LARGE
        except _Disconnected:
            refusal = DISCONNECTED
        finally:
            deadline.end(reading)  # before any reply: the deadline is the read's, not the send's
        if refusal is not None:
            if self.refused is not None:
                self.refused(account, channel, refusal, scope.get("client"))
            return await send_reply(send, refusal)
        inbound = InboundRequest(
            method, channel, headers, scope.get("query_string", b""), body, scope.get("client")
        )
        try:
            reply = await self.handle(account, inbound)
        except UnknownAccount as exc:
            reply = unknown_reply(exc)
        await send_reply(send, reply)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        if self.lifespan is None:
            return
        started = False
        context = self.lifespan(self)
        try:
            await receive()  # lifespan.startup
            await context.__aenter__()
            started = True
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown: the only message that can follow
            await context.__aexit__(None, None, None)
            await send({"type": "lifespan.shutdown.complete"})
        except BaseException as exc:
            kind = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{kind}.failed", "message": f"{type(exc).__name__}: {exc}"})
            raise
