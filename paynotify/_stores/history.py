"""What happened to each event, and who did what: the attempt history and the audit log.

An `Attempt` is one delivery attempt (started, finished, outcome, error, the instance that made it)
or one operator action on the event (`operator` set: a retry, replay or requeue from the console or
the CLI). The store writes a delivery attempt in the same write as the state change that ends it
(`complete`, `release`, `reschedule`, `dead_letter` take `attempt=`), so recording costs no commit
of its own. Each event keeps its last `ATTEMPTS_KEPT`; they go when the event is purged.

An `AuditEntry` is one operator action (on one event or a selection of them), kept until the
retention purge passes its time. `EventHistory.audit` writes it and an operator row into the
history of each event it names, together.
"""

from __future__ import annotations

import json
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

__all__ = [
    "ATTEMPTS_KEPT",
    "AUDIT_BATCH",
    "AUDIT_IDS_KEPT",
    "ERROR_LENGTH",
    "Attempt",
    "AttemptOutcome",
    "AuditEntry",
    "EventHistory",
    "MemoryHistory",
    "instance_id",
]

ATTEMPTS_KEPT = 50
"""Attempts (and operator actions) kept per event, the newest."""
ERROR_LENGTH = 500
"""An attempt's error is cut to this many characters (the text the event's `last_error` gets)."""
AUDIT_IDS_KEPT = 100
"""Event ids an audit entry lists (its `count` says how many the action covered)."""
AUDIT_BATCH = 500
"""Events whose history rows one write of `EventHistory.audit` adds: a CLI selection of 10^5 events
is many short writes (the entry with the first), never one that holds the store."""


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    """Failed; the event waits for the next attempt (a resend, or its retry after the backoff)."""
    DEAD = "dead"
    """Failed for the last time: dead-lettered."""
    REJECTED = "rejected"
    """Refused by a check: recorded, never delivered."""
    INTERRUPTED = "interrupted"
    """Handed back unfinished (shutdown, the store unavailable)."""


_INSTANCE = ""


def _this_process() -> None:
    global _INSTANCE
    _INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


_this_process()
os.register_at_fork(after_in_child=_this_process)  # a forked worker is an instance of its own


def instance_id() -> str:
    """Which process made an attempt: host and process id."""
    return _INSTANCE


class Attempt(NamedTuple):
    """One row of an event's history. A tuple: cheap to make on every delivery, and plain values
    the collector stops tracking (the memory store keeps them as they are)."""

    started_at: float
    finished_at: float
    outcome: str
    """An `AttemptOutcome`, or the operator's action (`retry`, `replay`, `requeue`)."""
    error: str | None = None
    instance: str = ""
    operator: str | None = None
    """Who acted, for an operator action (`alice`, `cli:root`); None for a delivery attempt."""

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @classmethod
    def of(
        cls, started_at: float, outcome: str, error: str | None = None, *, finished_at: float | None = None
    ) -> Attempt:
        """A delivery attempt by this process, finished now unless told; the error bounded."""
        finished = _now() if finished_at is None else finished_at
        if error is not None and len(error) > ERROR_LENGTH:
            error = error[:ERROR_LENGTH]
        # tuple.__new__: a third of the generated constructor's cost, paid on every delivery.
        return tuple.__new__(cls, (started_at, finished, outcome, error, instance_id(), None))

    def to_json(self) -> str:
        return json.dumps([self.started_at, self.finished_at, self.outcome, self.error, self.instance,
                           self.operator])  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Attempt:
        started, finished, outcome, error, instance, operator = json.loads(text)
        return cls(float(started), float(finished), outcome, error, instance, operator)

    def values(self) -> tuple[Any, ...]:
        """The columns after event_id, in the SQL tables' order."""
        return tuple(self)


def batches(ids: Sequence[str]) -> list[Sequence[str]]:
    """`ids` in AUDIT_BATCH slices; one (empty) slice for none, so the entry is always written."""
    return [ids[i : i + AUDIT_BATCH] for i in range(0, len(ids), AUDIT_BATCH)] or [ids]


def bounded(error: str | None) -> str | None:
    return None if error is None else error[:ERROR_LENGTH]


def new_audit_id(at: float) -> str:
    """Unique, and in time order as text (microseconds in hex, then a random tail)."""
    return f"{max(0, int(at * 1_000_000)):016x}{new_token()[:8]}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    operator: str
    action: str
    """`retry`, `replay`, `requeue`, or `bulk-retry`, `bulk-replay`, `bulk-requeue` for a selection."""
    event_ids: tuple[str, ...]
    """The events acted on (the first AUDIT_IDS_KEPT)."""
    count: int
    """How many events the action covered."""
    outcome: str
    """`ok`, or what went wrong (`not eligible`, `2 of 5 requeued`)."""
    selection: str | None = None
    """For a bulk action: the filters that chose the events, as the operator gave them."""
    id: str = field(default="")

    @classmethod
    def new(
        cls,
        operator: str,
        action: str,
        event_ids: Sequence[str],
        *,
        outcome: str = "ok",
        count: int | None = None,
        selection: str | None = None,
        at: float | None = None,
    ) -> AuditEntry:
        t = _now() if at is None else at
        ids = tuple(event_ids)
        return cls(t, operator, action, ids[:AUDIT_IDS_KEPT], len(ids) if count is None else count,
                   bounded(outcome) or "ok", selection, new_audit_id(t))  # fmt: skip

    def attempt(self) -> Attempt:
        """The row this action leaves in the history of each event it names."""
        return Attempt(self.at, self.at, self.action, None if self.outcome == "ok" else self.outcome,
                       instance_id(), self.operator)  # fmt: skip

    def to_json(self) -> str:
        return json.dumps([self.id, self.at, self.operator, self.action, list(self.event_ids), self.count,
                           self.outcome, self.selection])  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> AuditEntry:
        entry_id, at, operator, action, ids, count, outcome, selection = json.loads(text)
        return cls(float(at), operator, action, tuple(ids), int(count), outcome, selection, entry_id)


class EventHistory(ABC):
    """The attempt history and the audit log of one store; `Store.history`."""

    @abstractmethod
    async def add_attempt(self, event_id: str, attempt: Attempt) -> None:
        """Add one row to the event's history, keeping its last ATTEMPTS_KEPT."""

    @abstractmethod
    async def attempts(self, event_id: str) -> list[Attempt]:
        """The event's history, newest first: all that is kept (ATTEMPTS_KEPT at most, as every
        write trims it)."""

    @abstractmethod
    async def audit(self, entry: AuditEntry, *, events: Sequence[str] | None = None) -> None:
        """Record an operator action, and its row in the history of each of `events` (default:
        those the entry names; a bulk action passes all it covered), AUDIT_BATCH events a write."""

    @abstractmethod
    async def audit_log(
        self, *, since: float | None = None, before_id: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """Operator actions, newest first: at or after `since`, older than the entry `before_id`
        (the last one of the previous page), at most `limit`."""

    @abstractmethod
    async def forget_audit(self, *, before: float) -> int:
        """Delete audit entries older than `before` (the retention purge); how many."""


class MemoryHistory(EventHistory):
    """The memory store's: plain containers, changed without awaiting. `exists` says whether the
    store has an event (an operator's row is kept only for one it has).

    Each event's rows are one tuple of `Attempt`s, tuples of plain values: the collector stops
    tracking them, as it does the memory store's completed events."""

    def __init__(self, exists: Callable[[str], bool] = lambda event_id: True) -> None:
        self._exists = exists
        self._attempts: dict[str, tuple[Attempt, ...]] = {}
        self._audit: dict[str, AuditEntry] = {}

    def add(self, event_id: str, attempt: Attempt) -> None:
        row = attempt
        if attempt.error is not None and len(attempt.error) > ERROR_LENGTH:
            row = attempt._replace(error=attempt.error[:ERROR_LENGTH])
        kept = self._attempts.get(event_id)
        self._attempts[event_id] = (row,) if kept is None else (*kept[1 - ATTEMPTS_KEPT :], row)

    def forget(self, event_id: str) -> None:
        self._attempts.pop(event_id, None)

    async def add_attempt(self, event_id: str, attempt: Attempt) -> None:
        if self._exists(event_id):
            self.add(event_id, attempt)

    async def attempts(self, event_id: str) -> list[Attempt]:
        return list(reversed(self._attempts.get(event_id, ())))

    async def audit(self, entry: AuditEntry, *, events: Sequence[str] | None = None) -> None:
        self._audit[entry.id] = entry
        row = entry.attempt()
        for event_id in entry.event_ids if events is None else events:
            if self._exists(event_id):
                self.add(event_id, row)

    async def audit_log(
        self, *, since: float | None = None, before_id: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        ids = sorted(
            (i for i, e in self._audit.items() if (since is None or e.at >= since)
             and (before_id is None or i < before_id)),
            reverse=True,
        )  # fmt: skip
        return [self._audit[i] for i in ids[: max(limit, 0)]]

    async def forget_audit(self, *, before: float) -> int:
        doomed = [i for i, e in self._audit.items() if e.at < before]
        for i in doomed:
            del self._audit[i]
        return len(doomed)
