"""The store contract: every verified event is recorded before it is dispatched, and each delivery
holds a lease on it.

Inline delivery (the default) calls `claim`, runs the subscribers, records each one that succeeded
with `subscriber_done`, then `complete`s (or `release`s after a failure, so the provider's retry
runs the remaining subscribers). Queued delivery calls `enqueue` and acknowledges at once; dispatchers
`acquire` due events and `complete`, `reschedule` or `dead_letter` them.

A lease that expires (its process died) is taken over: by the next delivery of the event (inline)
or by any dispatcher (queued). Every method may raise `StoreError`; none may lose a recorded event.
"""

from __future__ import annotations

import importlib
import itertools
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from paynotify._errors import ConfigurationError, StoreError
from paynotify._result import PaymentResult

__all__ = [
    "Claim",
    "ClaimState",
    "EventState",
    "Lease",
    "Store",
    "StoredEvent",
    "new_token",
    "open_store",
    "store_schemes",
]


class ClaimState(StrEnum):
    NEW = "new"
    """The caller holds the claim and must dispatch, then complete or release."""
    DONE = "done"
    """The event was handled before: acknowledge, do not dispatch."""
    IN_FLIGHT = "in_flight"
    """Another delivery holds a live claim: tell the provider to retry."""


class EventState(StrEnum):
    PENDING = "pending"
    """Recorded and waiting for a dispatcher (queued delivery, or a retry/replay) once it is due."""
    IN_FLIGHT = "in_flight"
    """A delivery holds the lease."""
    RELEASED = "released"
    """An inline delivery failed; the provider's retry (or `paynotify events retry`) runs it again."""
    DONE = "done"
    """Every subscriber succeeded."""
    DEAD = "dead"
    """Queued delivery gave up after `max_attempts`; `paynotify events retry` (or a new copy from
    the provider, handled inline) revives it."""


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    token: str | None = None
    """Proof of ownership, set when `state` is NEW; later calls about the event take it."""
    done_subscribers: frozenset[str] = frozenset()
    """Subscribers that already succeeded on an earlier attempt: they are not run again."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    account: str
    provider: str
    kind: str
    status: str
    order_id: str
    state: EventState
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    last_error: str | None
    done_subscribers: frozenset[str]
    result_json: str

    def result(self) -> PaymentResult:
        """The recorded `PaymentResult`; a row that does not parse raises `StoreError`."""
        try:
            return PaymentResult.model_validate_json(self.result_json)
        except ValidationError as exc:
            raise StoreError(f"stored event {self.event_id} is malformed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Lease:
    """An event a dispatcher acquired; `token` proves ownership until the lease runs out."""

    event: StoredEvent
    token: str


class _Tokens:
    """Lease tokens: a random per-process prefix and a counter.

    A token only has to differ from every other lease's token (it proves which claim a later call
    belongs to, between cooperating processes), so one random draw per process is enough; a fresh
    draw per claim cost a system call on every notification. A forked child draws its own prefix.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(12)
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


new_token = _Tokens()


def now() -> float:
    return time.time()


def event_fields(result: PaymentResult) -> tuple[str, str, str, str, str, str, str]:
    """The columns every backend stores for a result, in one place."""
    return (
        result.event_id,
        result.account,
        result.provider,
        result.kind.value,
        result.status.value,
        result.order_id,
        result.model_dump_json(),
    )


class Store(ABC):
    """Deduplication, delivery records and the queued inbox. Every method may raise `StoreError`.

    Times are Unix seconds from the calling process's clock: hosts sharing a store need NTP.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema. Idempotent; stores also open lazily."""

    async def close(self) -> None:
        """Release connections."""

    # -- inline delivery -----------------------------------------------------------------------

    @abstractmethod
    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        """Atomically record `result` and take its lease, unless it is DONE or leased by someone else.

        PENDING, RELEASED, DEAD and expired IN_FLIGHT events are taken over; `attempts` grows by one.
        """

    @abstractmethod
    async def subscriber_done(self, event_id: str, token: str, subscriber: str) -> None:
        """Record that `subscriber` succeeded on this event, so no later attempt runs it again.

        Recorded even without the lease: the subscriber's side effect happened either way.
        """

    @abstractmethod
    async def complete(self, event_id: str, token: str) -> None:
        """Mark the event DONE for good (even if the lease was lost: the subscribers did run)."""

    @abstractmethod
    async def release(self, event_id: str, token: str, *, error: str | None = None) -> None:
        """Give the lease back after a failed inline dispatch (RELEASED); ignored without the lease."""

    # -- queued delivery -----------------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, result: PaymentResult) -> bool:
        """Durably record `result` as PENDING, due now. False if the event was already recorded
        (in any state): the caller acknowledges either way, nothing changes."""

    @abstractmethod
    async def acquire(self, *, limit: int, lease_seconds: float) -> list[Lease]:
        """Lease up to `limit` due events: PENDING ones whose time has come and IN_FLIGHT ones whose
        lease expired, oldest due first. Safe to call from many processes at once: each event goes
        to one caller."""

    @abstractmethod
    async def reschedule(self, event_id: str, token: str, *, at: float, error: str) -> None:
        """A queued attempt failed: PENDING again, due at `at`. Ignored without the lease."""

    @abstractmethod
    async def dead_letter(self, event_id: str, token: str, *, error: str) -> None:
        """Give up on the event (DEAD) after too many attempts. Ignored without the lease."""

    # -- operations ----------------------------------------------------------------------------

    @abstractmethod
    async def get(self, event_id: str) -> StoredEvent | None:
        """The record of one event, or None."""

    @abstractmethod
    async def find(
        self,
        *,
        account: str | None = None,
        order_id: str | None = None,
        states: Iterable[EventState] | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events matching every given filter, most recently created first."""

    @abstractmethod
    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        """Make an event PENDING and due now, for a dispatcher or `Notifier.redeliver`.

        Without `replay`, only RELEASED, PENDING, DEAD or lease-expired IN_FLIGHT events are
        requeued (a retry); with
        `replay`, DONE events are too, and their subscriber records are cleared so every
        subscriber runs again. False when the event is unknown, leased, or not eligible.
        """

    @abstractmethod
    async def purge(self, *, before: float, states: Iterable[EventState] = (EventState.DONE,)) -> int:
        """Delete events in `states` last updated before `before`; returns how many."""


StoreFactory = Callable[[str], Store]
_SCHEMES: dict[str, StoreFactory] = {}


def _optional(module: str, cls: str, extra: str) -> StoreFactory:
    """A factory that imports a backend (and its driver) only when a URL asks for it."""

    def factory(url: str) -> Store:
        try:
            backend: StoreFactory = getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            raise ConfigurationError(
                f"store URL {url.partition('://')[0]}://... needs the {exc.name} package: "
                f"pip install 'paynotify[{extra}]'"
            ) from None
        return backend(url)

    return factory


_SCHEMES["postgresql"] = _SCHEMES["postgres"] = _optional(
    "paynotify._store_postgres", "PostgresStore", "postgresql"
)
_SCHEMES["redis"] = _SCHEMES["rediss"] = _optional("paynotify._store_redis", "RedisStore", "redis")


def store_schemes() -> dict[str, StoreFactory]:
    """URL schemes understood by `open_store`; extend it to add a store backend."""
    return _SCHEMES


def open_store(url: str) -> Store:
    """A store from a URL: `memory://`, `sqlite:///relative.db`, `sqlite:////absolute.db`,
    `postgresql://user@host/db`, `redis://host:6379/0`."""
    scheme, sep, _ = url.partition("://")
    factory = _SCHEMES.get(scheme) if sep else None
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ConfigurationError(f"unknown store URL {url!r}; use one of: {known}")
    return factory(url)
