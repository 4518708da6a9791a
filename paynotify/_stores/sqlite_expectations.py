"""The SQLite store's expectations, through the store's one writer (its transactions and commits)."""

# Statements are built only from constants; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from paynotify._stores.expectations import (
    SQL_COLUMNS,
    Expectation,
    ExpectationState,
    ExpectationStore,
    from_row,
    sql_values,
)
from paynotify._stores.sqlite_writer import GroupCommitWriter
from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

__all__ = ["SQLiteExpectations"]

_TABLE = "paynotify_expectations"
_KEY = "account = ? AND order_id = ? AND refund_id = ?"
_INSERT = (
    f"INSERT INTO {_TABLE} ({SQL_COLUMNS}, due_at) VALUES ({', '.join('?' * 17)}) ON CONFLICT DO NOTHING"
)
# One statement: the due ones are chosen and leased under the write lock this transaction holds,
# so a sweeper in another process sees them leased.
_TAKE = (
    f"UPDATE {_TABLE} SET lease_token = ?, lease_until = ?, due_at = ?, attempts = attempts + 1,"
    f" updated_at = ? WHERE rowid IN (SELECT rowid FROM {_TABLE} WHERE due_at IS NOT NULL AND due_at <= ?"
    f" ORDER BY due_at LIMIT ?) RETURNING {SQL_COLUMNS}"
)


class SQLiteExpectations(ExpectationStore):
    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer

    async def add(self, record: Expectation) -> Expectation:
        key = (record.account, record.order_id, record.refund_id or "")

        def expect(conn: sqlite3.Connection) -> Expectation:
            conn.execute(_INSERT, sql_values(record))
            row = conn.execute(f"SELECT {SQL_COLUMNS} FROM {_TABLE} WHERE {_KEY}", key).fetchone()
            return from_row(row)

        return await self._writer.run(expect, on_thread=True)

    async def get(self, account: str, order_id: str, *, refund_id: str | None = None) -> Expectation | None:
        key = (account, order_id, refund_id or "")

        def get(conn: sqlite3.Connection) -> Expectation | None:
            row = conn.execute(f"SELECT {SQL_COLUMNS} FROM {_TABLE} WHERE {_KEY}", key).fetchone()
            return None if row is None else from_row(row)

        return await self._writer.run(get, on_thread=True)

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
        sql = (
            f"UPDATE {_TABLE} SET state = ?, outcome = ?, lease_token = NULL, lease_until = NULL,"
            f" due_at = NULL, updated_at = ? WHERE {_KEY} AND state = 'open'"
        )
        params = (state.value, outcome, t, account, order_id, refund_id or "")
        changed: int = await self._writer.run(
            lambda conn: conn.execute(sql, params).rowcount, single_write=True
        )
        return changed == 1

    async def take(self, *, limit: int, lease_seconds: float, now: float | None = None) -> list[Expectation]:
        t = _now() if now is None else now
        params = (new_token(), t + lease_seconds, t + lease_seconds, t, t, limit)

        def take(conn: sqlite3.Connection) -> list[Expectation]:
            return sorted((from_row(row) for row in conn.execute(_TAKE, params)), key=lambda r: r.next_due)

        return await self._writer.run(take, on_thread=True)

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
        sql = (
            f"UPDATE {_TABLE} SET next_due = ?, due_at = ?, lease_token = NULL, lease_until = NULL,"
            f" last_error = ?, updated_at = ?, attempts = coalesce(?, attempts)"
            f" WHERE {_KEY} AND state = 'open' AND lease_token = ?"
        )
        account, order_id, refund_id = expectation.key
        key = (account, order_id, refund_id or "")
        params = (next_due, next_due, error, t, attempts, *key, expectation.lease_token)
        changed: int = await self._writer.run(
            lambda conn: conn.execute(sql, params).rowcount, single_write=True
        )
        return changed == 1

    async def find(
        self,
        *,
        account: str | None = None,
        states: Iterable[ExpectationState] | None = None,
        limit: int = 100,
    ) -> list[Expectation]:
        where, params = ["1 = 1"], []
        if account is not None:
            where.append("account = ?")
            params.append(account)
        if states is not None:
            wanted = [s.value for s in states]
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        sql = (
            f"SELECT {SQL_COLUMNS} FROM {_TABLE} WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, order_id DESC LIMIT ?"
        )

        def find(conn: sqlite3.Connection) -> list[Expectation]:
            return [from_row(row) for row in conn.execute(sql, (*params, limit))]

        return await self._writer.run(find, on_thread=True)
