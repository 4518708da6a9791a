"""Providers' API emulators in place of the providers, for the demo, tests and local development.

    transport = EmulatorTransport()
    transport.mount("wechatpay-v2.emulator", emulator)       # the host of the account's base_url
    notifier = Notifier("memory://", api_transport=transport)

Each emulator is an ASGI app (`paynotify_<provider>.testing`) reached at the host its accounts'
`base_url` names, so accounts of several providers share one Notifier. A host no emulator is
mounted at is unreachable (`httpx.ConnectError`, the Send's `ProviderUnavailable`): a request never
leaves the machine by mistake.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["EmulatorTransport"]


class EmulatorTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands each request to the emulator mounted at its URL's host."""

    def __init__(self, apps: dict[str, Any] | None = None) -> None:
        self._routes: dict[str, httpx.ASGITransport] = {}
        for host, app in (apps or {}).items():
            self.mount(host, app)

    def mount(self, host: str, app: Any) -> None:
        """Answer requests to `host` (a name, no scheme or port) with the ASGI `app`."""
        self._routes[host.lower()] = httpx.ASGITransport(app=app)

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = self._routes.get(request.url.host.lower())
        if route is None:
            raise httpx.ConnectError(f"no emulator at {request.url.host}", request=request)
        return await route.handle_async_request(request)

    async def aclose(self) -> None:
        for route in self._routes.values():
            await route.aclose()
