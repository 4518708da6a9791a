"""The public face: accounts, subscribers and a store, served on one ASGI route.

It composes the pieces below it and adds nothing of its own but the lifecycle: the account table
(`_accounts`), subscribers and hooks (`_subscribers`), the pipeline (`_pipeline`), the dispatcher
(`_dispatcher`) and the ASGI adapter (`_asgi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from paynotify._accounts import Accounts, AccountSpec, ProviderRef
from paynotify._api import ApiRequest, ApiResponse, QueryAnswer, Send
from paynotify._asgi import NotificationApp
from paynotify._config import load_config
from paynotify._dispatcher import Dispatcher, purge_periodically
from paynotify._errors import ConfigurationError
from paynotify._http import InboundRequest, Reply
from paynotify._observe import Observer
from paynotify._options import DEFAULT_BODY_LIMIT, Delivery, Options, OptionValues
from paynotify._pipeline import Pipeline
from paynotify._provider import Account
from paynotify._redeliver import redeliver
from paynotify._refusals import RecentRefusals
from paynotify._registry import Registry
from paynotify._registry import registry as default_registry
from paynotify._result import Kind, PaymentResult, Status
from paynotify._stores.base import RETAINED, EventState, Store
from paynotify._stores.expectations import Expectation
from paynotify._stores.urls import open_store
from paynotify._subscribers import (
    CheckHook,
    RejectedHook,
    ReturnHandler,
    SubscriberFn,
    Subscribers,
    UnhandledHook,
    normalize_filter,
)
from paynotify._wsgi import NotificationWSGIApp

if TYPE_CHECKING:
    import httpx

    from paynotify.reconciliation import DailyReconciliation, ReconciliationReport
    from paynotify.recovery import HttpSend, Sweeper, Upkeeps

__all__ = ["DEFAULT_BODY_LIMIT", "DEFAULT_STORE_URL", "Delivery", "Notifier"]

log = logging.getLogger("paynotify")

DEFAULT_STORE_URL = "sqlite:///paynotify.db"
F = TypeVar("F", bound=SubscriberFn)
C = TypeVar("C", bound=CheckHook)
R = TypeVar("R", bound=RejectedHook)
U = TypeVar("U", bound=UnhandledHook)
H = TypeVar("H", bound=ReturnHandler)
KindFilter = Kind | str | Iterable[Kind | str] | None
StatusFilter = Status | str | Iterable[Status | str] | None


class Notifier:
    """Accounts, subscribers and a store, served on one ASGI route.

    notifier = Notifier("sqlite:///events.db")
    notifier.add_account("shop", "wechatpay-v2", appid="wx…", mch_id="1900…", api_key=KEY)

    @notifier.subscribe(kind="refund")
    def on_refund(result: PaymentResult) -> None: ...

    app = notifier.asgi()
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        registry: Registry | None = None,
        api_transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[OptionValues],
    ) -> None:
        """`options` are `Options`' fields (delivery, queued delivery's retries, bounds, the sweeper's
        and the daily reconciliation's): see `paynotify.Options`; a wrong one raises
        `ConfigurationError`. `api_transport` is the httpx transport queries of the providers' APIs
        go through (default: the network; a test: `httpx.ASGITransport(app=emulator)`)."""
        self.options = Options(**options)
        opened = store if isinstance(store, Store) else open_store(store or DEFAULT_STORE_URL)
        self.registry = registry or default_registry
        self._accounts = Accounts(self.registry)
        self._subscribers = Subscribers()
        self.pipeline = Pipeline(self._accounts, self._subscribers, opened, self.options)
        self.pipeline.send = self._send_to_api
        self.dispatcher: Dispatcher | None = None
        self._dispatching: asyncio.Task[None] | None = None
        self._purging: asyncio.Task[None] | None = None
        self._api_transport = api_transport
        self._api_send: HttpSend | None = None
        self._upkeep: Upkeeps | None = None
        self.sweeper: Sweeper | None = None
        self.sweeps_by_default = False
        """Whether `open` runs the sweeper and the daily reconciliation when their options are None."""
        self._sweeping: asyncio.Task[None] | None = None
        self.daily: DailyReconciliation | None = None  # while `open` runs it (option `reconcile`)
        if self.options.expectations:
            self.pipeline.delivered = self._close_expectation

    @classmethod
    def from_config(cls, path: str | Path, *, registry: Registry | None = None) -> Notifier:
        """A Notifier from a TOML file (see docs/configuration.md); secrets come from files or env."""
        config = load_config(Path(path), registry or default_registry)
        values: OptionValues = dataclasses.asdict(config.options)  # type: ignore[assignment]
        notifier = cls(config.store, registry=registry, **values)
        for name, (provider, settings) in config.accounts.items():
            notifier.add_account(name, provider, **settings)
        for spec in config.subscribers:
            notifier.subscribe(**spec.options)(spec.target)
        config.install_hooks(notifier)
        return notifier

    @property
    def store(self) -> Store:
        return self.pipeline.store

    @store.setter
    def store(self, store: Store) -> None:
        """Swap the store before opening (tests and benchmarks start each round afresh)."""
        self.pipeline.store = store

    @property
    def delivery(self) -> Delivery:
        return self.options.delivery

    @property
    def body_limit(self) -> int:
        return self.options.body_limit

    # -- accounts ------------------------------------------------------------------------------

    @property
    def accounts(self) -> Mapping[str, Account[Any]]:
        return self._accounts.view()

    def add_account(self, name: str, provider: ProviderRef, **settings: Any) -> Account[Any]:
        """Add an account served at `/{name}/notify` (and `/{name}/return` where the provider has one).

        Settings are validated by the provider's model; a wrong one raises `ConfigurationError`
        naming the account and the field.
        """
        account = self._accounts.add(name, provider, settings)
        self._accounts_changed()
        return account

    def update_account(self, name: str, provider: ProviderRef | None = None, **settings: Any) -> Account[Any]:
        """Replace an account's settings (all of them, e.g. to rotate keys) without a restart.

        The new settings are validated first; if they are wrong, `ConfigurationError` is raised and
        the old account keeps serving. A request already being handled finishes with the settings
        it started with, every later one uses the new settings.

            notifier.update_account("shop", app_id="2021…", alipay_public_key=[old_key, new_key])
        """
        account = self._accounts.update(name, provider, settings)
        self._accounts_changed()
        return account

    def replace_accounts(self, accounts: Mapping[str, AccountSpec]) -> None:
        """Swap the whole set of accounts at once, all validated first (a configuration reload).

        If any account is wrong, `ConfigurationError` is raised and nothing changes.
        """
        self._accounts.replace(accounts)
        self._accounts_changed()

    def reload_accounts(self, path: str | Path) -> None:
        """`replace_accounts` with the accounts of the TOML file at `path` (`paynotify serve` on
        SIGHUP); the store, the options and the subscribers stay as they were."""
        self.replace_accounts(load_config(Path(path), self.registry).accounts)

    def _accounts_changed(self) -> None:
        if self._upkeep is not None:
            self._upkeep.changed()

    # -- subscribers and hooks -----------------------------------------------------------------

    @property
    def subscribers(self) -> tuple[Callable[..., Any], ...]:
        """The subscribed callables (publishers included), in the order they run."""
        return tuple(s.fn for s in self._subscribers.subscribers)

    @overload
    def subscribe(
        self, fn: F, /, *, kind: KindFilter = None, status: StatusFilter = None, name: str | None = None
    ) -> F: ...
    @overload
    def subscribe(
        self, fn: None = ..., /, *, kind: KindFilter = ..., status: StatusFilter = ..., name: str | None = ...
    ) -> Callable[[F], F]: ...

    def subscribe(
        self,
        fn: F | None = None,
        /,
        *,
        kind: KindFilter = None,
        status: StatusFilter = None,
        name: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register a sync or async callable to receive each verified `PaymentResult`.

        @notifier.subscribe
        async def every_event(result): ...

        @notifier.subscribe(kind="payment", status="succeeded")
        def ship(result): ...          # sync subscribers run in a worker thread

        Each subscriber runs until it succeeds once per event (`result.event_id`): when one of two
        fails, the retry runs only that one. The store records success by `name` (default:
        `module.qualname`, or an object's own `name`), so keep names stable across deployments.
        A subscriber object with async `open()`/`aclose()` methods is opened and closed with the
        Notifier.
        """
        kinds = normalize_filter(kind, Kind)
        statuses = normalize_filter(status, Status)

        def decorate(f: F) -> F:
            self._subscribers.add(f, kinds=kinds, statuses=statuses, name=name)
            return f

        return decorate(fn) if fn is not None else decorate

    def check(self, fn: C) -> C:
        """Register a check run on every verified notification before dispatch.

        Return False or raise `CheckFailed` to refuse it: it is recorded as `rejected`, the provider
        is acknowledged (a retry cannot change the answer), rejected-hooks and the log are told, and
        `paynotify events replay` delivers it once the check passes. Raising anything else is a
        temporary failure: the provider is asked to retry.
        """
        self._subscribers.checks.append(fn)
        return fn

    def on_rejected(self, fn: R) -> R:
        """Register `fn(result, error)`, called for each verified notification a check refused."""
        self._subscribers.rejected_hooks.append(fn)
        return fn

    def on_unhandled(self, fn: U) -> U:
        """Register `fn(event)`, called for each verified notification that is not a payment or
        refund (an `UnhandledEvent` with the provider's verified, decrypted content).

        The event is recorded as `unhandled`; the provider is acknowledged once every hook returned,
        and asked to retry if one raised. Hooks are called for every copy: make them idempotent on
        `event.event_id`.
        """
        self._subscribers.unhandled_hooks.append(fn)
        return fn

    def on_return(self, fn: H) -> H:
        """Register the sync-return handler: `fn(result)` returns a `Reply`, a URL to redirect to,
        or None for the default (the account's `return_url`, else a neutral page).

        A return is never proof of payment: show a page, fulfil only from the async notification.
        """
        self._subscribers.return_handler = fn
        return fn

    def observe(self, observer: Observer | None) -> None:
        """Tell `observer` (`paynotify.ops.Instrumentation`; None: no one) each outcome and timing."""
        self.pipeline.observer = observer

    @property
    def observer(self) -> Observer | None:
        return self.pipeline.observer

    @property
    def refused_requests(self) -> RecentRefusals:
        """The recent refusals, per account, in this process's memory (the console's Refused page)."""
        return self.pipeline.refusals.recent

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, *, dispatcher: bool | None = None, sweeper: bool | None = None) -> None:
        """Open the store and subscribers; start the retention purge and, for queued delivery, the
        dispatcher (unless `dispatcher` or the `dispatcher` option says not to), and the sweeper
        when `sweeper` (default: the `sweeper` option) says so."""
        await self.store.open()
        if self._purging is not None:
            return
        await self._subscribers.open()
        from paynotify.recovery import Upkeeps  # the layer above the pipeline, loaded when used

        self._upkeep = Upkeeps(lambda: self.accounts, self._send_to_api)
        await self._upkeep.start()  # e.g. WeChat Pay v3 platform certificates, before serving
        self._purging = asyncio.create_task(purge_periodically(self.purge), name="paynotify-purge")
        dispatching = self.options.dispatcher if dispatcher is None else dispatcher
        if self.options.delivery == "queued" and dispatching:
            self.dispatcher = Dispatcher(self.store, self.pipeline.deliver_lease, self.options)
            self.pipeline.wake = self.dispatcher.wake.set
            self._dispatching = asyncio.create_task(self.dispatcher.run(), name="paynotify-dispatcher")
        sweeping = self.options.sweeper if sweeper is None else sweeper
        sweeping = self.sweeps_by_default if sweeping is None else sweeping
        if sweeping and self.options.expectations:
            self._start_sweeper()
        if self.sweeps_by_default if self.options.reconcile is None else self.options.reconcile:
            from paynotify.reconciliation import notifier_daily  # the layer above, when used

            self.daily = notifier_daily(self).start()

    def _start_sweeper(self) -> None:
        from paynotify.recovery import notifier_sweeper

        self.sweeper = notifier_sweeper(self)
        if self.sweeper is not None:
            self._sweeping = asyncio.create_task(self.sweeper.run(), name="paynotify-sweeper")

    async def aclose(self) -> None:
        """Let deliveries in progress finish (up to `close_timeout` seconds), hand back what is still
        running so another process takes it at once, then close the subscribers and the store."""
        deadline = time.monotonic() + self.options.close_timeout
        if self.sweeper is not None and self._sweeping is not None:
            self.sweeper.stop()
            # A round's questions each have a deadline; past close_timeout the round is cut short
            # (its leases run out, and another sweeper asks again).
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._sweeping, self.options.close_timeout)
        self.sweeper = self._sweeping = None
        if self.daily is not None:  # a run cut short releases its lease; the day stays due
            await self.daily.aclose()
        self.daily = None
        cut_short = {}  # the dispatcher's deliveries still running after close_timeout
        if self.dispatcher is not None and self._dispatching is not None:
            cut_short = await self.dispatcher.stop(self._dispatching, self.options.close_timeout)
        self.dispatcher = self._dispatching = None
        # Polled, and only here: an Event would cost every notification a set and a clear.
        while self.pipeline.inflight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self.pipeline.hand_back_at_shutdown(cut_short)
        if self._purging is not None:
            self._purging.cancel()
            await asyncio.gather(self._purging, return_exceptions=True)
            self._purging = None
            await self._subscribers.aclose()
        if self._upkeep is not None:
            await self._upkeep.aclose()
            self._upkeep = None
        if self._api_send is not None:
            await self._api_send.aclose()
        await self.store.close()

    async def __aenter__(self) -> Notifier:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A Starlette/FastAPI lifespan: opens the store at start-up, closes it at shutdown.

        app = Starlette(routes=[Mount("/payments", app=notifier.asgi())], lifespan=notifier.lifespan)
        """
        async with self:
            yield

    def asgi(self) -> NotificationApp:
        """The ASGI app serving every account: `POST /{account}/notify`, `GET|POST /{account}/return`."""
        return NotificationApp(self.pipeline.handle,  # not self.handle: one coroutine less per request
                               body_limit=self.options.body_limit, body_timeout=self.options.body_timeout,
                               lifespan=self.lifespan, refused=self.pipeline.refused_at_door)  # fmt: skip

    def wsgi(self) -> NotificationWSGIApp:
        """The WSGI app serving the same routes (Flask: werkzeug's DispatcherMiddleware); docs/flask.md."""
        return NotificationWSGIApp(self)

    # -- the pipeline --------------------------------------------------------------------------

    async def handle(self, account_name: str, request: InboundRequest) -> Reply:
        """Run one delivery through the pipeline and return the reply to send (for adapters).

        Raises `UnknownAccount` when no account (or channel) answers; everything else becomes a reply.
        """
        return await self.pipeline.handle(account_name, request)

    async def redeliver(self, event_id: str, *, replay: bool = False) -> bool:
        """Deliver a recorded event again now, in this process (`paynotify events retry|replay`).

        A retry runs the subscribers that have not succeeded on it (a dead-lettered or released
        event); a replay runs every subscriber again, even on a completed event, and re-checks a
        rejected one with the account's current settings first (`CheckFailed` if still refused).
        Returns False when the event is unknown, in flight elsewhere, or not eligible; raises
        `DeliveryFailed` when a subscriber fails, `StoreError` when the store could not record it
        done (either way the event stays where the next attempt finds it; docs/stores.md)."""
        return await redeliver(self.pipeline, event_id, replay=replay)

    # -- asking the provider -------------------------------------------------------------------

    async def _send_to_api(self, request: ApiRequest) -> ApiResponse:
        # The pipeline's Send: the pooled client is made at the first confirmation, not at start.
        return await self.api_send(request)

    @property
    def api_send(self) -> Send:
        """The `Send` the providers' API clients get: one pooled HTTP client for this Notifier (made
        at the first request, closed by `aclose`), `query_timeout` per request, retries bounded by
        `query_attempts`; `ProviderUnavailable` when the provider cannot be reached."""
        if self._api_send is None:
            from paynotify.recovery import HttpSend  # the layer above the pipeline, loaded when used

            options = self.options
            self._api_send = HttpSend(timeout=options.query_timeout, attempts=options.query_attempts,
                                      transport=self._api_transport)  # fmt: skip
        return self._api_send

    async def query(
        self, account: str, order_id: str, *, refund_id: str | None = None, at: datetime | None = None
    ) -> QueryAnswer:
        """Ask the provider about order `order_id` (with `refund_id`: about that refund of it) and
        deliver a new state it reports exactly as its notification would be: the same checks and
        event id, so a queried payment and a notified one are delivered once, whichever came first.
        `at` is when the payment (or refund) was made, for a provider that needs it (UnionPay).

        Returns the verified `QueryAnswer` with its `outcome` (`delivered`, `duplicate`, `queued`,
        `rejected_check`, `in_flight`, `delivery_failed`, ..., or `not_found`). Raises
        `UnknownAccount`; `ConfigurationError` when the account cannot query; `VerificationError`
        when the answer does not verify (nothing is delivered); `ProviderUnavailable` when the
        provider is not reached within `query_timeout`; `ProviderApiError` for its error answers.
        """
        from paynotify.recovery import ask

        return await ask(self, self.api_send, account, order_id, refund_id=refund_id, at=at)

    async def reconcile(self, account: str, day: date, *, heal: bool = False) -> ReconciliationReport:
        """The provider's bill of `day` (Beijing) against the events; docs/reconciliation.md."""
        from paynotify.reconciliation import reconcile  # the layer above the pipeline, when used

        return await reconcile(self, account, day, heal=heal)

    async def expect(
        self,
        account: str,
        order_id: str,
        *,
        amount: Decimal | str | int,
        currency: str = "CNY",
        refund_id: str | None = None,
        until: datetime | timedelta | float,
        at: datetime | None = None,
    ) -> Expectation:
        """Record that order `order_id`'s payment (with `refund_id`: that refund) is awaited until
        `until` (an aware datetime, a timedelta from now, or Unix seconds). If no final state of it
        is delivered by then, the sweeper asks (`first_query_after`, 1 min, then 3, 10, 30, hourly) and
        delivers what it says; a final state delivered by either path settles it. Idempotent: the
        record already there is returned. `at` is when it was paid, for UnionPay's query.
        """
        from paynotify.recovery import expect

        if not self.options.expectations:
            raise ConfigurationError("expectations are off (expectations = false)")
        return await expect(self, account, order_id, amount=amount, currency=currency, refund_id=refund_id,
                            until=until, at=at, first_due=None, now=time.time())  # fmt: skip

    async def _close_expectation(self, result: PaymentResult) -> None:
        from paynotify.recovery import close_delivered

        await close_delivered(self.store, result)

    async def purge(
        self,
        *,
        older_than_days: float | None = None,
        states: Iterable[EventState] = RETAINED,
        account: str | None = None,
        provider: str | None = None,
        order_id: str | None = None,
        created_after: float | None = None,
    ) -> int:
        """Delete events in `states` (settled ones by default) last updated longer ago than the
        retention period (or `older_than_days`), and matching every filter given; returns how many.

        The filters are `find`'s (`created_after` in Unix seconds, inclusive). A test account's
        settled events, whatever their age:

            await notifier.purge(account="sandbox", older_than_days=0)
        """
        days = self.options.retention_days if older_than_days is None else older_than_days
        before = time.time() - days * 86400
        return await self.store.purge(before=before, states=states, account=account, provider=provider,
                                      order_id=order_id, created_after=created_after)  # fmt: skip
