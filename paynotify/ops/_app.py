"""The ops app: `/healthz`, `/readyz`, `/metrics` (and `/console` when the console is given auth).

    app = ops_app(notifier, instrumentation=Instrumentation().attach(notifier))

Health and metrics carry no secret and may stay open on a loopback ops port; the console always
needs authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from paynotify import PaynotifyError
from paynotify.ops._console_guard import TO_ROOT
from paynotify.ops._instrument import Instrumentation

__all__ = ["READY_TIMEOUT", "ops_app"]

log = logging.getLogger("paynotify.ops")

READY_TIMEOUT = 1.0
"""How long readiness waits for the store: well under a probe's own timeout."""
_PROBE_ID = "paynotify-readiness-probe"
_NO_CACHE = {"cache-control": "no-store"}


def ops_app(
    notifier: Any,
    *,
    instrumentation: Instrumentation | None = None,
    console: Any = None,
) -> Starlette:
    """Health (`/healthz`: the process serves), readiness (`/readyz`: accounts loaded and the store
    answers within READY_TIMEOUT, else 503 with the reason), `/metrics` when `instrumentation` has
    metrics, and `console` (an ASGI app) mounted at `/console`."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=_NO_CACHE)

    async def readyz(request: Request) -> Response:
        if not notifier.accounts:
            return PlainTextResponse("not ready: no accounts are configured\n", 503, headers=_NO_CACHE)
        try:
            await asyncio.wait_for(notifier.store.get(_PROBE_ID), READY_TIMEOUT)
        except TimeoutError:
            return PlainTextResponse(
                f"not ready: the store did not answer within {READY_TIMEOUT:g} s\n", 503, headers=_NO_CACHE
            )
        except PaynotifyError as exc:
            # The store's message names its host, database or schema: for the log, not for anyone
            # who can reach the probe.
            log.warning("not ready: the store is unreachable: %s", exc)
            return PlainTextResponse("not ready: store unreachable\n", 503, headers=_NO_CACHE)
        return PlainTextResponse("ready\n", headers=_NO_CACHE)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if instrumentation is not None and hasattr(instrumentation, "registry"):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        async def metrics(request: Request) -> Response:
            # On a slow store the gauges keep their last values; the counters are what matter most.
            with contextlib.suppress(TimeoutError, PaynotifyError):
                await asyncio.wait_for(instrumentation.refresh(notifier.store), READY_TIMEOUT)
            body = generate_latest(instrumentation.registry)
            return Response(body, headers={"content-type": CONTENT_TYPE_LATEST, **_NO_CACHE})

        routes.append(Route("/metrics", metrics))
    if console is not None:
        # `/console` without its slash goes through the console's own guard (authentication,
        # security headers, a relative Location), not Starlette's redirect built from the Host.
        routes.append(Route("/console", _ConsoleRoot(console)))  # every method: no bare 405 here
        routes.append(Mount("/console", app=console))
    return Starlette(routes=routes)


class _ConsoleRoot:
    """`/console` itself, handed to the console marked so that its guard answers the redirect."""

    def __init__(self, console: Any) -> None:
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.console({**scope, TO_ROOT: True}, receive, send)
