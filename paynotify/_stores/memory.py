"""A store in a dict: for tests and single-process experiments; it forgets everything on exit."""

from __future__ import annotations

import heapq
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paynotify._result import Kind, PaymentResult, Source, Status, UnhandledEvent
from paynotify._stores.base import (
    RECORDABLE,
    RETAINED,
    Claim,
    ClaimState,
    EventQuery,
    EventState,
    Lease,
    Store,
    StoredEvent,
)
from paynotify._stores.expectations import ExpectationStore, MemoryExpectations
from paynotify._stores.filters import in_window
from paynotify._stores.history import Attempt, EventHistory, MemoryHistory
from paynotify._stores.memory_search import SearchIndex
from paynotify._stores.reconciliations import MemoryReconciliations, ReconciliationStore
from paynotify._stores.rows import event_fields
from paynotify._stores.search import ID_FIELDS, Search
from paynotify._stores.tokens import new_token, now
from paynotify._stores.transitions import (
    CLAIM,
    COMPLETE,
    DEAD_LETTER,
    RELEASE,
    REPLAY,
    RESCHEDULE,
    RETRY,
    Transition,
)

__all__ = ["MemoryStore"]

_NONE_DONE: frozenset[str] = frozenset()
_DONE = EventState.DONE._value_
_Frozen = tuple[Any, ...]
"""A completed `_Record`'s values, in its field order, `result` and lease omitted, state as text."""


_FIELDS = tuple(PaymentResult.model_fields)
_FIELD_VALUES = operator.itemgetter(*_FIELDS)
_ENUM_INDEXES = tuple(
    i
    for i, field in enumerate(PaymentResult.model_fields.values())
    if field.annotation in (Kind, Status, Source)
)
_RAW_INDEX = _FIELDS.index("raw")
_ID_INDEXES = tuple(_FIELDS.index(name) for name in ID_FIELDS)


@dataclass(slots=True)
class _Record:
    """One event, mutable in place; a `StoredEvent` is only built when someone reads it.

    While the event is in flight the result is kept as the object; once it settles, its field
    values are kept in one flat tuple (`packed`, in `_FIELDS` order; `raw` as one tuple of its keys
    then its values). Under uvicorn, keeping every result object (two dicts and a set each) alive
    made full collections cost throughput and 100 ms pauses (docs/benchmarks.md). Two tuples per
    event rather than a pair per field: every container kept counts towards the next collection.
    """

    columns: tuple[str, str, str, str, str, str]
    """event_id, account, provider, kind, status, order_id."""
    result: PaymentResult | UnhandledEvent | None
    state: EventState
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None = None
    last_error: str | None = None
    token: str | None = None
    lease_until: float = 0.0
    done: tuple[str, ...] = ()
    packed: tuple[Any, ...] = ()

    def unpacked(self) -> PaymentResult | UnhandledEvent:
        if self.result is not None:
            return self.result
        values = dict(zip(_FIELDS, self.packed, strict=True))
        raw = values["raw"]
        half = len(raw) // 2
        values["raw"] = dict(zip(raw[:half], raw[half:], strict=True))
        return PaymentResult.model_validate(values)

    def pack(self) -> None:
        if isinstance(self.result, PaymentResult):
            values = list(_FIELD_VALUES(self.result.__dict__))
            # Enum members are objects the collector tracks; their values are plain strings.
            for i in _ENUM_INDEXES:
                values[i] = values[i]._value_
            raw = values[_RAW_INDEX]
            values[_RAW_INDEX] = (*raw, *raw.values())
            self.packed = tuple(values)
            self.result = None

    def snapshot(self) -> StoredEvent:
        return StoredEvent(
            *self.columns,
            self.state,
            self.attempts,
            self.created_at,
            self.updated_at,
            self.next_attempt_at,
            self.last_error,
            frozenset(self.done),
            self.unpacked().model_dump_json(),
        )

    def takeable(self, transition: Transition, t: float, token: str | None = None) -> bool:
        """Whether `transition` may take this record now (with `token`, where it needs the lease's)."""
        if transition.needs_token and self.token != token:
            return False
        return transition.allows(self.state, lease_expired=self.lease_until <= t)

    def lease(self, t: float) -> None:
        self.state, self.attempts, self.next_attempt_at, self.updated_at = (
            EventState.IN_FLIGHT,
            self.attempts + 1,
            None,
            t,
        )

    def settle(self, state: EventState, *, next_attempt_at: float | None = None, error: str | None) -> None:
        """Leave IN_FLIGHT: the lease's token no longer counts."""
        self.state, self.next_attempt_at, self.last_error = state, next_attempt_at, error
        self.updated_at, self.token = now(), None
        self.pack()

    def completed(self, at: float) -> _Frozen:
        """This record, completed at `at`, as one tuple of plain values: unlike this object, the
        collector stops tracking it (unless `raw` nests dicts, as WeChat v3's does: then the tuples
        holding them stay tracked). Completed events, nearly all of a store, are kept this way;
        the record itself is dropped, so its own fields are not written first."""
        self.pack()
        return (self.columns, _DONE, self.attempts, self.created_at, at, None, None, self.done,
                self.packed)  # fmt: skip

    @classmethod
    def thawed(cls, frozen: _Frozen) -> _Record:
        columns, state, attempts, created_at, updated_at, next_attempt_at, last_error, done, packed = frozen
        return cls(columns, None, EventState(state), attempts, created_at, updated_at, next_attempt_at,
                   last_error, None, 0.0, done, packed)  # fmt: skip


def _view(entry: _Record | _Frozen) -> _Record:
    """A record to read (a completed one thawed for the moment)."""
    return _Record.thawed(entry) if isinstance(entry, tuple) else entry


def _columns_state_updated(entry: _Record | _Frozen) -> tuple[tuple[str, ...], str, float]:
    """What searches and purges filter on, read without thawing a completed record."""
    if isinstance(entry, tuple):
        return entry[0], entry[1], entry[4]
    return entry.columns, entry.state, entry.updated_at


def _created_at(entry: _Record | _Frozen) -> float:
    return entry[3] if isinstance(entry, tuple) else entry.created_at


def _search_keys(entry: _Record | _Frozen) -> tuple[str, str, tuple[str, ...]]:
    """(event_id, order_id, the transaction and refund ids) of an entry, for the search index."""
    columns = entry[0] if isinstance(entry, tuple) else entry.columns
    result = None if isinstance(entry, tuple) else entry.result
    if isinstance(result, UnhandledEvent):
        return columns[0], columns[5], ()
    if isinstance(result, PaymentResult):
        values: tuple[Any, ...] = tuple(getattr(result, name) for name in ID_FIELDS)
    else:
        packed = entry[8] if isinstance(entry, tuple) else entry.packed
        values = tuple(packed[i] for i in _ID_INDEXES) if packed else ()
    return columns[0], columns[5], tuple(v for v in values if v)


def _by_column(
    account: str | None, provider: str | None, kind: str | None, order_id: str | None
) -> list[tuple[int, str]]:
    """The column filters given, as (index into `columns`, value)."""
    by_column = ((1, account), (2, provider), (3, kind), (5, order_id))
    return [(i, value) for i, value in by_column if value is not None]


def _found(search: Search, entry: _Record | _Frozen) -> bool:
    event_id, order_id, ids = _search_keys(entry)
    if order_id.lower().startswith(search.order_prefix) or search.text in ids:
        return True
    return search.event_prefix is not None and event_id.startswith(search.event_prefix[0])


class MemoryStore(Store):
    """No lock needed: every method runs to completion without awaiting, on one event loop."""

    def __init__(self, url: str = "memory://") -> None:
        self._records: dict[str, _Record | _Frozen] = {}
        self._expectations = MemoryExpectations()
        self._reconciliations = MemoryReconciliations()
        self._search = SearchIndex()
        self._history = MemoryHistory(self._records.__contains__)

    @property
    def expectations(self) -> ExpectationStore:
        return self._expectations

    @property
    def reconciliations(self) -> ReconciliationStore:
        return self._reconciliations

    @property
    def history(self) -> EventHistory:
        return self._history

    def _attempted(self, event_id: str, attempt: Attempt | None) -> None:
        if attempt is not None and event_id in self._records:
            self._history.add(event_id, attempt)

    def _record(self, event_id: str) -> _Record | None:
        """The record to change; a completed one is thawed, and kept thawed, first."""
        entry = self._records.get(event_id)
        if isinstance(entry, tuple):
            entry = self._records[event_id] = _Record.thawed(entry)
        return entry

    def _new(
        self, result: PaymentResult | UnhandledEvent, state: EventState, attempts: int, t: float
    ) -> _Record:
        if isinstance(result, PaymentResult):
            columns = (result.event_id, result.account, result.provider, result.kind._value_,
                       result.status._value_, result.order_id)  # fmt: skip
        else:
            columns = event_fields(result)[:6]
        record = _Record(columns, result, state, attempts, t, t, t if state is EventState.PENDING else None)
        self._records[result.event_id] = record
        if self._search.built:
            self._search.add(*_search_keys(record))
        return record

    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        t = now()
        entry = self._records.get(result.event_id)
        if isinstance(entry, tuple):  # only completed events are frozen
            return Claim(ClaimState.DONE)
        record = entry
        if record is None:
            record = self._new(result, EventState.IN_FLIGHT, 1, t)
        elif record.takeable(CLAIM, t):
            record.lease(t)
        else:
            return Claim(ClaimState.IN_FLIGHT if record.state is EventState.IN_FLIGHT else ClaimState.DONE)
        record.token, record.lease_until = new_token(), t + lease_seconds
        done = frozenset(record.done) if record.done else _NONE_DONE
        return Claim(ClaimState.NEW, record.token, done, record.attempts)

    async def subscriber_done(self, event_id: str, token: str, subscriber: str) -> None:
        record = self._record(event_id)
        if record is not None and subscriber not in record.done:
            record.done += (subscriber,)

    async def complete(
        self, event_id: str, token: str, *, done: Sequence[str] = (), attempt: Attempt | None = None
    ) -> None:
        self._attempted(event_id, attempt)
        record = self._records.get(event_id)
        if isinstance(record, _Record) and record.state in COMPLETE.sources:
            if not record.done:
                record.done = tuple(done)
            elif done:
                record.done += tuple(name for name in done if name not in record.done)
            if isinstance(record.result, UnhandledEvent):  # it keeps its object
                record.settle(COMPLETE.target, error=None)
            else:  # a result, or a thawed record's packed values
                self._records[event_id] = record.completed(now())

    async def release(
        self, event_id: str, token: str, *, error: str | None = None, attempt: Attempt | None = None
    ) -> None:
        self._attempted(event_id, attempt)
        record = self._record(event_id)
        if record is not None and record.takeable(RELEASE, now(), token):
            record.settle(RELEASE.target, next_attempt_at=record.next_attempt_at, error=error)

    async def record(
        self, entry: PaymentResult | UnhandledEvent, state: EventState, *, reason: str | None
    ) -> bool:
        event_fields(entry)  # the same refusal as every backend's for what cannot be stored
        existing = self._record(entry.event_id)
        if existing is None:
            record = self._new(entry, state, 0, now())
            record.last_error = reason
            record.pack()
            return True
        if existing.state not in RECORDABLE[state]:
            return False
        existing.last_error, existing.updated_at = reason, now()
        return True

    async def enqueue(self, result: PaymentResult) -> bool:
        if result.event_id in self._records:
            return False
        self._new(result, EventState.PENDING, 0, now())
        return True

    async def acquire(self, *, limit: int, lease_seconds: float) -> list[Lease]:
        t = now()

        def due_at(record: _Record) -> float | None:
            state = record.state
            if state is EventState.PENDING and (record.next_attempt_at or 0.0) <= t:
                return record.next_attempt_at or 0.0
            if state is EventState.IN_FLIGHT and record.lease_until <= t:
                return record.lease_until
            return None

        due = sorted(
            (
                (at, r)
                for r in self._records.values()
                if isinstance(r, _Record) and (at := due_at(r)) is not None  # a frozen one is done
            ),
            key=lambda pair: pair[0],
        )
        leases = []
        for _, record in due[:limit]:
            record.lease(t)
            record.token, record.lease_until = new_token(), t + lease_seconds
            leases.append(Lease(record.snapshot(), record.token))
        return leases

    async def reschedule(
        self, event_id: str, token: str, *, at: float, error: str, attempt: Attempt | None = None
    ) -> None:
        self._attempted(event_id, attempt)
        record = self._record(event_id)
        if record is not None and record.takeable(RESCHEDULE, now(), token):
            record.settle(RESCHEDULE.target, next_attempt_at=at, error=error)

    async def dead_letter(
        self, event_id: str, token: str, *, error: str, attempt: Attempt | None = None
    ) -> None:
        self._attempted(event_id, attempt)
        record = self._record(event_id)
        if record is not None and record.takeable(DEAD_LETTER, now(), token):
            record.settle(DEAD_LETTER.target, error=error)

    async def get(self, event_id: str) -> StoredEvent | None:
        entry = self._records.get(event_id)
        return _view(entry).snapshot() if entry is not None else None

    async def select(self, query: EventQuery) -> list[StoredEvent]:
        account, order_id, provider, kind = query.account, query.order_id, query.provider, query.kind
        states, limit = query.states, query.limit
        created_after, created_before, before_event_id = (
            query.created_after,
            query.created_before,
            query.before_event_id,
        )
        wanted = frozenset(states) if states is not None else None
        wanted_columns = _by_column(account, provider, kind, order_id)
        matching: list[tuple[float, str, _Record | _Frozen]] = []
        search = Search.of(query.search) if query.search is not None else None
        for entry in self._searched(search):
            columns, state, _ = _columns_state_updated(entry)
            created_at = _created_at(entry)
            if (
                (wanted is None or state in wanted)
                and all(columns[i] == value for i, value in wanted_columns)
                and in_window(created_at, columns[0], created_after, created_before, before_event_id)
                and (search is None or _found(search, entry))
            ):
                matching.append((created_at, columns[0], entry))
        # Insertion order is not creation order to the tie (a coarse clock): sorted, as elsewhere.
        newest = heapq.nlargest(limit, matching, key=lambda m: (m[0], m[1]))
        return [_view(entry).snapshot() for _, _, entry in newest]

    def _searched(self, search: Search | None) -> Iterable[_Record | _Frozen]:
        """The entries a search may find, through its index (built on the first search); all without one."""
        if search is None:
            return self._records.values()
        if not self._search.built:
            self._search.build(_search_keys(entry) for entry in self._records.values())
        return [self._records[i] for i in self._search.candidates(search) if i in self._records]

    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        record = self._record(event_id)
        transition = REPLAY if replay else RETRY
        if record is None or not record.takeable(transition, now()):
            return False
        if transition.forgets_subscribers:
            record.done = ()
        if record.state in transition.resets_attempts_from:
            record.attempts = 0
        record.settle(transition.target, next_attempt_at=now(), error=record.last_error)
        return True

    async def delete(self, query: EventQuery, *, before: float) -> int:
        account, provider, order_id, created_after = (
            query.account,
            query.provider,
            query.order_id,
            query.created_after,
        )
        states = query.states if query.states is not None else frozenset(RETAINED)
        wanted = frozenset(states)
        wanted_columns = _by_column(account, provider, None, order_id)
        doomed = []
        for event_id, entry in self._records.items():
            columns, state, updated_at = _columns_state_updated(entry)
            if (
                state in wanted
                and updated_at < before
                # The retention purge reads every event: no generator per event when unfiltered.
                and (not wanted_columns or all(columns[i] == value for i, value in wanted_columns))
                and (created_after is None or _created_at(entry) >= created_after)
            ):
                doomed.append(event_id)
        for event_id in doomed:
            if self._search.built:
                self._search.remove(*_search_keys(self._records[event_id]))
            del self._records[event_id]
            self._history.forget(event_id)
        return len(doomed)

    async def oldest_due(self) -> float | None:
        due = [
            entry.next_attempt_at or entry.created_at
            for entry in self._records.values()
            if isinstance(entry, _Record) and entry.state is EventState.PENDING
        ]
        return min(due, default=None)

    async def count(self) -> dict[EventState, int]:
        counts: dict[EventState, int] = {}
        for entry in self._records.values():
            state = EventState(_columns_state_updated(entry)[1])
            counts[state] = counts.get(state, 0) + 1
        return counts
