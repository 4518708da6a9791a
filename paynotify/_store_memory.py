"""A store in a dict: for tests and single-process experiments; it forgets everything on exit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from paynotify._result import PaymentResult
from paynotify._store import (
    Claim,
    ClaimState,
    EventState,
    Lease,
    Store,
    StoredEvent,
    event_fields,
    new_token,
    now,
    store_schemes,
)

__all__ = ["MemoryStore"]


@dataclass
class _Record:
    event: StoredEvent
    token: str | None = None
    lease_until: float = 0.0
    done: set[str] = field(default_factory=set)

    def snapshot(self) -> StoredEvent:
        return replace(self.event, done_subscribers=frozenset(self.done))

    def leased(self, t: float) -> bool:
        return self.event.state is EventState.IN_FLIGHT and self.lease_until > t

    def owned(self, token: str) -> bool:
        return self.token == token

    def lease(self) -> None:
        self.update(state=EventState.IN_FLIGHT, attempts=self.event.attempts + 1, next_attempt_at=None)

    def update(self, **changes: object) -> None:
        self.event = replace(self.event, updated_at=now(), **changes)  # type: ignore[arg-type]


class MemoryStore(Store):
    """No lock needed: every method runs to completion without awaiting, on one event loop."""

    def __init__(self, url: str = "memory://") -> None:
        self._records: dict[str, _Record] = {}

    def _new(self, result: PaymentResult, state: EventState, attempts: int) -> _Record:
        event_id, account, provider, kind, status, order_id, result_json = event_fields(result)
        t = now()
        event = StoredEvent(
            event_id,
            account,
            provider,
            kind,
            status,
            order_id,
            state,
            attempts,
            t,
            t,
            t if state is EventState.PENDING else None,
            None,
            frozenset(),
            result_json,
        )
        record = _Record(event)
        self._records[event_id] = record
        return record

    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        t = now()
        record = self._records.get(result.event_id)
        if record is None:
            record = self._new(result, EventState.IN_FLIGHT, 1)
        elif record.event.state is EventState.DONE:
            return Claim(ClaimState.DONE)
        elif record.leased(t):
            return Claim(ClaimState.IN_FLIGHT)
        else:
            record.lease()
        record.token, record.lease_until = new_token(), t + lease_seconds
        return Claim(ClaimState.NEW, record.token, frozenset(record.done))

    async def subscriber_done(self, event_id: str, token: str, subscriber: str) -> None:
        record = self._records.get(event_id)
        if record is not None:
            record.done.add(subscriber)

    async def complete(self, event_id: str, token: str) -> None:
        record = self._records.get(event_id)
        if record is not None and record.event.state is not EventState.DONE:
            record.update(state=EventState.DONE, next_attempt_at=None, last_error=None)
            record.token = None

    async def release(self, event_id: str, token: str, *, error: str | None = None) -> None:
        record = self._records.get(event_id)
        if record is not None and record.owned(token) and record.event.state is EventState.IN_FLIGHT:
            record.update(state=EventState.RELEASED, last_error=error)
            record.token = None

    async def enqueue(self, result: PaymentResult) -> bool:
        if result.event_id in self._records:
            return False
        self._new(result, EventState.PENDING, 0)
        return True

    async def acquire(self, *, limit: int, lease_seconds: float) -> list[Lease]:
        t = now()

        def due_at(record: _Record) -> float | None:
            state = record.event.state
            if state is EventState.PENDING and (record.event.next_attempt_at or 0.0) <= t:
                return record.event.next_attempt_at or 0.0
            if state is EventState.IN_FLIGHT and record.lease_until <= t:
                return record.lease_until
            return None

        due = sorted(
            ((at, r) for r in self._records.values() if (at := due_at(r)) is not None),
            key=lambda pair: pair[0],
        )
        leases = []
        for _, record in due[:limit]:
            record.lease()
            record.token, record.lease_until = new_token(), t + lease_seconds
            leases.append(Lease(record.snapshot(), record.token))
        return leases

    async def reschedule(self, event_id: str, token: str, *, at: float, error: str) -> None:
        record = self._records.get(event_id)
        if record is not None and record.owned(token) and record.event.state is EventState.IN_FLIGHT:
            record.update(state=EventState.PENDING, next_attempt_at=at, last_error=error)
            record.token = None

    async def dead_letter(self, event_id: str, token: str, *, error: str) -> None:
        record = self._records.get(event_id)
        if record is not None and record.owned(token) and record.event.state is EventState.IN_FLIGHT:
            record.update(state=EventState.DEAD, next_attempt_at=None, last_error=error)
            record.token = None

    async def get(self, event_id: str) -> StoredEvent | None:
        record = self._records.get(event_id)
        return record.snapshot() if record is not None else None

    async def find(
        self,
        *,
        account: str | None = None,
        order_id: str | None = None,
        states: Iterable[EventState] | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        wanted = frozenset(states) if states is not None else None
        found = [
            r.snapshot()
            for r in reversed(self._records.values())
            if (account is None or r.event.account == account)
            and (order_id is None or r.event.order_id == order_id)
            and (wanted is None or r.event.state in wanted)
        ]
        return found[:limit]

    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        record = self._records.get(event_id)
        if record is None or record.leased(now()):
            return False
        eligible = {EventState.RELEASED, EventState.PENDING, EventState.DEAD, EventState.IN_FLIGHT}
        if replay:
            eligible.add(EventState.DONE)
        if record.event.state not in eligible:
            return False
        if replay:
            record.done.clear()
        record.update(state=EventState.PENDING, next_attempt_at=now())
        record.token = None
        return True

    async def purge(self, *, before: float, states: Iterable[EventState] = (EventState.DONE,)) -> int:
        wanted = frozenset(states)
        doomed = [
            event_id
            for event_id, r in self._records.items()
            if r.event.state in wanted and r.event.updated_at < before
        ]
        for event_id in doomed:
            del self._records[event_id]
        return len(doomed)


store_schemes()["memory"] = MemoryStore
