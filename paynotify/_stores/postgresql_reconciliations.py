"""The PostgreSQL store's reconciliation reports and leases, on the store's pool (its deadlines and
error wording)."""

# Statements are built only from constants and the checked, quoted schema name; every value is a
# bind parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

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
from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

if TYPE_CHECKING:
    from paynotify._stores.postgresql import PostgresStore

__all__ = ["PostgresReconciliations"]

_NAMES = tuple(name.strip() for name in COLUMNS.split(","))


def _report(row: Mapping[str, Any]) -> StoredReport:
    return from_row(row[name] for name in _NAMES)


class PostgresReconciliations(ReconciliationStore):
    def __init__(self, store: PostgresStore, schema_sql: str) -> None:
        self._store = store
        reports = self._reports = f"{schema_sql}.paynotify_reconciliations"
        leases = f"{schema_sql}.paynotify_reconciliation_leases"
        self._save = (
            f"INSERT INTO {reports} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (account, day) DO UPDATE SET provider = EXCLUDED.provider,"
            " run_at = EXCLUDED.run_at, heal = EXCLUDED.heal, healed = EXCLUDED.healed,"
            " counts_json = EXCLUDED.counts_json, report_json = EXCLUDED.report_json"
        )
        self._get = f"SELECT {COLUMNS} FROM {reports} WHERE account = $1 AND day = $2"
        self._find = (
            f"SELECT {SUMMARY_COLUMNS} FROM {reports} WHERE day >= $1 AND ($2::text IS NULL OR account = $2)"
            ' ORDER BY day DESC, account COLLATE "C" LIMIT $3'
        )
        self._latest = (
            f'SELECT DISTINCT ON (account COLLATE "C") {SUMMARY_COLUMNS} FROM {reports}'
            ' ORDER BY account COLLATE "C", day DESC'
        )
        # ON CONFLICT DO UPDATE locks the current row and tests it: one winner of a run-out lease.
        self._take = (
            f"INSERT INTO {leases} AS l (account, day, token, lease_until) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (account, day) DO UPDATE SET token = EXCLUDED.token,"
            " lease_until = EXCLUDED.lease_until WHERE l.lease_until <= $5"
        )
        self._release = f"DELETE FROM {leases} WHERE account = $1 AND day = $2 AND token = $3"

    async def save_report(self, report: StoredReport) -> None:
        check_report(report)
        values = list(report.columns())
        values[4] = report.heal
        await self._store._execute(self._save, *values)

    async def report(self, account: str, day: date | str) -> StoredReport | None:
        row = await self._store._fetchrow(self._get, account, day_text(day))
        return None if row is None else _report(row)

    async def reports(
        self, *, account: str | None = None, since: date | str | None = None, limit: int = 100
    ) -> list[StoredReport]:
        start = day_text(since) if since is not None else ""
        return [_report(row) for row in await self._store._fetch(self._find, start, account, limit)]

    async def latest_reports(self) -> list[StoredReport]:
        return [_report(row) for row in await self._store._fetch(self._latest)]

    async def take_lease(
        self, account: str, day: date | str, *, seconds: float, now: float | None = None
    ) -> str | None:
        check_key(account)
        t = _now() if now is None else now
        token = new_token()
        changed = await self._store._execute(self._take, account, day_text(day), token, t + seconds, t)
        return token if changed == 1 else None

    async def release_lease(self, account: str, day: date | str, token: str) -> bool:
        return await self._store._execute(self._release, account, day_text(day), token) == 1
