"""The SQLite store's attempt history and audit log (schema version 4), through the store's writer."""

# Statements are built only from constants; every value is a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from paynotify._stores.history import ATTEMPTS_KEPT, Attempt, AuditEntry, EventHistory, batches, bounded
from paynotify._stores.sqlite_writer import GroupCommitWriter

__all__ = ["SQLiteHistory", "cap_attempts", "write_attempt"]

_INSERT = (
    "INSERT INTO paynotify_attempts (event_id, started_at, finished_at, outcome, error, instance, operator)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# Past the newest ATTEMPTS_KEPT: a walk of the event's index entries (~4.4 us, measured), so the
# settling writes run it only once the event can hold that many rows (`write_attempt`).
_CAP = (
    "DELETE FROM paynotify_attempts WHERE event_id = ? AND id <= (SELECT id FROM paynotify_attempts"
    f" WHERE event_id = ? ORDER BY id DESC LIMIT 1 OFFSET {ATTEMPTS_KEPT})"
)
_ATTEMPTS = (
    "SELECT started_at, finished_at, outcome, error, instance, operator FROM paynotify_attempts"
    f" WHERE event_id = ? ORDER BY id DESC LIMIT {ATTEMPTS_KEPT}"  # storage may hold up to 2x (below)
)
_AUDIT_COLUMNS = "id, at, operator, action, event_ids, count, outcome, selection"
_INSERT_AUDIT = f"INSERT INTO paynotify_audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


_INSERT_IF_KNOWN = (
    "INSERT INTO paynotify_attempts (event_id, started_at, finished_at, outcome, error, instance, operator)"
    " SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM paynotify_events WHERE event_id = ?)"
)


def write_attempt(
    conn: sqlite3.Connection,
    event_id: str,
    attempt: Attempt,
    *,
    check: bool = False,
    leases: int | None = None,
) -> None:
    """Add `attempt` to the event's history inside the caller's write (no commit of its own); with
    `check`, only if the event exists (the settling writes know it does).

    `leases` is the event's `attempts` counter as the settling write left it (None when unknown).
    The cap runs unless that counter is under ATTEMPTS_KEPT: each lease ends in one row at most, the
    counter grows by one a lease and is reset only by `requeue`, which caps (`cap_attempts`), as
    every operator row and `add_attempt` does. So at most ATTEMPTS_KEPT - 1 rows arrive uncapped
    after a cap: an event stores fewer than 2 * ATTEMPTS_KEPT rows, the read returns the newest
    ATTEMPTS_KEPT, and an event delivered in under ATTEMPTS_KEPT attempts (nearly all) never pays
    for the cap's walk."""
    started, finished, outcome, error, instance, operator = attempt.values()
    values = (event_id, started, finished, outcome, bounded(error), instance, operator)
    if check:
        conn.execute(_INSERT_IF_KNOWN, (*values, event_id))
    else:
        conn.execute(_INSERT, values)
    if leases is None or leases >= ATTEMPTS_KEPT:
        cap_attempts(conn, event_id)


def cap_attempts(conn: sqlite3.Connection, event_id: str) -> None:
    """Delete the event's history rows past its newest ATTEMPTS_KEPT, inside the caller's write."""
    conn.execute(_CAP, (event_id, event_id))


def _entry(row: Sequence[Any]) -> AuditEntry:
    entry_id, at, operator, action, ids, count, outcome, selection = row
    return AuditEntry(float(at), str(operator), str(action), tuple(json.loads(str(ids))), int(str(count)),
                      str(outcome), None if selection is None else str(selection), str(entry_id))  # fmt: skip


class SQLiteHistory(EventHistory):
    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer

    async def add_attempt(self, event_id: str, attempt: Attempt) -> None:
        await self._writer.run(lambda conn: write_attempt(conn, event_id, attempt, check=True))

    async def attempts(self, event_id: str) -> list[Attempt]:
        def read(conn: sqlite3.Connection) -> list[Attempt]:
            return [Attempt(*row) for row in conn.execute(_ATTEMPTS, (event_id,))]

        return await self._writer.run(read, on_thread=True)

    async def audit(self, entry: AuditEntry, *, events: Sequence[str] | None = None) -> None:
        row = entry.attempt()
        values = (entry.id, entry.at, entry.operator, entry.action, json.dumps(list(entry.event_ids)),
                  entry.count, entry.outcome, entry.selection)  # fmt: skip

        ids = entry.event_ids if events is None else events
        for n, batch in enumerate(batches(ids)):

            def audit(conn: sqlite3.Connection, batch: Sequence[str] = batch, first: bool = n == 0) -> None:
                if first:
                    conn.execute(_INSERT_AUDIT, values)
                for event_id in batch:
                    write_attempt(conn, event_id, row, check=True)

            await self._writer.run(audit, on_thread=True)

    async def audit_log(
        self, *, since: float | None = None, before_id: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        where, params = ["1 = 1"], list[object]()
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = (
            f"SELECT {_AUDIT_COLUMNS} FROM paynotify_audit WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            return [_entry(row) for row in conn.execute(sql, (*params, max(limit, 0)))]

        return await self._writer.run(read, on_thread=True)

    async def forget_audit(self, *, before: float) -> int:
        def forget(conn: sqlite3.Connection) -> int:
            return int(conn.execute("DELETE FROM paynotify_audit WHERE at < ?", (before,)).rowcount)

        return await self._writer.run(forget, on_thread=True)
