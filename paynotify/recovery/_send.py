"""The core's `Send`: one pooled httpx client per Notifier, one deadline per request, a bounded retry.

Every request a provider's client sends through it is a question (a query, a certificate download):
asking again changes nothing at the provider. So a request that did not get through, or got a 5xx,
is sent again, up to `attempts` times in all, all within the one deadline. An answer under 500 is
returned as it came, at once: the provider's client verifies it and decides (a 4xx, or a signed
error answer, is an answer, not an outage; asking again would get the same). When the deadline
passes, or every attempt failed to get through, `ProviderUnavailable`; after 5xx to the last
attempt, that last answer is returned for the provider's client to read its error code.

Only a request's method, host and path are ever logged: never its headers (the Authorization), its
body or its query string, nor the answer's body.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import httpx

from paynotify import ApiRequest, ApiResponse, ProviderApiError, ProviderUnavailable, __version__

__all__ = ["MAX_ANSWER_BYTES", "HttpSend"]

log = logging.getLogger("paynotify")

MAX_ANSWER_BYTES = 1024 * 1024
"""A query answer is a few KiB; more than this is not an answer but a fault (or an attack)."""


def where(url: str) -> str:
    """Scheme, host and path of `url`: never user info or the query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class HttpSend:
    """A `Send` over one pooled `httpx.AsyncClient`, made at the first request, closed by `aclose`
    (a later request makes a new one).

    `timeout` bounds each request, its retries included; `attempts` is how many times it may be
    sent; `backoff` the pause before the first retry (doubled before each later one). `transport`
    replaces httpx's network transport (tests: `httpx.ASGITransport(app=emulator)`).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.1,
        transport: httpx.AsyncBaseTransport | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if not timeout > 0 or attempts < 1 or backoff < 0:
            raise ValueError("timeout must be positive, attempts at least 1, backoff not negative")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.transport = transport
        self.max_answer_bytes = max_answer_bytes
        self._client: httpx.AsyncClient | None = None

    def _pool(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport,
                headers={"User-Agent": f"paynotify/{__version__}"},
                follow_redirects=False,  # a provider's API never redirects a signed request
            )
        return self._client

    @property
    def client(self) -> httpx.AsyncClient:
        """The pooled client (made now if need be): a bill's download streams through it too."""
        return self._pool()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        target = where(request.url)
        failure = "no attempt made"
        last: ApiResponse | None = None
        attempt = 0
        while attempt < self.attempts:
            attempt += 1
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(remaining):
                    answer = await self._once(request, remaining)
            except TimeoutError:
                raise ProviderUnavailable(
                    f"{target}: no answer within {self.timeout:g} s ({attempt} attempt(s))"
                ) from None
            except httpx.TransportError as exc:
                failure = type(exc).__name__
            except httpx.HTTPError as exc:  # reached, but the answer cannot be read (bad gzip, say)
                raise ProviderApiError(f"{target}: unreadable answer ({type(exc).__name__})") from None
            else:
                if answer.status < 500:
                    return answer
                last, failure = answer, f"HTTP {answer.status}"
            pause = self.backoff * 2 ** (attempt - 1)
            if attempt == self.attempts or loop.time() + pause >= deadline:
                break
            log.warning(
                "provider API %s %s: attempt %d of %d failed (%s), again in %.2g s",
                request.method, target, attempt, self.attempts, failure, pause,
            )  # fmt: skip
            await asyncio.sleep(pause)
        if last is not None:
            return last
        raise ProviderUnavailable(f"{target} unreachable ({failure}) after {attempt} attempt(s)")

    async def _once(self, request: ApiRequest, remaining: float) -> ApiResponse:
        # A connection that does not open in its share of the time is retried: a lost SYN
        # should not spend the whole deadline.
        timeout = httpx.Timeout(remaining, connect=min(remaining, self.timeout / self.attempts))
        async with self._pool().stream(
            request.method, request.url, headers=dict(request.headers), content=request.body, timeout=timeout
        ) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_answer_bytes:
                    raise ProviderApiError(
                        f"{where(request.url)}: answer larger than {self.max_answer_bytes} bytes, not read"
                    )
            headers = {name.lower(): value for name, value in response.headers.items()}
            return ApiResponse(response.status_code, headers, bytes(body))
