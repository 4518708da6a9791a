"""The store contract: every verified event is recorded before the provider is acknowledged, and
each delivery holds a lease on it.

The contract has three parts, and each caller needs only its own:

- `DeliveryStore`, the request path: `claim`, `subscriber_done`, `complete`, `release`, and `record`
  for verified notifications that are not delivered (`rejected` by a check, `unhandled` types);
- `QueueStore`, queued delivery: `enqueue`, `acquire`, `reschedule`, `dead_letter`;
- `EventLog`, operations: `get`, `find`, `requeue`, `purge`, `count`.

`Store` is all three. Which state an operation may leave and enter is written once, in the table of
`transitions.py` (re-exported here as the sets the contract speaks of); the SQL and Lua of the
backends are rendered from it, and the conformance suite walks every row of it on every backend. A
lease that expires (its process died) is taken over by the next delivery of the event (inline) or by
any dispatcher (queued). Every method may raise `StoreError`;
none may lose a recorded event.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from paynotify._errors import StoreError
from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._stores.expectations import ExpectationStore
from paynotify._stores.history import Attempt, EventHistory
from paynotify._stores.reconciliations import ReconciliationStore
from paynotify._stores.transitions import (
    CLAIMABLE,
    LEASED,
    RECORDABLE,
    REPLAYABLE,
    RETAINED,
    RETRYABLE,
    EventState,
)

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
    "EventQuery",
    "EventState",
    "Lease",
    "QueueStore",
    "Store",
    "StoredEvent",
]


class ClaimState(StrEnum):
    NEW = "new"
    """The caller holds the claim and must dispatch, then complete or release."""
    DONE = "done"
    """The event was handled before: acknowledge, do not dispatch."""
    IN_FLIGHT = "in_flight"
    """Another delivery holds a live claim: tell the provider to retry."""


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


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events `find` and `purge` mean, as one value: every filter given must match."""

    account: str | None = None
    order_id: str | None = None
    states: frozenset[EventState] | None = None
    provider: str | None = None
    kind: str | None = None
    created_after: float | None = None
    """Inclusive."""
    created_before: float | None = None
    """Exclusive; with `before_event_id`, a position (see `EventLog.find`)."""
    before_event_id: str | None = None
    limit: int = 100
    search: str | None = None
    """One term that finds by order id prefix, transaction id, refund ids or event-id prefix
    (paynotify._stores.search); `find` and `select` only, blank: none."""

    def __post_init__(self) -> None:
        if self.before_event_id is not None and self.created_before is None:
            raise ValueError("find(before_event_id=...) needs created_before, the time of that event")

    def columns(self) -> dict[str, str | None]:
        """The equality filters by column name (None: any)."""
        return {"account": self.account, "order_id": self.order_id, "provider": self.provider,
                "kind": self.kind}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Lease:
    """An event a dispatcher acquired; `token` proves ownership until the lease runs out."""

    event: StoredEvent
    token: str


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
    async def complete(
        self, event_id: str, token: str, *, done: Sequence[str] = (), attempt: Attempt | None = None
    ) -> None:
        """Mark the event DONE for good (even if the lease was lost: the subscribers did run),
        recording the subscribers in `done` as succeeded in the same write.

        `attempt`, here and in the other writes that end a lease, is added to the event's history
        (`Store.history`) in the same write, with or without the lease."""

    @abstractmethod
    async def release(
        self, event_id: str, token: str, *, error: str | None = None, attempt: Attempt | None = None
    ) -> None:
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
    async def reschedule(
        self, event_id: str, token: str, *, at: float, error: str, attempt: Attempt | None = None
    ) -> None:
        """A queued attempt failed: PENDING again, due at `at`. Ignored without the lease."""

    @abstractmethod
    async def dead_letter(
        self, event_id: str, token: str, *, error: str, attempt: Attempt | None = None
    ) -> None:
        """Give up on the event (DEAD) after too many attempts. Ignored without the lease."""


class EventLog(ABC):
    """What operators read and change: the CLI, metrics, the console."""

    @property
    def history(self) -> EventHistory:
        """Each event's attempts and the operators' audit log, in this store."""
        raise NotImplementedError(f"{type(self).__name__} keeps no history")

    @abstractmethod
    async def get(self, event_id: str) -> StoredEvent | None:
        """The record of one event, or None."""

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
        search: str | None = None,
    ) -> list[StoredEvent]:
        """Events matching every given filter, newest first by (created_at, event_id); at most
        `limit` (>= 1).

        `created_after` is inclusive, `created_before` exclusive. With `before_event_id` as well,
        the bound is a position instead: events created before `created_before`, or at that very
        time with a smaller event_id. Passing the last event's (created_at, event_id) of one page
        gives the next page (keyset pagination: each page costs the same however deep it is).

        `search` finds by order id prefix, provider transaction id, merchant or provider refund id,
        or event-id prefix (at least 6 hex characters), through an index on every backend:

        >>> await store.find(search="4200001234")  # doctest: +SKIP
        """
        query = EventQuery(
            account=account,
            order_id=order_id,
            states=frozenset(states) if states is not None else None,
            provider=provider,
            kind=kind,
            created_after=created_after,
            created_before=created_before,
            before_event_id=before_event_id,
            limit=limit,
            search=search.strip() or None if search is not None else None,
        )
        return await self.select(query)

    @abstractmethod
    async def select(self, query: EventQuery) -> list[StoredEvent]:
        """`find`, for a backend: the events `query` matches, newest first, at most `query.limit`."""

    @abstractmethod
    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        """Make an event PENDING and due now, for a dispatcher or `Notifier.redeliver`.

        Without `replay`, RETRYABLE events (and expired leases) are requeued, a DEAD one with a
        fresh attempt budget; with `replay`, REPLAYABLE ones, and their subscriber records are
        cleared so every subscriber runs again. False when the event is unknown, leased, or not
        eligible.
        """

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

        Without the other filters this is the retention purge, run periodically: it must stay cheap;
        it also drops the audit entries older than `before` (an event's attempts go with the event).
        """
        if account is None and provider is None and order_id is None and created_after is None:
            with contextlib.suppress(NotImplementedError):  # a backend that keeps no history
                await self.history.forget_audit(before=before)
        query = EventQuery(
            account=account,
            order_id=order_id,
            states=frozenset(states),
            provider=provider,
            created_after=created_after,
        )
        return await self.delete(query, before=before)

    @abstractmethod
    async def delete(self, query: EventQuery, *, before: float) -> int:
        """`purge`, for a backend: `query.states` (never None here), `account`, `provider`,
        `order_id` and `created_after` apply; the rest are unset."""

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

    @property
    def expectations(self) -> ExpectationStore:
        """The payments and refunds awaited (`Notifier.expect`, the sweeper), in this store."""
        raise NotImplementedError(f"{type(self).__name__} keeps no expectations")

    @property
    def reconciliations(self) -> ReconciliationStore:
        """The reconciliation reports and their leases (`Notifier.reconcile`), in this store."""
        raise NotImplementedError(f"{type(self).__name__} keeps no reconciliation reports")
