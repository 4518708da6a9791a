"""Signed HTTP webhooks (Standard Webhooks): one `WebhookPublisher` per endpoint, each a subscriber.

Queued (the default), the subscriber call only enqueues the event into the endpoint's own outbox, a
store of the same contract as the Notifier's (its own SQLite file, PostgreSQL schema or Redis
prefix); a worker per endpoint POSTs from there, with the endpoint's retry schedule, circuit breaker
and concurrency, and dead-letters there. So an endpoint that fails never holds back or re-sends to
another, nor the provider's acknowledgement. Inline, the POST happens in the subscriber call and a
failure fails the event like any subscriber's (the provider's resend or the dispatcher retries it,
and the store's per-subscriber records keep other endpoints from getting it twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from paynotify import (
    ConfigurationError,
    EventState,
    Kind,
    Lease,
    PaymentResult,
    Status,
    Store,
    StoredEvent,
    StoreError,
    open_store,
)
from paynotify.publishers._base import PublishError
from paynotify.publishers._message import CONTENT_TYPE, encode_message
from paynotify.publishers._webhook_sign import Signer, secret_values
from paynotify.publishers._webhook_state import (
    Attempt,
    CircuitBreaker,
    EndpointState,
    RetrySchedule,
    Stats,
)
from paynotify.publishers._webhook_urls import outbox_url

__all__ = [
    "DEFAULT_WEBHOOK_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "WebhookPublisher",
    "dead_letters",
    "outbox_url",
    "webhook_publishers",
]

log = logging.getLogger("paynotify.webhooks")

DEFAULT_WEBHOOK_TIMEOUT = 5.0
MAX_RESPONSE_BYTES = 4096
"""How much of an endpoint's answer is read (for the console's error text); the rest is dropped."""
_IDLE_POLL_SECONDS = 1.0
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RESERVED = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"}
)


def _names(values: str | Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    return frozenset([values] if isinstance(values, str) else values)


class WebhookPublisher:
    """POST each PaymentResult, signed (Standard Webhooks), to one HTTP endpoint.

        orders = WebhookPublisher("https://orders.internal/paynotify", name="orders",
                                  secret=os.environ["ORDERS_WEBHOOK_SECRET"], outbox="sqlite:///webhooks.db")
        notifier.subscribe(orders)

    The body is the publishers' message (`encode_message`, docs/publishers.md); `webhook-id` is the
    event id, so a receiver de-duplicates on it. Every secret given signs (rotation: add the new
    one, move receivers, drop the old). A 2xx answer within `timeout` seconds is success; anything
    else (3xx is never followed) fails the attempt. `accounts`, `providers`, `kinds`, `statuses`
    filter what is sent. See docs/webhooks.md for the schedule, the breaker and the outbox.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        secret: str | SecretStr | Sequence[str | SecretStr],
        outbox: str | Store | None = None,
        delivery: Literal["queued", "inline"] = "queued",
        accounts: str | Iterable[str] | None = None,
        providers: str | Iterable[str] | None = None,
        kinds: Kind | str | Iterable[Kind | str] | None = None,
        statuses: Status | str | Iterable[Status | str] | None = None,
        timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 4,
        schedule: RetrySchedule | None = None,
        circuit_failures: int = 5,
        circuit_reset_seconds: float = 30.0,
        disable_after_seconds: float = 86400.0,
        lease_seconds: float = 60.0,
        poll_seconds: float = _IDLE_POLL_SECONDS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(f"webhook name {name!r}: use 1-64 letters, digits, '_' or '-'")
        what = f"webhook {name!r}"
        scheme = urlsplit(url).scheme if isinstance(url, str) else ""
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"{what}: url must be http:// or https://")
        if delivery not in ("queued", "inline"):
            raise ConfigurationError(f"{what}: delivery must be 'queued' or 'inline', not {delivery!r}")
        if delivery == "queued" and outbox is None:
            raise ConfigurationError(f"{what}: queued delivery needs outbox= (a store URL or Store)")
        if not timeout > 0 or not lease_seconds > timeout:
            raise ConfigurationError(f"{what}: need 0 < timeout < lease_seconds")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"{what}: concurrency must be a whole number >= 1")
        extra = dict(headers or {})
        clash = sorted(k for k in extra if k.lower() in _RESERVED)
        if clash:
            raise ConfigurationError(f"{what}: headers may not set {', '.join(clash)}")
        self.endpoint = name
        self.url = url
        self.delivery = delivery
        self.timeout = timeout
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.max_response_bytes = max_response_bytes
        self.schedule = schedule or RetrySchedule()
        self.breaker = CircuitBreaker(
            failures=circuit_failures,
            reset_seconds=circuit_reset_seconds,
            disable_after_seconds=disable_after_seconds,
        )
        self.stats = Stats()
        self.accounts = _names(accounts)
        self.providers = _names(providers)
        self.kinds = (
            None
            if kinds is None
            else frozenset(Kind(k) for k in ([kinds] if isinstance(kinds, str) else kinds))
        )
        self.statuses = (
            None
            if statuses is None
            else frozenset(Status(s) for s in ([statuses] if isinstance(statuses, str) else statuses))
        )
        self._signer = Signer(secret_values(secret, what), what)
        self._headers = {"user-agent": "paynotify-webhooks", **extra, "content-type": CONTENT_TYPE}
        self._outbox_given = outbox
        self.outbox: Store | None = open_store(outbox) if isinstance(outbox, str) else outbox
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._active: dict[str, Lease] = {}
        self._stopping = False

    # -- identity ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The subscriber name the store records success under: stable across restarts."""
        return f"paynotify.publishers.WebhookPublisher({self.endpoint})"

    def __repr__(self) -> str:
        # Never the URL (it may carry a token) nor a secret.
        return f"<{self.name}>"

    @property
    def state(self) -> EndpointState:
        return self.breaker.state

    def wants(self, result: PaymentResult) -> bool:
        return (
            (self.accounts is None or result.account in self.accounts)
            and (self.providers is None or result.provider in self.providers)
            and (self.kinds is None or result.kind in self.kinds)
            and (self.statuses is None or result.status in self.statuses)
        )

    # -- the subscriber ------------------------------------------------------------------------

    async def __call__(self, result: PaymentResult) -> None:
        if not self.wants(result):
            return
        if self.delivery == "inline":
            await self._inline(result)
            return
        assert self.outbox is not None
        try:
            await self.outbox.enqueue(result)
        except StoreError as exc:
            raise PublishError(f"{self.name}: could not enqueue event {result.event_id}: {exc}") from exc
        if self._wake is not None:
            self._wake.set()

    async def _inline(self, result: PaymentResult) -> None:
        if not self.breaker.allow(time.time()):
            raise PublishError(
                f"{self.name}: endpoint {self.breaker.state.value}; event {result.event_id} not sent"
            )
        slots = self._slot_gate()
        try:
            async with asyncio.timeout(self.timeout):
                await slots.acquire()
        except TimeoutError:
            self.breaker._probing = False
            raise PublishError(
                f"{self.name}: {self.concurrency} sends already in flight for {self.timeout:g} s"
            ) from None
        try:
            attempt = await self.send(result)
        finally:
            slots.release()
        if not attempt.ok:
            raise PublishError(f"{self.name}: event {result.event_id}: {attempt.error}")

    def _slot_gate(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._slots

    # -- one POST ------------------------------------------------------------------------------

    async def send(self, result: PaymentResult) -> Attempt:
        """POST `result` once; the outcome (never raised) is recorded in the breaker and the stats."""
        message = encode_message(result)
        headers = {**self._headers, **self._signer.headers(result.event_id, message.body)}
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout):  # the whole exchange, a slow answer's body too
                async with self._http().stream(
                    "POST", self.url, content=message.body, headers=headers
                ) as response:
                    status = response.status_code
                    text = await self._bounded_text(response)
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (f": {text}" if text else "")
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        seconds = time.perf_counter() - started
        if error is not None:  # the URL may carry a token: never in an error, a log or a page
            error = error.replace(self.url, "<url>")[:300]
        attempt = Attempt(time.time(), result.event_id, status, seconds, error)
        self.stats.record(attempt)
        if attempt.ok:
            self.breaker.succeeded()
        else:
            self.breaker.failed(time.time())
            context = {"event_id": result.event_id, "account": result.account, "provider": result.provider,
                       "outcome": "webhook_failed", "cause": f"webhook {self.endpoint}"}  # fmt: skip
            log.warning(
                "webhook %s: event %s failed: %s",
                self.endpoint,
                result.event_id,
                attempt.error,
                extra=context,
            )
        return attempt

    async def _bounded_text(self, response: httpx.Response) -> str:
        # At most max_response_bytes are read: an endpoint answering with gigabytes costs nothing.
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept += chunk[: self.max_response_bytes - len(kept)]
            if len(kept) >= self.max_response_bytes:
                break
        return bytes(kept).decode("utf-8", "replace").strip()[:200]

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                follow_redirects=False,  # a 3xx is an answer, never a second destination
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
                trust_env=False,  # no proxy from the environment: the endpoint is named in the config
            )
        return self._client

    # -- the outbox worker (queued) ------------------------------------------------------------

    async def open(self) -> None:
        """Open the outbox and start this endpoint's worker (queued delivery)."""
        if self.delivery != "queued" or self._worker is not None:
            return
        assert self.outbox is not None
        self._stopping = False
        self._wake = asyncio.Event()
        try:
            await self.outbox.open()
        except StoreError as exc:
            # The worker starts anyway: stores open lazily, and it retries until the outbox answers.
            log.error("webhook %s: outbox unavailable at start: %s", self.endpoint, exc)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"webhook {self.endpoint}")

    async def run_once(self) -> int:
        """Acquire what is due (as the breaker allows) and deliver it; returns how many events."""
        assert self.outbox is not None
        now = time.time()
        if self.breaker.wait(now) > 0:
            return 0
        half_open = self.breaker.circuit.value != "closed"
        leases = await self.outbox.acquire(
            limit=1 if half_open else self.concurrency, lease_seconds=self.lease_seconds
        )
        if not leases:
            return 0
        if not self.breaker.allow(time.time()):
            for lease in leases:  # the circuit opened meanwhile: give them back untried
                await self.outbox.reschedule(
                    lease.event.event_id, lease.token, at=time.time(), error="circuit open"
                )
            return 0
        for lease in leases:
            self._active[lease.event.event_id] = lease
        outcomes = await asyncio.gather(*(self._deliver(lease) for lease in leases), return_exceptions=True)
        for lease, outcome in zip(leases, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error(
                    "webhook %s: could not settle event %s: %s", self.endpoint, lease.event.event_id, outcome
                )
        return len(leases)

    async def _deliver(self, lease: Lease) -> None:
        assert self.outbox is not None
        event_id = lease.event.event_id
        attempt = await self.send(lease.event.result())
        if attempt.ok:
            await self.outbox.complete(event_id, lease.token)
        else:
            delay = self.schedule.delay(lease.event.attempts)
            error = attempt.error or "failed"
            if delay is None:
                await self.outbox.dead_letter(event_id, lease.token, error=error)
                log.error("webhook %s: event %s dead-lettered after %d attempts: %s",
                          self.endpoint, event_id, lease.event.attempts, error)  # fmt: skip
            else:
                await self.outbox.reschedule(event_id, lease.token, at=time.time() + delay, error=error)
        self._active.pop(event_id, None)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delivered = await self.run_once()
            except StoreError as exc:
                log.error("webhook %s: outbox unavailable, retrying: %s", self.endpoint, exc)
                delivered = 0
            if delivered == 0 and not self._stopping:
                wait = min(self.poll_seconds, self.breaker.wait(time.time()) or self.poll_seconds)
                await self._idle(wait)

    async def _idle(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def enable(self) -> None:
        """Close the breaker and re-enable a disabled endpoint; its worker looks at once."""
        self.breaker.enable()
        if self._wake is not None:
            self._wake.set()

    async def retry(self, event_ids: Iterable[str] | None = None) -> int:
        """Make this endpoint's dead-lettered events (or the ones named, in any settled state: a
        resend) due now, re-enable the endpoint, and return how many were requeued."""
        if self.outbox is None:
            raise ConfigurationError(
                f"{self.name}: inline delivery has no outbox; use paynotify events retry"
            )
        await self.outbox.open()
        if event_ids is None:
            ids = [e.event_id for e in await dead_letters(self.outbox)]
            replay = False
        else:
            ids, replay = list(event_ids), True
        count = 0
        for event_id in ids:
            count += bool(await self.outbox.requeue(event_id, replay=replay))
        self.enable()
        return count

    async def aclose(self, grace: float | None = None) -> None:
        """Stop the worker (sends in progress get `grace` seconds, then are handed back due now),
        then close the HTTP client and the outbox."""
        self._stopping = True
        worker, self._worker = self._worker, None
        if worker is not None:
            assert self._wake is not None
            self._wake.set()
            done, _ = await asyncio.wait({worker}, timeout=self.timeout + 1 if grace is None else grace)
            if not done:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        if self.outbox is not None:
            for event_id, lease in list(self._active.items()):
                with contextlib.suppress(StoreError):
                    await self.outbox.reschedule(
                        event_id, lease.token, at=time.time(), error="interrupted by shutdown"
                    )
            self._active.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self._slots = None
        if self.outbox is not None and isinstance(self._outbox_given, str):
            await self.outbox.close()

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, store_url: str | None) -> WebhookPublisher:
        """One `[[webhooks]]` table of a config file (secrets already read)."""
        options = dict(table)
        name = options.pop("name", None)
        url = options.pop("url", None)
        secret = options.pop("secret", None)
        if not isinstance(name, str) or not isinstance(url, str) or secret is None:
            raise ConfigurationError(
                '[[webhooks]] needs name = "...", url = "...", secret_env or secret_file'
            )
        schedule = {
            k: options.pop(k)
            for k in ("backoff_seconds", "max_backoff_seconds", "max_attempts")
            if k in options
        }
        for singular, plural in (
            ("account", "accounts"),
            ("provider", "providers"),
            ("kind", "kinds"),
            ("status", "statuses"),
        ):
            if singular in options:
                options[plural] = options.pop(singular)
        if options.get("delivery", "queued") == "queued" and "outbox" not in options:
            if store_url is None:
                raise ConfigurationError(
                    f"webhook {name!r}: queued delivery needs outbox = URL (no store set)"
                )
            options["outbox"] = outbox_url(store_url, name)
        allowed = {
            "outbox", "delivery", "accounts", "providers", "kinds", "statuses", "timeout", "headers",
            "concurrency", "circuit_failures", "circuit_reset_seconds", "disable_after_seconds",
            "lease_seconds",
        }  # fmt: skip
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigurationError(f"webhook {name!r}: unknown keys {unknown}")
        return cls(url, name=name, secret=secret, schedule=RetrySchedule(**schedule), **options)


async def dead_letters(outbox: Store, limit: int = 1000) -> list[StoredEvent]:
    """The endpoint's dead-lettered events, newest first."""
    return await outbox.find(states=[EventState.DEAD], limit=limit)


def webhook_publishers(notifier: Any) -> list[WebhookPublisher]:
    """The WebhookPublishers subscribed to `notifier` (a paynotify.Notifier), in order."""
    return [fn for fn in notifier.subscribers if isinstance(fn, WebhookPublisher)]
