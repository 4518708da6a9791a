"""The core's `Download`: a bill's body streamed into a temporary file, within a size cap and a
deadline of its own, over the Notifier's pooled HTTP client (so `EmulatorTransport` serves it too).

Only a URL's scheme, host and path are ever named in errors: a download URL's query string often
carries a token (Alipay's, object stores' signatures).
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from paynotify import ApiRequest, ProviderApiError, ProviderUnavailable

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_TIMEOUT", "HttpDownload"]

DEFAULT_MAX_BYTES = 1024**3
"""A day's bill of 10^6 lines is a few hundred MB; past 1 GiB it is a fault, not a bill."""
DEFAULT_TIMEOUT = 120.0
"""Seconds for the whole body, connection included."""
_SPOOL = 8 * 1024 * 1024  # kept in memory below this, then on disk


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class HttpDownload:
    """A `Download` over `client()` (the Notifier's pooled httpx client).

    download = HttpDownload(lambda: client, max_bytes=10**9, timeout=120)
    file = await download(ApiRequest("GET", url))      # positioned at 0; the caller closes it
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if max_bytes < 1 or not timeout > 0:
            raise ValueError("max_bytes and timeout must be positive")
        self._client = client
        self._transport = transport
        self.max_bytes = max_bytes
        self.timeout = timeout

    def _pool(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __call__(self, request: ApiRequest) -> BinaryIO:
        target = _where(request.url)
        file = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 (the caller closes it)
        try:
            async with asyncio.timeout(self.timeout):
                await self._fetch(request, target, file)
        except TimeoutError:
            file.close()
            raise ProviderUnavailable(f"{target}: bill not downloaded within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            file.close()
            raise ProviderUnavailable(f"{target}: bill download failed ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            file.close()
            raise ProviderApiError(f"{target}: unreadable bill ({type(exc).__name__})") from None
        except BaseException:
            file.close()
            raise
        file.seek(0)
        return file  # type: ignore[return-value]

    async def _fetch(
        self, request: ApiRequest, target: str, file: tempfile.SpooledTemporaryFile[bytes]
    ) -> None:
        timeout = httpx.Timeout(self.timeout)
        async with self._pool().stream(
            request.method, request.url, headers=dict(request.headers), content=request.body, timeout=timeout
        ) as response:
            if response.status_code >= 500:
                raise ProviderUnavailable(f"{target}: HTTP {response.status_code}")
            if response.status_code >= 300:
                raise ProviderApiError(f"{target}: HTTP {response.status_code}, no bill")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise ProviderApiError(f"{target}: bill of {declared} bytes, over {self.max_bytes}; not read")
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ProviderApiError(f"{target}: bill larger than {self.max_bytes} bytes, not read")
                file.write(chunk)
