"""The store contract: every verified event is recorded before the provider is acknowledged, and
each delivery holds a lease on it.

The contract has three parts, and each caller needs only its own:

- `DeliveryStore`, the request path: `claim`, `subscriber_done`, `complete`, `release`, and `record`
  for verified notifications that are not delivered (`rejected` by a check, `unhandled` types);
- `QueueStore`, queued delivery: `enqueue`, `acquire`, `reschedule`, `dead_letter`;
- `EventLog`, operations: `get`, `find`, `requeue`, `purge`, `count`.

`Store` is all three. Which state an operation may leave and enter is written once, in the table
below; the SQL and Lua of the backends are generated from it, and the conformance suite walks every
row of it on every backend. A lease that expires (its process died) is taken over by the next
delivery of the event (inline) or by any dispatcher (queued). Every method may raise `StoreError`;
none may lose a recorded event.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from paynotify._errors import ConfigurationError, StoreError, UnstorableContent
from paynotify._result import PaymentResult, UnhandledEvent

__all__ = [
    "CLAIMABLE",
    "LEASED",
    "RECORDABLE",
    "REPLAYABLE",
    "RETAINED",
    "RETRYABLE",
    "Claim",
    "ClaimState",
    "DeliveryStore",
    "EventLog",
    "EventState",
    "Lease",
    "QueueStore",
    "Store",
    "StoredEvent",
    "check_position",
    "event_fields",
    "in_window",
    "keyset_window",
    "lua_set",
    "new_token",
    "newest_first",
    "open_store",
    "sql_filters",
    "sql_in",
    "store_schemes",
    "stored_event",
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
    """An inline delivery failed; the provider's resend (or `paynotify events retry`) runs it again."""
    DONE = "done"
    """Every subscriber succeeded."""
    DEAD = "dead"
    """Queued delivery gave up after `max_attempts`; `paynotify events retry` (or a new copy from
    the provider, handled inline) revives it with a fresh attempt budget."""
    REJECTED = "rejected"
    """Verified, but refused by an account check or a check hook; the reason is `last_error`.
    `paynotify events replay` re-runs the checks with the current settings and delivers it."""
    UNHANDLED = "unhandled"
    """Verified, but not a payment, refund or transfer; offered to unhandled-hooks, kept for the record."""


# The transition table. A lease is live while `lease_until` is in the future; an IN_FLIGHT event
# whose lease ran out is taken like a source state by `claim`, `acquire` and `requeue`.
CLAIMABLE = frozenset({EventState.PENDING, EventState.RELEASED, EventState.DEAD, EventState.REJECTED})
"""`claim` takes these (and an expired lease) to IN_FLIGHT; DONE answers DONE, a live lease IN_FLIGHT.
REJECTED is claimable because the pipeline claims only after the checks passed: a resend after the
account was fixed is delivered."""
RETRYABLE = frozenset({EventState.PENDING, EventState.RELEASED, EventState.DEAD})
"""`requeue` takes these (and an expired lease) to PENDING, due now; from DEAD with attempts reset."""
REPLAYABLE = RETRYABLE | {EventState.DONE, EventState.REJECTED}
"""`requeue(replay=True)` takes these to PENDING and forgets which subscribers ran. The pipeline
re-runs a rejected event's checks before it asks."""
LEASED = frozenset({EventState.IN_FLIGHT})
"""`release` (-> RELEASED), `reschedule` (-> PENDING) and `dead_letter` (-> DEAD) leave only these,
and only with the lease's token; `complete` (-> DONE) leaves any state but DONE."""
RECORDABLE = {EventState.REJECTED: frozenset({EventState.REJECTED}), EventState.UNHANDLED: frozenset()}
"""`record(entry, state)` writes a new event in `state`, or overwrites an existing one only in these
states (a rejected event refused again gets the new reason); anything else is left as it is."""
RETAINED = (EventState.DONE, EventState.REJECTED, EventState.UNHANDLED)
"""What the retention purge deletes once older than `retention_days`."""


def check_position(created_before: float | None, before_event_id: str | None) -> None:
    """A `find` cursor's event id means nothing without its time."""
    if before_event_id is not None and created_before is None:
        raise ValueError("find(before_event_id=...) needs created_before, the time of that event")


def in_window(
    created_at: float,
    event_id: str,
    created_after: float | None,
    created_before: float | None,
    before_event_id: str | None,
) -> bool:
    """Whether an event lies in `find`'s time window (for the backends that filter in Python)."""
    if created_after is not None and created_at < created_after:
        return False
    if created_before is None or created_at < created_before:
        return True
    return before_event_id is not None and created_at == created_before and event_id < before_event_id


def newest_first(event: StoredEvent) -> tuple[float, str]:
    """`find`'s order, descending: creation time, ties broken by event id."""
    return (event.created_at, event.event_id)


def keyset_window(
    created_after: float | None,
    created_before: float | None,
    before_event_id: str | None,
    *,
    event_id: str = "event_id",
) -> tuple[list[str], list[object]]:
    """`find`'s time window as SQL conditions with `?` placeholders, and their parameters.

    The position is written `created_at <= t AND (created_at < t OR event_id < id)` rather than as
    one OR, so the planner still sees a range on the created_at indexes and reads them in order.
    """
    where: list[str] = []
    params: list[object] = []
    if created_after is not None:
        where.append("created_at >= ?")
        params.append(created_after)
    if created_before is not None and before_event_id is not None:
        where.append(f"created_at <= ? AND (created_at < ? OR {event_id} < ?)")
        params += [created_before, created_before, before_event_id]
    elif created_before is not None:
        where.append("created_at < ?")
        params.append(created_before)
    return where, params


def sql_filters(
    columns: Mapping[str, str | None],
    created_after: float | None,
    created_before: float | None = None,
    before_event_id: str | None = None,
    *,
    event_id: str = "event_id",
) -> tuple[list[str], list[object]]:
    """`find`'s and `purge`'s filters as SQL conditions with `?` placeholders, and their parameters:
    `column = ?` for each column given a value (None: any), then the time window (`keyset_window`).
    """
    where = [f"{column} = ?" for column, value in columns.items() if value is not None]
    params: list[object] = [value for value in columns.values() if value is not None]
    where_time, time_params = keyset_window(created_after, created_before, before_event_id, event_id=event_id)
    return where + where_time, params + time_params


def sql_in(states: Iterable[EventState]) -> str:
    """The states as an SQL IN-list body: `'pending', 'released'` (sorted, constant text)."""
    return ", ".join(f"'{s.value}'" for s in sorted(states))


def lua_set(states: Iterable[EventState]) -> str:
    """The states as a Lua table used as a set: `{pending=true, released=true}`."""
    return "{" + ", ".join(f"{s.value}=true" for s in sorted(states)) + "}"


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    token: str | None = None
    """Proof of ownership, set when `state` is NEW; later calls about the event take it."""
    done_subscribers: frozenset[str] = frozenset()
    """Subscribers that already succeeded on an earlier attempt: they are not run again."""
    attempts: int = 1
    """Attempts at delivering the event, this one included (queued retries back off by it)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    account: str
    provider: str
    kind: str
    """`payment`, `refund`, `transfer`; `unhandled` for an unhandled event (its type is in `status`)."""
    status: str
    order_id: str
    state: EventState
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    last_error: str | None
    """Why the last attempt failed, or why the event was rejected."""
    done_subscribers: frozenset[str]
    result_json: str

    def result(self) -> PaymentResult:
        """The recorded `PaymentResult`; a row that does not parse raises `StoreError`."""
        try:
            return PaymentResult.model_validate_json(self.result_json)
        except ValidationError as exc:
            raise StoreError(f"stored event {self.event_id} is malformed: {exc}") from exc

    def unhandled(self) -> UnhandledEvent:
        """The recorded `UnhandledEvent` of an UNHANDLED event (`StoreError` for any other)."""
        try:
            return UnhandledEvent.model_validate_json(self.result_json)
        except ValidationError as exc:
            raise StoreError(f"stored event {self.event_id} is not an unhandled event: {exc}") from exc


_FLOATS = ("created_at", "updated_at")


def stored_event(row: Mapping[str, Any]) -> StoredEvent:
    """The one row mapper: a backend's row (by column name) as a `StoredEvent`.

    `done_subscribers` may be a JSON array text or a sequence; numbers may be text (Redis).
    Anything that does not fit raises `StoreError` naming the event.
    """
    event_id = row.get("event_id")
    try:
        done = row["done_subscribers"]
        at = row.get("next_attempt_at")
        return StoredEvent(
            event_id=row["event_id"],
            account=row["account"],
            provider=row["provider"],
            kind=row["kind"],
            status=row["status"],
            order_id=row["order_id"],
            state=EventState(row["state"]),
            attempts=int(row["attempts"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            next_attempt_at=float(at) if at not in (None, "") else None,
            last_error=row.get("last_error") or None,
            done_subscribers=frozenset(json.loads(done) if isinstance(done, str) else done or ()),
            result_json=row["result_json"],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"stored event {event_id} is malformed: {exc!r}") from exc


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


def event_fields(entry: PaymentResult | UnhandledEvent) -> tuple[str, str, str, str, str, str, str]:
    """The columns every backend stores for an entry, in one place: event_id, account, provider,
    kind, status, order_id, JSON.

    A result that cannot be serialised (a lone surrogate in a verified field) raises
    `UnstorableContent`.
    """
    try:
        text = entry.model_dump_json()
    except (PydanticSerializationError, ValueError) as exc:
        raise UnstorableContent(f"event {entry.event_id} cannot be stored: {exc}") from exc
    if isinstance(entry, UnhandledEvent):
        return (entry.event_id, entry.account, entry.provider, "unhandled", entry.event_type, "", text)
    return (
        entry.event_id,
        entry.account,
        entry.provider,
        entry.kind._value_,
        entry.status._value_,
        entry.order_id,
        text,
    )


class DeliveryStore(ABC):
    """The request path: record, claim, mark subscribers, complete or release."""

    async def open(self) -> None:
        """Connect and create or migrate the schema. Idempotent; stores also open lazily."""

    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        """Atomically record `result` and take its lease, unless it is DONE or leased by someone else.

        CLAIMABLE events and expired IN_FLIGHT ones are taken over; `attempts` grows by one.
        """

    @abstractmethod
    async def subscriber_done(self, event_id: str, token: str, subscriber: str) -> None:
        """Record that `subscriber` succeeded on this event, so no later attempt runs it again.

        Recorded even without the lease: the subscriber's side effect happened either way.
        """

    @abstractmethod
    async def complete(self, event_id: str, token: str, *, done: Sequence[str] = ()) -> None:
        """Mark the event DONE for good (even if the lease was lost: the subscribers did run),
        recording the subscribers in `done` as succeeded in the same write."""

    @abstractmethod
    async def release(self, event_id: str, token: str, *, error: str | None = None) -> None:
        """Give the lease back after a failed inline dispatch (RELEASED); ignored without the lease."""

    @abstractmethod
    async def record(
        self, entry: PaymentResult | UnhandledEvent, state: EventState, *, reason: str | None
    ) -> bool:
        """Record a verified notification that is not delivered: REJECTED (with its reason) or
        UNHANDLED. True if written, False if the event already exists in a state RECORDABLE does
        not let this overwrite (e.g. it was delivered before a setting changed)."""


class QueueStore(ABC):
    """Queued delivery: the inbox and the dispatchers' leases."""

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


class EventLog(ABC):
    """What operators read and change: the CLI, metrics, the console."""

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
        provider: str | None = None,
        kind: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        before_event_id: str | None = None,
    ) -> list[StoredEvent]:
        """Events matching every given filter, newest first by (created_at, event_id); at most
        `limit` (>= 1).

        `created_after` is inclusive, `created_before` exclusive. With `before_event_id` as well,
        the bound is a position instead: events created before `created_before`, or at that very
        time with a smaller event_id. Passing the last event's (created_at, event_id) of one page
        gives the next page (keyset pagination: each page costs the same however deep it is).
        """

    @abstractmethod
    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        """Make an event PENDING and due now, for a dispatcher or `Notifier.redeliver`.

        Without `replay`, RETRYABLE events (and expired leases) are requeued, a DEAD one with a
        fresh attempt budget; with `replay`, REPLAYABLE ones, and their subscriber records are
        cleared so every subscriber runs again. False when the event is unknown, leased, or not
        eligible.
        """

    @abstractmethod
    async def purge(
        self,
        *,
        before: float,
        states: Iterable[EventState] = RETAINED,
        account: str | None = None,
        provider: str | None = None,
        order_id: str | None = None,
        created_after: float | None = None,
    ) -> int:
        """Delete events in `states` last updated before `before` (exclusive) that match every other
        filter given, as `find` matches them (`created_after` inclusive); returns how many.

        Without the other filters this is the retention purge, run periodically: it must stay cheap.
        """

    @abstractmethod
    async def count(self) -> dict[EventState, int]:
        """How many events are in each state (states with none may be left out)."""

    @abstractmethod
    async def oldest_due(self) -> float | None:
        """When the longest-waiting PENDING event became due (queued delivery's lag), or None."""


class Store(DeliveryStore, QueueStore, EventLog):
    """Deduplication, delivery records, the queued inbox and the event log.

    Times are Unix seconds from the calling process's clock: hosts sharing a store need NTP.
    """


StoreFactory = Callable[[str], Store]


def _backend(module: str, cls: str, extra: str | None = None) -> StoreFactory:
    """A factory that imports a backend (and its driver) only when a URL asks for it."""

    def factory(url: str) -> Store:
        try:
            backend: StoreFactory = getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            if extra is None:
                raise
            raise ConfigurationError(
                f"store URL {url.partition('://')[0]}://... needs the {exc.name} package: "
                f"pip install 'paynotify[{extra}]'"
            ) from None
        return backend(url)

    return factory


_SCHEMES: dict[str, StoreFactory] = {
    "memory": _backend("paynotify._stores.memory", "MemoryStore"),
    "sqlite": _backend("paynotify._stores.sqlite", "SQLiteStore"),
    "postgresql": _backend("paynotify._stores.postgresql", "PostgresStore", "postgresql"),
    "postgres": _backend("paynotify._stores.postgresql", "PostgresStore", "postgresql"),
    "redis": _backend("paynotify._stores.redis", "RedisStore", "redis"),
    "rediss": _backend("paynotify._stores.redis", "RedisStore", "redis"),
}


def store_schemes() -> dict[str, StoreFactory]:
    """URL schemes understood by `open_store`; add one to plug in a store backend."""
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
