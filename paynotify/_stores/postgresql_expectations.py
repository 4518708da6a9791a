"""The PostgreSQL store's expectations, on the store's pool (its deadlines and error wording)."""

# Statements are built only from constants and the checked, quoted schema name; every value is a
# bind parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from paynotify._stores.expectations import (
    SQL_COLUMNS,
    Expectation,
    ExpectationState,
    ExpectationStore,
    from_row,
    sql_values,
)
from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

if TYPE_CHECKING:
    from paynotify._stores.postgresql import PostgresStore

__all__ = ["PostgresExpectations"]

_NAMES = tuple(name.strip() for name in SQL_COLUMNS.split(","))
_KEY = "account = $1 AND order_id = $2 AND refund_id = $3"


def _record(row: Mapping[str, Any]) -> Expectation:
    return from_row(row[name] for name in _NAMES)


class PostgresExpectations(ExpectationStore):
    def __init__(self, store: PostgresStore, schema_sql: str) -> None:
        self._store = store
        table = self._table = f"{schema_sql}.paynotify_expectations"
        placeholders = ", ".join(f"${i}" for i in range(1, 18))
        self._insert = (
            f"INSERT INTO {table} ({SQL_COLUMNS}, due_at) VALUES ({placeholders})"
            " ON CONFLICT (account, order_id, refund_id) DO NOTHING"
        )
        self._get = f"SELECT {SQL_COLUMNS} FROM {table} WHERE {_KEY}"
        self._settle = (
            f"UPDATE {table} SET state = $4, outcome = $5, lease_token = NULL, lease_until = NULL,"
            f" due_at = NULL, updated_at = $6 WHERE {_KEY} AND state = 'open'"
        )
        self._reschedule = (
            f"UPDATE {table} SET next_due = $4, due_at = $4, lease_token = NULL, lease_until = NULL,"
            f" last_error = $5, updated_at = $6, attempts = coalesce($8::integer, attempts)"
            f" WHERE {_KEY} AND state = 'open' AND lease_token = $7"
        )
        # SKIP LOCKED leaves the rows another sweeper is taking; FOR UPDATE re-checks a row changed
        # since the snapshot, so each due expectation goes to one caller.
        self._take = f"""
            UPDATE {table} AS x
               SET lease_token = $1, lease_until = $2, due_at = $2, attempts = x.attempts + 1,
                   updated_at = $3
              FROM (SELECT account, order_id, refund_id FROM {table}
                     WHERE due_at IS NOT NULL AND due_at <= $3
                     ORDER BY due_at LIMIT $4
                       FOR UPDATE SKIP LOCKED) AS due
             WHERE (x.account, x.order_id, x.refund_id) = (due.account, due.order_id, due.refund_id)
            RETURNING {", ".join(f"x.{name}" for name in _NAMES)}"""

    async def add(self, record: Expectation) -> Expectation:
        await self._store._execute(self._insert, *sql_values(record))
        found = await self.get(record.account, record.order_id, refund_id=record.refund_id)
        return record if found is None else found

    async def get(self, account: str, order_id: str, *, refund_id: str | None = None) -> Expectation | None:
        row = await self._store._fetchrow(self._get, account, order_id, refund_id or "")
        return None if row is None else _record(row)

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
        t = _now() if now is None else now
        args = (account, order_id, refund_id or "", state.value, outcome, t)
        return await self._store._execute(self._settle, *args) == 1

    async def take(self, *, limit: int, lease_seconds: float, now: float | None = None) -> list[Expectation]:
        t = _now() if now is None else now
        rows = await self._store._fetch(self._take, new_token(), t + lease_seconds, t, limit)
        return sorted((_record(row) for row in rows), key=lambda r: r.next_due)

    async def reschedule(
        self,
        expectation: Expectation,
        *,
        next_due: float,
        error: str | None = None,
        now: float | None = None,
        attempts: int | None = None,
    ) -> bool:
        t = _now() if now is None else now
        account, order_id, refund_id = expectation.key
        args = (account, order_id, refund_id or "", next_due, error, t, expectation.lease_token, attempts)
        return await self._store._execute(self._reschedule, *args) == 1

    async def find(
        self,
        *,
        account: str | None = None,
        states: Iterable[ExpectationState] | None = None,
        limit: int = 100,
    ) -> list[Expectation]:
        sql = (
            f"SELECT {SQL_COLUMNS} FROM {self._table}"
            " WHERE ($1::text IS NULL OR account = $1) AND ($2::text[] IS NULL OR state = ANY($2::text[]))"
            " ORDER BY created_at DESC, order_id DESC LIMIT $3"
        )
        wanted = None if states is None else [s.value for s in states]
        return [_record(row) for row in await self._store._fetch(sql, account, wanted, limit)]
