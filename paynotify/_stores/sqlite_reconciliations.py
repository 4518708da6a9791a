"""The SQLite store's reconciliation reports and leases, through the store's one writer."""

# Statements are built only from constants; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from datetime import date

from paynotify._stores.reconciliations import (
    COLUMNS,
    SUMMARY_COLUMNS,
    ReconciliationStore,
    StoredReport,
    check_key,
    check_report,
    day_text,
    from_row,
)
from paynotify._stores.sqlite_writer import GroupCommitWriter
from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

__all__ = ["SQLiteReconciliations"]

_REPORTS = "paynotify_reconciliations"
_LEASES = "paynotify_reconciliation_leases"
_SAVE = (
    f"INSERT INTO {_REPORTS} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, day) DO UPDATE"
    " SET provider = excluded.provider, run_at = excluded.run_at, heal = excluded.heal,"
    " healed = excluded.healed, counts_json = excluded.counts_json, report_json = excluded.report_json"
)
_LATEST = (
    f"SELECT {SUMMARY_COLUMNS} FROM {_REPORTS} AS r"
    f" WHERE day = (SELECT max(day) FROM {_REPORTS} WHERE account = r.account) ORDER BY account"
)
# Taken when there is none, or the one there ran out: one statement under the write lock.
_TAKE = (
    f"INSERT INTO {_LEASES} (account, day, token, lease_until) VALUES (?, ?, ?, ?) ON CONFLICT (account, day)"
    " DO UPDATE SET token = excluded.token, lease_until = excluded.lease_until WHERE lease_until <= ?"
)


class SQLiteReconciliations(ReconciliationStore):
    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer

    async def save_report(self, report: StoredReport) -> None:
        check_report(report)
        values = report.columns()
        await self._writer.run(lambda conn: conn.execute(_SAVE, values), single_write=True)

    async def report(self, account: str, day: date | str) -> StoredReport | None:
        key = (account, day_text(day))

        def get(conn: sqlite3.Connection) -> StoredReport | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM {_REPORTS} WHERE account = ? AND day = ?", key
            ).fetchone()
            return None if row is None else from_row(row)

        return await self._writer.run(get, on_thread=True)

    async def reports(
        self, *, account: str | None = None, since: date | str | None = None, limit: int = 100
    ) -> list[StoredReport]:
        where, params = ["day >= ?"], [day_text(since) if since is not None else ""]
        if account is not None:
            where.append("account = ?")
            params.append(account)
        sql = (
            f"SELECT {SUMMARY_COLUMNS} FROM {_REPORTS} WHERE {' AND '.join(where)}"
            " ORDER BY day DESC, account LIMIT ?"
        )

        def find(conn: sqlite3.Connection) -> list[StoredReport]:
            return [from_row(row) for row in conn.execute(sql, (*params, limit))]

        return await self._writer.run(find, on_thread=True)

    async def latest_reports(self) -> list[StoredReport]:
        return await self._writer.run(
            lambda conn: [from_row(row) for row in conn.execute(_LATEST)], on_thread=True
        )

    async def take_lease(
        self, account: str, day: date | str, *, seconds: float, now: float | None = None
    ) -> str | None:
        check_key(account)
        t = _now() if now is None else now
        token = new_token()
        params = (account, day_text(day), token, t + seconds, t)
        changed: int = await self._writer.run(
            lambda conn: conn.execute(_TAKE, params).rowcount, single_write=True
        )
        return token if changed == 1 else None

    async def release_lease(self, account: str, day: date | str, token: str) -> bool:
        sql = f"DELETE FROM {_LEASES} WHERE account = ? AND day = ? AND token = ?"
        params = (account, day_text(day), token)
        changed: int = await self._writer.run(
            lambda conn: conn.execute(sql, params).rowcount, single_write=True
        )
        return changed == 1
