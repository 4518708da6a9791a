"""Expectations: payments and refunds the merchant awaits, for the sweeper to ask the provider about
when their notification does not come.

One record per (account, order id, refund id), in the same store as the events. An OPEN one is due
at `next_due`; whoever takes it holds its lease (a token, until `lease_until`) while it asks, so
two sweepers on one store never ask about the same expectation at once; a lease that runs out (its
process died) is taken over. It ends SETTLED, when a final state of it was delivered (by either
path), or EXPIRED, when `until` passed without one (outcome `unpaid`).

Every backend keeps one "due" time per record: `next_due` while free, `lease_until` while leased,
so `take` is one range read on one index, and an expired lease is due by itself.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

__all__ = [
    "FIRST_QUERY_AFTER",
    "Expectation",
    "ExpectationState",
    "ExpectationStore",
    "MemoryExpectations",
]

FIRST_QUERY_AFTER = 60.0
"""Seconds from `expect` to the first question, unless the caller says (the sweeper's schedule)."""


class ExpectationState(StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Expectation:
    account: str
    order_id: str
    refund_id: str | None
    amount: str
    currency: str
    created_at: float
    updated_at: float
    until: float
    """Unix seconds after which it is no longer awaited (one last question, then EXPIRED)."""
    at: float | None
    """When the payment (or refund) was made, for a provider whose query needs it (UnionPay)."""
    next_due: float
    attempts: int
    """Questions asked so far (each `take` counts one)."""
    state: ExpectationState
    outcome: str | None
    """The final status delivered (`succeeded`, `closed`, `failed`), `rejected`, or `unpaid`."""
    lease_token: str | None = None
    lease_until: float | None = None
    last_error: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.account, self.order_id, self.refund_id)


def check_text(*values: str | None) -> None:
    """Ids go into keys and SQL parameters: a NUL cannot (PostgreSQL refuses it)."""
    if any(value is not None and ("\x00" in value or not value.strip()) for value in values):
        raise ValueError("an expectation's account, order id and refund id must be non-empty, without NUL")


class ExpectationStore(ABC):
    """The expectations of one store; `Store.expectations`. Times are Unix seconds; `now` defaults
    to the clock (a sweeper with a clock of its own passes its time)."""

    async def expect(
        self,
        account: str,
        order_id: str,
        *,
        amount: Decimal | str | int,
        currency: str = "CNY",
        refund_id: str | None = None,
        until: float,
        at: float | None = None,
        first_due: float | None = None,
        now: float | None = None,
    ) -> Expectation:
        """Record that this payment (with `refund_id`: refund) is awaited, first due at `first_due`
        (default: FIRST_QUERY_AFTER from now). Idempotent on (account, order_id, refund_id): an
        existing record, in any state, is returned unchanged."""
        record = new_expectation(account, order_id, refund_id, amount, currency, until, at, first_due, now)
        return await self.add(record)

    @abstractmethod
    async def add(self, record: Expectation) -> Expectation:
        """Store `record` (made and checked by `expect`) unless one with its key is there; the
        stored one either way."""

    @abstractmethod
    async def get(self, account: str, order_id: str, *, refund_id: str | None = None) -> Expectation | None:
        """The record, or None."""

    @abstractmethod
    async def settle(
        self,
        account: str,
        order_id: str,
        *,
        refund_id: str | None = None,
        outcome: str,
        state: ExpectationState = ExpectationState.SETTLED,
        now: float | None = None,
    ) -> bool:
        """Close an OPEN expectation (its lease, if any, ends with it); False if none is open."""

    @abstractmethod
    async def take(self, *, limit: int, lease_seconds: float, now: float | None = None) -> list[Expectation]:
        """Lease up to `limit` due OPEN expectations (free ones whose `next_due` came, and leased
        ones whose lease ran out), earliest first, counting an attempt on each; the returned records
        carry the new `lease_token`. Safe from many processes at once: each goes to one caller."""

    @abstractmethod
    async def reschedule(
        self,
        expectation: Expectation,
        *,
        next_due: float,
        error: str | None = None,
        now: float | None = None,
        attempts: int | None = None,
    ) -> bool:
        """Give the lease back, due again at `next_due` (with `attempts`, counting that many: a
        sweeper that put it back without asking uncounts its `take`); False (nothing changed)
        without the lease."""

    @abstractmethod
    async def find(
        self,
        *,
        account: str | None = None,
        states: Iterable[ExpectationState] | None = None,
        limit: int = 100,
    ) -> list[Expectation]:
        """Expectations matching the filters, newest first, at most `limit` (the console, the CLI)."""


def new_expectation(
    account: str,
    order_id: str,
    refund_id: str | None,
    amount: Decimal | str | int,
    currency: str,
    until: float,
    at: float | None,
    first_due: float | None,
    now: float | None,
) -> Expectation:
    """The record `expect` writes when there is none yet (checked here once for every backend)."""
    check_text(account, order_id, refund_id)
    value = Decimal(str(amount))
    if not value.is_finite() or value < 0:
        raise ValueError(f"an expectation's amount must be a non-negative number, not {amount!r}")
    t = _now() if now is None else now
    due = t + FIRST_QUERY_AFTER if first_due is None else first_due
    return Expectation(
        account=account, order_id=order_id, refund_id=refund_id, amount=str(value), currency=currency,
        created_at=t, updated_at=t, until=float(until), at=at, next_due=min(due, float(until)),
        attempts=0, state=ExpectationState.OPEN, outcome=None,
    )  # fmt: skip


class MemoryExpectations(ExpectationStore):
    """The memory store's: a dict, one process."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str | None], Expectation] = {}

    async def add(self, record: Expectation) -> Expectation:
        return self._records.setdefault(record.key, record)

    async def get(self, account: str, order_id: str, *, refund_id: str | None = None) -> Expectation | None:
        return self._records.get((account, order_id, refund_id))

    async def settle(
        self,
        account: str,
        order_id: str,
        *,
        refund_id: str | None = None,
        outcome: str,
        state: ExpectationState = ExpectationState.SETTLED,
        now: float | None = None,
    ) -> bool:
        record = self._records.get((account, order_id, refund_id))
        if record is None or record.state is not ExpectationState.OPEN:
            return False
        self._records[record.key] = dataclasses.replace(
            record, state=state, outcome=outcome, lease_token=None, lease_until=None,
            updated_at=_now() if now is None else now,
        )  # fmt: skip
        return True

    async def take(self, *, limit: int, lease_seconds: float, now: float | None = None) -> list[Expectation]:
        t = _now() if now is None else now
        due = sorted(
            (r for r in self._records.values() if r.state is ExpectationState.OPEN and _due(r) <= t),
            key=_due,
        )[:limit]
        token = new_token()
        taken = []
        for record in due:
            leased = dataclasses.replace(
                record, lease_token=token, lease_until=t + lease_seconds, attempts=record.attempts + 1,
                updated_at=t,
            )  # fmt: skip
            self._records[record.key] = leased
            taken.append(leased)
        return taken

    async def reschedule(
        self,
        expectation: Expectation,
        *,
        next_due: float,
        error: str | None = None,
        now: float | None = None,
        attempts: int | None = None,
    ) -> bool:
        record = self._records.get(expectation.key)
        if (
            record is None
            or record.state is not ExpectationState.OPEN
            or record.lease_token != expectation.lease_token
        ):
            return False
        self._records[record.key] = dataclasses.replace(
            record, next_due=next_due, lease_token=None, lease_until=None, last_error=error,
            updated_at=_now() if now is None else now,
            attempts=record.attempts if attempts is None else attempts,
        )  # fmt: skip
        return True

    async def find(
        self,
        *,
        account: str | None = None,
        states: Iterable[ExpectationState] | None = None,
        limit: int = 100,
    ) -> list[Expectation]:
        wanted = None if states is None else frozenset(states)
        records = [
            r
            for r in self._records.values()
            if (account is None or r.account == account) and (wanted is None or r.state in wanted)
        ]
        records.sort(key=lambda r: (r.created_at, r.order_id), reverse=True)
        return records[:limit]


def _due(record: Expectation) -> float:
    return record.lease_until if record.lease_until is not None else record.next_due


SQL_COLUMNS = (
    "account, order_id, refund_id, amount, currency, created_at, updated_at, until_at, paid_at,"
    " next_due, attempts, state, outcome, lease_token, lease_until, last_error"
)
"""The SQL backends' columns, in `from_row`'s order; `refund_id` is '' for none (it is in the key)."""


def sql_values(record: Expectation) -> tuple[object, ...]:
    """A new record's values, in SQL_COLUMNS order, then its due time."""
    return (record.account, record.order_id, record.refund_id or "", record.amount, record.currency,
            record.created_at, record.updated_at, record.until, record.at, record.next_due,
            record.attempts, record.state.value, record.outcome, record.lease_token, record.lease_until,
            record.last_error, record.next_due)  # fmt: skip


def from_row(row: Iterable[object]) -> Expectation:
    """An Expectation from a row in SQL_COLUMNS order (or the Redis hash's values, in that order)."""
    (account, order_id, refund_id, amount, currency, created_at, updated_at, until, at, next_due,
     attempts, state, outcome, lease_token, lease_until, last_error) = row  # fmt: skip
    return Expectation(
        account=str(account), order_id=str(order_id), refund_id=str(refund_id) or None,
        amount=str(amount), currency=str(currency), created_at=float(created_at),  # type: ignore[arg-type]
        updated_at=float(updated_at), until=float(until), at=_float(at),  # type: ignore[arg-type]
        next_due=float(next_due), attempts=int(attempts), state=ExpectationState(state),  # type: ignore[arg-type,call-overload]
        outcome=_text(outcome), lease_token=_text(lease_token), lease_until=_float(lease_until),
        last_error=_text(last_error),
    )  # fmt: skip


def _float(value: object) -> float | None:
    return None if value is None or value == "" else float(value)  # type: ignore[arg-type]


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
