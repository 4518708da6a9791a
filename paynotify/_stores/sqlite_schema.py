"""The SQLite store's schema and its migrations (`PRAGMA user_version`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from paynotify._errors import StoreError

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 5

# due_at is the time a dispatcher may take the event: next_attempt_at while PENDING, lease_until
# while IN_FLIGHT (an expired lease is due), NULL otherwise. One indexed column keeps acquire cheap.
_CREATE = """
CREATE TABLE IF NOT EXISTS paynotify_events (
    event_id         TEXT PRIMARY KEY,
    account          TEXT NOT NULL,
    provider         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    state            TEXT NOT NULL,
    token            TEXT,
    lease_until      REAL,
    due_at           REAL,
    attempts         INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    next_attempt_at  REAL,
    last_error       TEXT,
    done_subscribers TEXT NOT NULL DEFAULT '[]',
    result_json      TEXT NOT NULL
);
"""
# paynotify_events_account serves `find(account=...)` newest first: with only the order index, SQLite
# sorted every row of the account (6 s at 10^6 events, measured). paynotify_events_state does the
# same for `find(states=[...])`: through the purge index, a page of `done` events sorted nearly every
# row (2.3 s at 10^6, measured, bench/console_pages.py).
_INDEXES = """
CREATE INDEX IF NOT EXISTS paynotify_events_order ON paynotify_events (account, order_id);
CREATE INDEX IF NOT EXISTS paynotify_events_account ON paynotify_events (account, created_at);
CREATE INDEX IF NOT EXISTS paynotify_events_created ON paynotify_events (created_at);
CREATE INDEX IF NOT EXISTS paynotify_events_due ON paynotify_events (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS paynotify_events_purge ON paynotify_events (state, updated_at);
CREATE INDEX IF NOT EXISTS paynotify_events_state ON paynotify_events (state, created_at);
"""
# Version 3 added the expectations (the sweeper's); due_at is next_due while free, lease_until while
# leased, so `take` reads one index and an expired lease is due by itself.
_EXPECTATIONS = """
CREATE TABLE IF NOT EXISTS paynotify_expectations (
    account     TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    refund_id   TEXT NOT NULL,
    amount      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    until_at    REAL NOT NULL,
    paid_at     REAL,
    next_due    REAL NOT NULL,
    attempts    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    outcome     TEXT,
    lease_token TEXT,
    lease_until REAL,
    last_error  TEXT,
    due_at      REAL,
    PRIMARY KEY (account, order_id, refund_id)
);
CREATE INDEX IF NOT EXISTS paynotify_expectations_due ON paynotify_expectations (due_at)
    WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS paynotify_expectations_created ON paynotify_expectations (created_at)
"""
# Version 5 added the reconciliation reports (one per account and Beijing day, replaced by a later
# run) and their leases (one per account and day across processes). Version 4 added the attempt history.
_RECONCILIATIONS = """
CREATE TABLE IF NOT EXISTS paynotify_reconciliations (
    account     TEXT NOT NULL,
    day         TEXT NOT NULL,
    provider    TEXT NOT NULL,
    run_at      REAL NOT NULL,
    heal        INTEGER NOT NULL,
    healed      INTEGER NOT NULL,
    counts_json TEXT NOT NULL,
    report_json TEXT NOT NULL,
    PRIMARY KEY (account, day)
);
CREATE INDEX IF NOT EXISTS paynotify_reconciliations_day ON paynotify_reconciliations (day, account);
CREATE TABLE IF NOT EXISTS paynotify_reconciliation_leases (
    account     TEXT NOT NULL,
    day         TEXT NOT NULL,
    token       TEXT NOT NULL,
    lease_until REAL NOT NULL,
    PRIMARY KEY (account, day)
)
"""
# Version 4 added each event's attempt history (its newest rows first through the index; the trigger
# deletes an event's rows with it, so every purge keeps them bounded) and the audit log, whose ids
# sort in time order (paynotify._stores.history).
_HISTORY = """
CREATE TABLE IF NOT EXISTS paynotify_attempts (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    instance    TEXT NOT NULL,
    operator    TEXT
);
CREATE INDEX IF NOT EXISTS paynotify_attempts_event ON paynotify_attempts (event_id, id);
CREATE TRIGGER IF NOT EXISTS paynotify_attempts_forget AFTER DELETE ON paynotify_events
    BEGIN DELETE FROM paynotify_attempts WHERE event_id = old.event_id; END;
CREATE TABLE IF NOT EXISTS paynotify_audit (
    id          TEXT PRIMARY KEY,
    at          REAL NOT NULL,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    event_ids   TEXT NOT NULL,
    count       INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    selection   TEXT
);
CREATE INDEX IF NOT EXISTS paynotify_audit_at ON paynotify_audit (at)
"""
# Version 1 (paynotify 0.1 development builds) lacked the queue and per-subscriber columns.
_FROM_V1 = """
ALTER TABLE paynotify_events ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE paynotify_events ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE paynotify_events ADD COLUMN status TEXT NOT NULL DEFAULT '';
ALTER TABLE paynotify_events ADD COLUMN due_at REAL;
ALTER TABLE paynotify_events ADD COLUMN next_attempt_at REAL;
ALTER TABLE paynotify_events ADD COLUMN last_error TEXT;
ALTER TABLE paynotify_events ADD COLUMN done_subscribers TEXT NOT NULL DEFAULT '[]';
UPDATE paynotify_events SET
    provider = coalesce(json_extract(result_json, '$.provider'), ''),
    kind = coalesce(json_extract(result_json, '$.kind'), ''),
    status = coalesce(json_extract(result_json, '$.status'), ''),
    due_at = CASE WHEN state = 'in_flight' THEN lease_until END;
"""


# The search's indexes (find(search=...)). The ids are virtual generated columns read from the
# stored result, so no write statement changes and a database of any earlier version gains them by
# ALTER TABLE (existing rows are indexed as CREATE INDEX runs). lower() folds ASCII letters only
# (SQLite without ICU): other letters of an order id match case-sensitively.
_SEARCH_COLUMNS = ("transaction_id", "refund_id", "provider_refund_id")
_SEARCH_INDEXES = (
    "CREATE INDEX IF NOT EXISTS paynotify_events_order_lower ON paynotify_events (lower(order_id))",
    *(
        f"CREATE INDEX IF NOT EXISTS paynotify_events_{column} ON paynotify_events ({column})"
        f" WHERE {column} IS NOT NULL"
        for column in _SEARCH_COLUMNS
    ),
)


def _add_search(conn: sqlite3.Connection) -> None:
    """Add the search's columns where missing (any earlier schema) and its indexes."""
    have = {row[1] for row in conn.execute("PRAGMA table_xinfo(paynotify_events)")}
    for column in _SEARCH_COLUMNS:
        if column not in have:
            conn.execute(
                f"ALTER TABLE paynotify_events ADD COLUMN {column} TEXT"
                f" GENERATED ALWAYS AS (json_extract(result_json, '$.{column}')) VIRTUAL"
            )
    for statement in _SEARCH_INDEXES:
        conn.execute(statement)


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken up front, so two writers never deadlock upgrading a read lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    else:
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Create or upgrade the schema in one transaction; safe when several processes start at once."""
    with _immediate(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {path!r} has schema version {version}, newer than this paynotify "
                f"understands ({SCHEMA_VERSION}); upgrade paynotify"
            )
        if version == 0:
            conn.execute(_CREATE)
        elif version == 1:
            for statement in _FROM_V1.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
        for statement in _INDEXES.strip().splitlines():
            conn.execute(statement)
        for statement in _EXPECTATIONS.split(";\n"):
            conn.execute(statement)
        for statement in _HISTORY.split(";\n"):
            conn.execute(statement)
        _add_search(conn)
        for statement in _RECONCILIATIONS.split(";\n"):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
