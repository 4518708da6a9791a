"""The one shared handler: verify, normalize, check, deduplicate, dispatch, reply.

It knows no provider's format: providers turn bytes into a `PaymentResult` and supply their reply
bytes; this module decides which reply a delivery gets (DESIGN.md, "Reply semantics").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from pydantic import ValidationError

from paynotify._errors import (
    CheckFailed,
    ConfigurationError,
    DeliveryFailed,
    InFlight,
    MalformedNotification,
    NotificationError,
    StoreError,
    UnknownAccount,
    VerificationError,
)
from paynotify._http import InboundRequest, Reply
from paynotify._provider import Account, Provider
from paynotify._registry import Registry
from paynotify._registry import registry as default_registry
from paynotify._result import Kind, PaymentResult, Source, Status, UnhandledEvent
from paynotify._return_page import default_return_reply, return_failure_reply
from paynotify._store import ClaimState, EventState, Lease, Store, open_store
from paynotify._store_memory import MemoryStore
from paynotify._store_sqlite import SQLiteStore
from paynotify._subscribers import Subscriber, call_maybe_async, default_name, normalize_filter

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from paynotify._dispatcher import Dispatcher
    from paynotify._wsgi import NotificationWSGIApp

__all__ = ["DEFAULT_BODY_LIMIT", "DEFAULT_STORE_URL", "Delivery", "Notifier"]

log = logging.getLogger("paynotify")

DEFAULT_BODY_LIMIT = 64 * 1024
DEFAULT_STORE_URL = "sqlite:///paynotify.db"
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Delivery = Literal["inline", "queued"]
F = TypeVar("F", bound=Callable[..., Any])
ReturnHandler = Callable[[PaymentResult], "Reply | str | Awaitable[Reply | str | None] | None"]
CheckHook = Callable[[PaymentResult], "bool | Awaitable[bool | None] | None"]
RejectedHook = Callable[[PaymentResult, NotificationError], "Awaitable[None] | None"]
UnhandledHook = Callable[[UnhandledEvent], "Awaitable[None] | None"]

# Importing the built-in stores registers their URL schemes with open_store().
_BUILTIN_STORES = (MemoryStore, SQLiteStore)


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
        delivery: Delivery = "inline",
        body_limit: int = DEFAULT_BODY_LIMIT,
        lease_seconds: float = 60.0,
        max_attempts: int = 12,
        backoff_seconds: float = 5.0,
        max_backoff_seconds: float = 3600.0,
        dispatcher: bool = True,
        concurrency: int = 4,
        retention_days: float = 30.0,
        registry: Registry | None = None,
    ) -> None:
        """`delivery="inline"` acknowledges a notification only after every subscriber succeeded (the
        provider's retries drive redelivery); `"queued"` records it durably, acknowledges at once and
        lets a dispatcher deliver it, retrying with exponential backoff from `backoff_seconds` up to
        `max_backoff_seconds`, dead-lettering after `max_attempts`. `dispatcher=False` leaves queued
        events to other processes (`paynotify worker`). Completed events are purged after
        `retention_days`, longer than any provider's retry window.
        """
        self.store: Store = open_store(store or DEFAULT_STORE_URL) if not isinstance(store, Store) else store
        if delivery not in ("inline", "queued"):
            raise ConfigurationError(f"delivery must be 'inline' or 'queued', not {delivery!r}")
        numbers = {
            "body_limit": body_limit,
            "lease_seconds": lease_seconds,
            "max_attempts": max_attempts,
            "backoff_seconds": backoff_seconds,
            "max_backoff_seconds": max_backoff_seconds,
            "concurrency": concurrency,
            "retention_days": retention_days,
        }
        for label, value in numbers.items():
            if value <= 0:
                raise ConfigurationError(f"{label} must be positive, not {value!r}")
        self.delivery: Delivery = delivery
        self.body_limit = body_limit
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.run_dispatcher = dispatcher
        self.concurrency = concurrency
        self.retention_days = retention_days
        self.registry = registry or default_registry
        self.dispatcher: Dispatcher | None = None
        self._background: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._accounts: dict[str, Account[Any]] = {}
        self._subscribers: list[Subscriber] = []
        self._checks: list[CheckHook] = []
        self._rejected_hooks: list[RejectedHook] = []
        self._unhandled_hooks: list[UnhandledHook] = []
        self._return_handler: ReturnHandler | None = None

    # -- configuration -------------------------------------------------------------------------

    @classmethod
    def from_config(cls, path: str | Path) -> Notifier:
        """A Notifier from a TOML file (see docs/configuration.md); secrets come from files or env."""
        from paynotify._config import notifier_from_config

        return notifier_from_config(cls, Path(path))

    @property
    def accounts(self) -> Mapping[str, Account[Any]]:
        return MappingProxyType(self._accounts)

    def add_account(
        self, name: str, provider: str | type[Provider[Any]] | Provider[Any], **settings: Any
    ) -> Account[Any]:
        """Add an account served at `/{name}/notify` (and `/{name}/return` where the provider has one).

        Settings are validated by the provider's model; a wrong one raises `ConfigurationError`
        naming the account and the field.
        """
        if not _ACCOUNT_NAME.fullmatch(name):
            raise ConfigurationError(
                f"account name {name!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
            )
        if name in self._accounts:
            raise ConfigurationError(f"account {name!r} is already added")
        account = self._build_account(name, provider, settings)
        self._accounts[name] = account
        return account

    def update_account(
        self, name: str, provider: str | type[Provider[Any]] | Provider[Any] | None = None, **settings: Any
    ) -> Account[Any]:
        """Replace an account's settings (all of them, e.g. to rotate keys) without a restart.

        The new settings are validated first; if they are wrong, `ConfigurationError` is raised and
        the old account keeps serving. The swap is atomic: a request already being handled finishes
        with the settings it started with, every later one uses the new settings.

            notifier.update_account("shop", app_id="2021…", alipay_public_key=[old_key, new_key])
        """
        current = self._accounts.get(name)
        if current is None:
            raise ConfigurationError(f"no account {name!r} to update; add it with add_account")
        account = self._build_account(name, provider or current.provider, settings)
        self._accounts[name] = account
        log.info("account %r (%s) updated", name, account.provider.name)
        return account

    def replace_accounts(self, accounts: Mapping[str, tuple[str | Provider[Any], Mapping[str, Any]]]) -> None:
        """Swap the whole set of accounts at once, all validated first (a configuration reload).

        If any account is wrong, `ConfigurationError` is raised and nothing changes.
        """
        built: dict[str, Account[Any]] = {}
        for name, (provider, settings) in accounts.items():
            if not _ACCOUNT_NAME.fullmatch(name):
                raise ConfigurationError(f"account name {name!r} is not a valid URL segment")
            built[name] = self._build_account(name, provider, settings)
        self._accounts = built

    def _build_account(
        self, name: str, provider: str | type[Provider[Any]] | Provider[Any], settings: Mapping[str, Any]
    ) -> Account[Any]:
        if isinstance(provider, str):
            instance = self.registry.get(provider)
        elif isinstance(provider, type):
            instance = provider()
        else:
            instance = provider
        try:
            validated = instance.settings_model.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"account {name!r} ({instance.name}): {problems}") from None
        return Account(name, instance, validated)

    @overload
    def subscribe(
        self,
        fn: F,
        /,
        *,
        kind: Kind | str | Iterable[Kind | str] | None = None,
        status: Status | str | Iterable[Status | str] | None = None,
        name: str | None = None,
    ) -> F: ...
    @overload
    def subscribe(
        self,
        fn: None = None,
        /,
        *,
        kind: Kind | str | Iterable[Kind | str] | None = None,
        status: Status | str | Iterable[Status | str] | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]: ...

    def subscribe(
        self,
        fn: F | None = None,
        /,
        *,
        kind: Kind | str | Iterable[Kind | str] | None = None,
        status: Status | str | Iterable[Status | str] | None = None,
        name: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register a sync or async callable to receive each verified `PaymentResult`.

        @notifier.subscribe
        async def every_event(result): ...

        @notifier.subscribe(kind="payment", status="succeeded")
        def ship(result): ...          # sync subscribers run in a worker thread

        Each subscriber runs until it succeeds once per event (`result.event_id`): when one of two
        fails, the retry runs only that one. The store records success by `name` (default:
        `module.qualname`), so keep names stable across deployments.
        """
        kinds = normalize_filter(kind, Kind)
        statuses = normalize_filter(status, Status)

        def decorate(f: F) -> F:
            subscriber_name = name or default_name(f)
            if any(s.name == subscriber_name for s in self._subscribers):
                raise ConfigurationError(
                    f"a subscriber named {subscriber_name!r} is already registered; pass name=... "
                    "to tell them apart (the store records success per subscriber name)"
                )
            self._subscribers.append(Subscriber(f, subscriber_name, kinds, statuses))
            return f

        return decorate(fn) if fn is not None else decorate

    def check(self, fn: F) -> F:
        """Register a check run on every verified notification before dispatch.

        Return False or raise `CheckFailed` to refuse it: the provider is acknowledged (a retry
        cannot change the answer), nothing is dispatched, rejected-hooks and the log are told.
        Raising anything else is treated as a temporary failure: the provider is asked to retry.
        """
        self._checks.append(fn)
        return fn

    def on_rejected(self, fn: F) -> F:
        """Register `fn(result, error)`, called for each verified notification a check refused."""
        self._rejected_hooks.append(fn)
        return fn

    def on_unhandled(self, fn: F) -> F:
        """Register `fn(event)`, called for each verified notification that is not a payment or
        refund (an `UnhandledEvent`, e.g. a WeChat v3 event type paynotify does not normalize).

        The provider is acknowledged once every hook returned; if a hook raises, it is asked to retry.
        Unhandled events are not deduplicated: make hooks idempotent on `event.event_id`.
        """
        self._unhandled_hooks.append(fn)
        return fn

    def on_return(self, fn: F) -> F:
        """Register the sync-return handler: `fn(result)` returns a `Reply`, a URL to redirect to,
        or None for the default (the account's `return_url`, else a neutral page).

        A return is never proof of payment: show a page, fulfil only from the async notification.
        """
        self._return_handler = fn
        return fn

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store; start the dispatcher (queued delivery) and the retention purge."""
        await self.store.open()
        if self._background:
            return
        from paynotify._dispatcher import Dispatcher, purge_periodically

        self._wake = asyncio.Event()
        self._background.append(asyncio.create_task(purge_periodically(self), name="paynotify-purge"))
        if self.delivery == "queued" and self.run_dispatcher:
            self.dispatcher = Dispatcher(self, self._wake)
            self._background.append(asyncio.create_task(self.dispatcher.run(), name="paynotify-dispatcher"))

    async def aclose(self) -> None:
        """Stop background work (letting a delivery in progress finish), then close the store."""
        tasks, self._background = self._background, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.close()

    async def __aenter__(self) -> Notifier:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A Starlette/FastAPI lifespan: opens the store at start-up, closes it at shutdown.

        app = Starlette(routes=[Mount("/payments", app=notifier.asgi())], lifespan=notifier.lifespan)
        """
        async with self:
            yield

    def asgi(self) -> ASGIApp:
        """The ASGI app serving every account: `POST /{account}/notify`, `GET|POST /{account}/return`."""
        from paynotify._asgi import NotificationApp

        return NotificationApp(self)

    def wsgi(self) -> NotificationWSGIApp:
        """The WSGI app serving the same routes (Flask: werkzeug's DispatcherMiddleware); docs/flask.md."""
        from paynotify._wsgi import NotificationWSGIApp

        return NotificationWSGIApp(self)

    # -- the pipeline --------------------------------------------------------------------------

    async def handle(self, account_name: str, request: InboundRequest) -> Reply:
        """Run one delivery through the pipeline and return the reply to send.

        Raises `UnknownAccount` when no account (or channel) answers; everything else becomes a reply.
        """
        account = self._accounts.get(account_name)
        if account is None or request.channel not in account.provider.channels:
            raise UnknownAccount(f"no account {account_name!r} with a {request.channel!r} channel")
        provider = account.provider
        is_return = request.channel == Source.RETURN

        try:
            result = provider.parse(request, account)
        except (MalformedNotification, VerificationError) as exc:
            exc.account = exc.account or account.name
            log.warning("refused %s notification: %s", provider.name, exc)
            return return_failure_reply() if is_return else provider.nack(exc)
        except Exception:
            log.exception("account %r: provider %s failed on a notification", account.name, provider.name)
            error = DeliveryFailed("internal error while parsing", account=account.name)
            return return_failure_reply(500) if is_return else provider.nack(error)
        if isinstance(result, UnhandledEvent):
            return await self._unhandled(result, provider)

        try:
            _check_ids(result, account)
            if self._checks:
                await self._run_check_hooks(result)
        except CheckFailed as exc:
            exc.account = exc.account or account.name
            log.warning("verified notification refused by a check (%s): %s", result.event_id, exc)
            if is_return:
                return return_failure_reply()
            await self._tell_rejected(result, exc)
            return provider.ack()
        except Exception:
            log.exception("account %r: a check hook failed on %s", account.name, result.event_id)
            return provider.nack(DeliveryFailed("check hook failed", account=account.name))

        if is_return:
            return await self._return_reply(result, account)
        if self.delivery == "queued":
            return await self._enqueue(result, provider)
        return await self._deliver(result, provider)

    async def _run_check_hooks(self, result: PaymentResult) -> None:
        for check in self._checks:
            if await call_maybe_async(check, result) is False:
                raise CheckFailed(f"refused by check {getattr(check, '__qualname__', check)!r}")

    async def _unhandled(self, event: UnhandledEvent, provider: Provider[Any]) -> Reply:
        log.info(
            "verified %s event %s (%s) on account %r is not a payment or refund; not dispatched",
            event.provider,
            event.event_type,
            event.event_id,
            event.account,
        )
        for hook in self._unhandled_hooks:
            try:
                await call_maybe_async(hook, event)
            except Exception:
                log.exception("unhandled-event hook %r failed; the provider will retry", hook)
                return provider.nack(DeliveryFailed("unhandled-event hook failed", account=event.account))
        return provider.ack()

    async def _tell_rejected(self, result: PaymentResult, error: NotificationError) -> None:
        for hook in self._rejected_hooks:
            try:
                await call_maybe_async(hook, result, error)
            except Exception:
                log.exception("rejected-hook %r failed", hook)

    async def _deliver(self, result: PaymentResult, provider: Provider[Any]) -> Reply:
        try:
            claim = await self.store.claim(result, lease_seconds=self.lease_seconds)
        except StoreError as exc:
            log.error("store unavailable, asking %s to retry %s: %s", provider.name, result.event_id, exc)
            return provider.nack(DeliveryFailed("store unavailable", account=result.account))
        if claim.state is ClaimState.DONE:
            log.info("duplicate of completed event %s (%s)", result.event_id, result.order_id)
            return provider.ack()
        if claim.state is ClaimState.IN_FLIGHT or claim.token is None:
            log.info("event %s is being handled by another delivery", result.event_id)
            return provider.nack(InFlight("event in flight, retry later", account=result.account))

        error = await self._run_subscribers(result, claim.token, claim.done_subscribers)
        if error is not None:
            await self._release(result.event_id, claim.token, error)
            # The provider sees only that delivery failed; the cause is in the log, not in its reply.
            return provider.nack(DeliveryFailed("delivery failed, retry later", account=result.account))
        try:
            await self.store.complete(result.event_id, claim.token)
        except StoreError as exc:
            # Subscribers ran but the record did not stick: asking for a retry risks a repeat,
            # acknowledging risks nothing being recorded. At-least-once wins.
            log.error("could not record event %s as done: %s", result.event_id, exc)
            await self._release(result.event_id, claim.token, "store unavailable")
            return provider.nack(DeliveryFailed("store unavailable", account=result.account))
        self._log_delivered(result)
        return provider.ack()

    async def _enqueue(self, result: PaymentResult, provider: Provider[Any]) -> Reply:
        try:
            new = await self.store.enqueue(result)
        except StoreError as exc:
            log.error("store unavailable, asking %s to retry %s: %s", provider.name, result.event_id, exc)
            return provider.nack(DeliveryFailed("store unavailable", account=result.account))
        if new:
            log.info("queued %s %s/%s order %s (%s)", result.provider, *_describe(result))
            self._wake.set()
        else:
            log.info("duplicate of recorded event %s (%s)", result.event_id, result.order_id)
        return provider.ack()

    def _log_delivered(self, result: PaymentResult) -> None:
        if not log.isEnabledFor(logging.INFO):  # the arguments cost more than the check
            return
        log.info(
            "delivered %s %s/%s order %s (%s), verified with key %s",
            result.provider,
            *_describe(result),
            result.key_id or "-",
        )

    async def _run_subscribers(self, result: PaymentResult, token: str, done: frozenset[str]) -> str | None:
        """Run every interested subscriber that has not succeeded on this event yet, in order.

        Returns None when all succeeded, else what failed. Each success but the last is recorded at
        once (the last is covered by `complete`), so a retry re-runs only the ones that failed.
        Raises `StoreError` if a success cannot be recorded.
        """
        todo = [s for s in self._subscribers if s.wants(result) and s.name not in done]
        for i, subscriber in enumerate(todo):
            try:
                await subscriber(result)
            except Exception as exc:
                log.exception("subscriber %s failed on event %s", subscriber.name, result.event_id)
                return f"{subscriber.name}: {type(exc).__name__}: {exc}"[:500]
            if i < len(todo) - 1:
                try:
                    await self.store.subscriber_done(result.event_id, token, subscriber.name)
                except StoreError as exc:
                    log.error("could not record %s as done on %s: %s", subscriber.name, result.event_id, exc)
                    return "store unavailable"
        return None

    async def deliver_lease(self, lease: Lease) -> None:
        """Deliver one event a dispatcher acquired: complete it, or retry later, or dead-letter it."""
        event = lease.event
        try:
            result = event.result()
        except StoreError as exc:
            log.error("%s; dead-lettering it", exc)
            await self.store.dead_letter(event.event_id, lease.token, error=str(exc)[:500])
            return
        error = await self._run_subscribers(result, lease.token, event.done_subscribers)
        if error is None:
            await self.store.complete(event.event_id, lease.token)
            self._log_delivered(result)
        elif event.attempts >= self.max_attempts:
            log.error("event %s failed %d times; dead-lettered: %s", event.event_id, event.attempts, error)
            await self.store.dead_letter(event.event_id, lease.token, error=error)
        else:
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (event.attempts - 1))
            log.warning(
                "event %s attempt %d failed, next in %.3g s: %s", event.event_id, event.attempts, delay, error
            )
            await self.store.reschedule(event.event_id, lease.token, at=time.time() + delay, error=error)
            # Wake this process's dispatcher when the retry is due rather than at its next poll.
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def redeliver(self, event_id: str, *, replay: bool = False) -> bool:
        """Deliver a recorded event again now, in this process (`paynotify events retry|replay`).

        A retry runs the subscribers that have not succeeded on it (a dead-lettered or released
        event); a replay runs every subscriber again, even on a completed event. Returns False when
        the event is unknown, in flight elsewhere, or (for a retry) already done.
        """
        if not await self.store.requeue(event_id, replay=replay):
            return False
        event = await self.store.get(event_id)
        if event is None:
            return False
        result = event.result()
        claim = await self.store.claim(result, lease_seconds=self.lease_seconds)
        if claim.state is not ClaimState.NEW or claim.token is None:
            return False
        error = await self._run_subscribers(result, claim.token, claim.done_subscribers)
        if error is not None:
            await self._release(event_id, claim.token, error)
            raise DeliveryFailed(f"event {event_id}: {error}", account=event.account)
        await self.store.complete(event_id, claim.token)
        self._log_delivered(result)
        return True

    async def purge(
        self, *, older_than_days: float | None = None, states: Iterable[EventState] = (EventState.DONE,)
    ) -> int:
        """Delete events in `states` (completed ones by default) older than the retention period."""
        days = self.retention_days if older_than_days is None else older_than_days
        return await self.store.purge(before=time.time() - days * 86400, states=states)

    async def _release(self, event_id: str, token: str, error: str) -> None:
        try:
            await self.store.release(event_id, token, error=error)
        except StoreError as exc:
            log.error("could not release event %s (its lease will expire): %s", event_id, exc)

    async def _return_reply(self, result: PaymentResult, account: Account[Any]) -> Reply:
        default = default_return_reply(result, account.settings.return_url)
        if self._return_handler is None:
            return default
        try:
            reply = await call_maybe_async(self._return_handler, result)
        except Exception:
            log.exception("return handler failed for order %s", result.order_id)
            return default
        if isinstance(reply, Reply):
            return reply
        if isinstance(reply, str):
            return Reply.redirect(reply)
        return default


def _check_ids(result: PaymentResult, account: Account[Any]) -> None:
    """The result names the app and merchant the account is configured with (CheckFailed if not)."""
    for field, expected in account.expected_ids:
        got = getattr(result, field)
        if got != expected:
            raise CheckFailed(f"{field} is {got!r}, this account expects {expected!r}")


def _describe(result: PaymentResult) -> tuple[str, str, str, str]:
    return result.kind.value, result.status.value, result.order_id, result.event_id
