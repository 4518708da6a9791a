"""A `Send` for the query tests: httpx through `ASGITransport` to a provider emulator, with a deadline.

The core's own Send (pooled client, retries) is tested with the core; this one is just enough to
drive a provider's client against its emulator, the way the core does: a deadline on every request
(ProviderUnavailable when it passes), a transport failure ProviderUnavailable too.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import httpx

from paynotify import ApiRequest, ApiResponse, Download, ProviderApiError, ProviderUnavailable, Send


@contextlib.asynccontextmanager
async def emulator_send(app: Any, *, deadline: float = 5.0) -> AsyncIterator[Send]:
    """A Send whose requests reach the ASGI `app`, each within `deadline` seconds."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:

        async def send(request: ApiRequest) -> ApiResponse:
            try:
                async with asyncio.timeout(deadline):
                    response = await client.request(
                        request.method, request.url, headers=dict(request.headers), content=request.body
                    )
            except TimeoutError:
                raise ProviderUnavailable(f"no answer from {request.url} within {deadline} s") from None
            except httpx.TransportError as exc:
                raise ProviderUnavailable(f"{request.url} unreachable: {type(exc).__name__}") from None
            headers = {name.lower(): value for name, value in response.headers.items()}
            return ApiResponse(response.status_code, headers, response.content)

        yield send


@contextlib.asynccontextmanager
async def app_client(app: Any, base_url: str = "http://paynotify.test") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for a notifier's (or any) ASGI app: where an emulator pushes notifications."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        yield client


@contextlib.asynccontextmanager
async def emulator_download(app: Any, *, deadline: float = 5.0) -> AsyncIterator[Download]:
    """A `Download` for the bill tests: the body of a request to the ASGI `app`, written to a
    temporary file (the core's own, with its size cap, is tested with the core)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:

        async def download(request: ApiRequest) -> BinaryIO:
            try:
                async with asyncio.timeout(deadline):
                    response = await client.request(
                        request.method, request.url, headers=dict(request.headers), content=request.body
                    )
            except TimeoutError:
                raise ProviderUnavailable(f"no answer from {request.url} within {deadline} s") from None
            if response.status_code != 200:
                raise ProviderApiError(f"the download answered HTTP {response.status_code}")
            file = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it (Download's contract)
            file.write(response.content)
            file.seek(0)
            return file

        yield download
