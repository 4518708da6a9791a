"""Subscribers and hooks: sync or async callables, called the same way.

A sync callable runs in a worker thread so it cannot stall the event loop. Subscribers receive
each delivered `PaymentResult`; hooks see what is not delivered (checks, rejections, unhandled
events) and the sync return.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread

from paynotify._errors import CheckFailed, ConfigurationError, NotificationError, StoreError
from paynotify._http import Reply
from paynotify._observe import Observer
from paynotify._result import Kind, PaymentResult, Status, UnhandledEvent
from paynotify._stores.base import DeliveryStore

__all__ = [
    "CheckHook",
    "Refused",
    "RejectedHook",
    "ReturnHandler",
    "Subscriber",
    "SubscriberFn",
    "Subscribers",
    "UnhandledHook",
    "call_maybe_async",
    "default_name",
    "for_account",
    "normalize_filter",
]

log = logging.getLogger("paynotify")

E = TypeVar("E", Kind, Status)

SubscriberFn = Callable[[PaymentResult], Any]


@dataclass(frozen=True, slots=True)
class Refused:
    """What a check hook returns to refuse a notification with a reason:
    `return Refused("amount 0.01 is not the order's 88.88")`. Falsy, like the plain False it
    stands for; recorded as "refused by check 'NAME': REASON"."""

    reason: str

    def __bool__(self) -> bool:
        return False


CheckHook = Callable[[PaymentResult], "bool | Refused | Awaitable[bool | Refused | None] | None"]
"""Return False or `Refused(reason)` (or raise `CheckFailed(reason)`) to refuse a verified notification."""
RejectedHook = Callable[[PaymentResult, NotificationError], "Awaitable[None] | None"]
UnhandledHook = Callable[[UnhandledEvent], "Awaitable[None] | None"]
ReturnHandler = Callable[[PaymentResult], "Reply | str | Awaitable[Reply | str | None] | None"]

_ERROR_LENGTH = 500


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an async callable; run a sync one in a worker thread so it cannot stall the event loop."""
    if is_async_callable(fn):
        return await fn(*args)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def for_account(hook: Callable[..., Any], account: str) -> Callable[..., Any]:
    """`hook` for one account's notifications only (an `[accounts.NAME]` table's hooks): called
    when its first argument (a PaymentResult, an UnhandledEvent) is that account's; None otherwise,
    which a check takes as a pass. Named as `hook` is, so a refusal names the hook itself."""

    @functools.wraps(hook)
    async def scoped(first: PaymentResult | UnhandledEvent, *rest: Any) -> Any:
        if first.account != account:
            return None
        return await call_maybe_async(hook, first, *rest)

    return scoped


def is_async_callable(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def normalize_filter(value: E | str | Iterable[E | str] | None, enum: type[E]) -> frozenset[E] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str | enum) else list(value)
    try:
        return frozenset(enum(v) for v in items)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"unknown {enum.__name__.lower()} in {value!r}; use: {allowed}") from None


def default_name(fn: Callable[..., Any]) -> str:
    """A name that stays the same across restarts and processes: the store records, per event,
    which subscribers (by name) already succeeded. An object may give its own `name`."""
    own = getattr(fn, "name", None)
    if isinstance(own, str) and own and not inspect.isroutine(fn):
        return own
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


@dataclass(frozen=True, slots=True)
class Subscriber:
    fn: SubscriberFn
    name: str
    kinds: frozenset[Kind] | None = None
    statuses: frozenset[Status] | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # Decided once: inspecting the callable on every notification costs more than calling it.
        object.__setattr__(self, "is_async", is_async_callable(self.fn))

    def __call__(self, result: PaymentResult) -> Awaitable[Any]:
        """The call to await: the subscriber's own coroutine, or a sync one's run in a worker thread."""
        if self.is_async:
            return self.fn(result)  # type: ignore[no-any-return]
        return anyio.to_thread.run_sync(self.fn, result)

    def wants(self, result: PaymentResult) -> bool:
        return (self.kinds is None or result.kind in self.kinds) and (
            self.statuses is None or result.status in self.statuses
        )


class Subscribers:
    """Every subscriber and hook of one Notifier."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.checks: list[CheckHook] = []
        self.rejected_hooks: list[RejectedHook] = []
        self.unhandled_hooks: list[UnhandledHook] = []
        self.return_handler: ReturnHandler | None = None

    def add(
        self,
        fn: SubscriberFn,
        *,
        kinds: frozenset[Kind] | None,
        statuses: frozenset[Status] | None,
        name: str | None,
    ) -> None:
        subscriber_name = name or default_name(fn)
        if any(s.name == subscriber_name for s in self.subscribers):
            raise ConfigurationError(
                f"a subscriber named {subscriber_name!r} is already registered; pass name=... "
                "to tell them apart (the store records success per subscriber name)"
            )
        self.subscribers.append(Subscriber(fn, subscriber_name, kinds, statuses))

    async def run(
        self,
        result: PaymentResult,
        token: str,
        done: frozenset[str],
        store: DeliveryStore,
        observer: Observer | None = None,
    ) -> tuple[str | None, Sequence[str]]:
        """Run, in order, every interested subscriber that has not succeeded on this event yet.

        Returns (None, names) when all succeeded, where `names` are successes not yet recorded
        (the caller records them with `complete`, in the same write); else (what failed, ()). Each
        success before the last is recorded at once, so a retry re-runs only the ones that failed.
        """
        todo = [s for s in self.subscribers if s.name not in done and s.wants(result)]
        last = len(todo) - 1
        for i, subscriber in enumerate(todo):
            # Timed here, not in a wrapper coroutine: that would cost more than the timing.
            started = time.perf_counter() if observer is not None else 0.0
            try:
                if observer is None or not observer.tracing:
                    await subscriber(result)
                else:  # its own spans and outgoing calls join the trace under this stage
                    with observer.stage("paynotify.subscriber", {"paynotify.subscriber": subscriber.name}):
                        await subscriber(result)
            except Exception as exc:
                if observer is not None:
                    observer.subscriber(subscriber.name, time.perf_counter() - started, failed=True)
                log.exception("subscriber %s failed on event %s", subscriber.name, result.event_id,
                              extra={"event_id": result.event_id, "account": result.account,
                                     "provider": result.provider, "outcome": "delivery_failed",
                                     "cause": f"{subscriber.name}: {type(exc).__name__}"})  # fmt: skip
                return f"{subscriber.name}: {type(exc).__name__}: {exc}"[:_ERROR_LENGTH], ()
            if observer is not None:
                observer.subscriber(subscriber.name, time.perf_counter() - started, failed=False)
            if i == last:
                return None, (subscriber.name,)
            try:
                await store.subscriber_done(result.event_id, token, subscriber.name)
            except StoreError as exc:
                log.error("could not record %s as done on %s: %s", subscriber.name, result.event_id, exc)
                return "store unavailable", ()
        return None, ()

    async def refusal(self, result: PaymentResult) -> CheckFailed | None:
        """The first check hook's refusal, or None. A hook that raises anything but `CheckFailed`
        propagates: a temporary failure, not a verdict."""
        for check in self.checks:
            refused = f"refused by check {getattr(check, '__qualname__', check)!r}"
            try:
                verdict = await call_maybe_async(check, result)
            except CheckFailed as exc:
                return CheckFailed(f"{refused}: {exc.message}"[:_ERROR_LENGTH], account=exc.account)
            if isinstance(verdict, Refused):
                return CheckFailed(f"{refused}: {verdict.reason}"[:_ERROR_LENGTH])
            if verdict is False:
                return CheckFailed(refused)
        return None

    async def tell_rejected(self, result: PaymentResult, error: NotificationError) -> None:
        for hook in self.rejected_hooks:
            try:
                await call_maybe_async(hook, result, error)
            except Exception:
                log.exception("rejected-hook %r failed", hook)

    async def tell_unhandled(self, event: UnhandledEvent) -> bool:
        """Offer the event to every unhandled-hook; False if one raised (the provider retries)."""
        for hook in self.unhandled_hooks:
            try:
                await call_maybe_async(hook, event)
            except Exception:
                log.exception("unhandled-event hook %r failed; the provider will retry", hook)
                return False
        return True

    async def open(self) -> None:
        """Open every subscriber that has an async `open()` (a publisher's connection)."""
        for subscriber in self.subscribers:
            opener = getattr(subscriber.fn, "open", None)
            if opener is not None and is_async_callable(opener):
                try:
                    await opener()
                except Exception:
                    # Not fatal: the subscriber connects on its first call, and until then each
                    # failing call is a failed delivery the provider's resend (or the queue) retries.
                    log.exception(
                        "subscriber %s could not open; it will try again when called", subscriber.name
                    )

    async def aclose(self) -> None:
        for subscriber in self.subscribers:
            closer = getattr(subscriber.fn, "aclose", None)
            if closer is not None and is_async_callable(closer):
                try:
                    await closer()
                except Exception:
                    log.exception("subscriber %s failed to close", subscriber.name)
