"""The PostgreSQL store's attempt history and audit log (migration 4), on the store's pool."""

# Statements are built only from constants and the checked, quoted schema name; every value is a
# bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paynotify._stores.history import ATTEMPTS_KEPT, Attempt, AuditEntry, EventHistory, batches, bounded

if TYPE_CHECKING:
    from paynotify._stores.postgresql import PostgresStore

__all__ = ["PostgresHistory", "with_attempt"]

_ATTEMPT_COLUMNS = "started_at, finished_at, outcome, error, instance, operator"
_AUDIT_COLUMNS = "id, at, operator, action, event_ids, count, outcome, selection"


def _cap(attempts: str) -> str:
    # The statement's sub-statements share one snapshot: the delete does not see the row just
    # added, so it keeps ATTEMPTS_KEPT - 1 of the others.
    return (
        f"DELETE FROM {attempts} WHERE event_id = $1 AND id <= (SELECT id FROM {attempts}"
        f" WHERE event_id = $1 ORDER BY id DESC LIMIT 1 OFFSET {ATTEMPTS_KEPT - 1})"
    )


def with_attempt(update: str, params: int, schema_sql: str) -> str:
    """`update` (a write whose $1 is the event id, with `params` parameters) and the attempt after
    them, added to the event's history in the same statement: one round trip, one commit. It
    answers how many events the write changed (`settled`), as a plain write's status does."""
    attempts = f"{schema_sql}.paynotify_attempts"
    values = ", ".join(f"${params + i}" for i in range(1, 7))
    # For an event that exists (with or without the lease): an unknown one is no error, as before.
    return f"""
        WITH settled AS ({update} RETURNING 1),
             added AS (INSERT INTO {attempts} (event_id, {_ATTEMPT_COLUMNS}) SELECT $1, {values}
                       WHERE EXISTS (SELECT FROM {schema_sql}.paynotify_events WHERE event_id = $1)),
             capped AS ({_cap(attempts)})
        SELECT count(*) AS settled FROM settled"""


def _entry(row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(row["at"], row["operator"], row["action"], tuple(row["event_ids"]), row["count"],
                      row["outcome"], row["selection"], row["id"])  # fmt: skip


class PostgresHistory(EventHistory):
    def __init__(self, store: PostgresStore, schema_sql: str) -> None:
        self._store = store
        attempts = f"{schema_sql}.paynotify_attempts"
        self._audit_table = f"{schema_sql}.paynotify_audit"
        events = f"{schema_sql}.paynotify_events"
        self._add = f"""
            WITH added AS (INSERT INTO {attempts} (event_id, {_ATTEMPT_COLUMNS})
                           SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS
                               (SELECT FROM {events} WHERE event_id = $1)),
                 capped AS ({_cap(attempts)})
            SELECT 1"""
        # As many as are kept: the writes keep them bounded.
        self._attempts = f"SELECT {_ATTEMPT_COLUMNS} FROM {attempts} WHERE event_id = $1 ORDER BY id DESC"
        # The rows of a bulk action: one statement, for the events that exist.
        self._add_many = f"""
            INSERT INTO {attempts} (event_id, {_ATTEMPT_COLUMNS})
            SELECT e.event_id, $2, $3, $4, $5, $6, $7 FROM {events} AS e WHERE e.event_id = ANY($1::text[])"""
        self._cap_many = f"""
            DELETE FROM {attempts} AS a USING unnest($1::text[]) AS i (event_id)
             WHERE a.event_id = i.event_id AND a.id <= (SELECT id FROM {attempts} AS b
                   WHERE b.event_id = i.event_id ORDER BY id DESC LIMIT 1 OFFSET {ATTEMPTS_KEPT})"""
        self._insert_audit = (
            f"INSERT INTO {self._audit_table} ({_AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )

    async def add_attempt(self, event_id: str, attempt: Attempt) -> None:
        started, finished, outcome, error, instance, operator = attempt.values()
        await self._store._execute(self._add, event_id, started, finished, outcome, bounded(error), instance,
                                   operator)  # fmt: skip

    async def attempts(self, event_id: str) -> list[Attempt]:
        rows = await self._store._fetch(self._attempts, event_id)
        return [Attempt(*(row[name.strip()] for name in _ATTEMPT_COLUMNS.split(","))) for row in rows]

    async def audit(self, entry: AuditEntry, *, events: Sequence[str] | None = None) -> None:
        ids = list(entry.event_ids if events is None else events)
        row = entry.attempt().values()
        values = (entry.id, entry.at, entry.operator, entry.action, list(entry.event_ids), entry.count,
                  entry.outcome, entry.selection)  # fmt: skip

        async def write(conn: Any, batch: list[str], first: bool) -> None:
            async with conn.transaction():
                if first:
                    await conn.execute(self._insert_audit, *values)
                if batch:
                    await conn.execute(self._add_many, batch, *row)
                    await conn.execute(self._cap_many, batch)

        for n, batch in enumerate(batches(ids)):
            await self._store._in_connection(functools.partial(write, batch=list(batch), first=n == 0))

    async def audit_log(
        self, *, since: float | None = None, before_id: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        sql = (
            f"SELECT {_AUDIT_COLUMNS} FROM {self._audit_table}"
            " WHERE ($1::double precision IS NULL OR at >= $1) AND ($2::text IS NULL OR id < $2)"
            " ORDER BY id DESC LIMIT $3"
        )
        return [_entry(row) for row in await self._store._fetch(sql, since, before_id, max(limit, 0))]

    async def forget_audit(self, *, before: float) -> int:
        return await self._store._execute(f"DELETE FROM {self._audit_table} WHERE at < $1", before)
