"""The search reads indexes, never the whole table, at 10^6 events (EXPLAIN on SQLite and
PostgreSQL), and a database made by the schema before the search gains them when opened."""

# Test data and EXPLAIN are SQL built from constants and a generated schema name.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _store_backends import drop, isolated_url

from paynotify import open_store
from paynotify._stores import sqlite_schema
from paynotify._stores.postgresql_sql import MIGRATIONS, quote
from paynotify._stores.search import Search, sql_search
from paynotify._stores.sqlite import _search

N = 1_000_000
# One result per row, as a store records it; the ids vary with the row number.
_ROW_JSON = (
    "json_object('order_id', 'ORD-' || n, 'transaction_id', 'T' || n, 'refund_id',"
    " CASE WHEN n % 10 = 0 THEN 'RF' || n END, 'provider_refund_id', CASE WHEN n % 10 = 0 THEN 'PR' || n END)"
)


def _old_sqlite(path: Path, rows: int) -> None:
    """A database as the schema before the search made it (version 3), with `rows` events."""
    conn = sqlite3.connect(path)
    conn.execute(sqlite_schema._CREATE)
    for statement in sqlite_schema._INDEXES.strip().splitlines():
        conn.execute(statement)
    for statement in sqlite_schema._EXPECTATIONS.split(";\n"):
        conn.execute(statement)
    conn.execute(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?)"
        " INSERT INTO paynotify_events (event_id, account, provider, kind, status, order_id, state,"
        " attempts, created_at, updated_at, result_json)"
        " SELECT printf('%032x', n * 2654435761), 'shop', 'examplepay', 'payment', 'succeeded',"
        f" 'ORD-' || n, 'done', 1, n, n, {_ROW_JSON} FROM c",
        (rows,),
    )
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()


def _sqlite_plan(conn: sqlite3.Connection, text: str) -> str:
    condition, params = _search(text)
    sql = (
        "EXPLAIN QUERY PLAN SELECT event_id FROM paynotify_events WHERE 1 = 1 AND "
        + condition
        + " ORDER BY created_at DESC, event_id DESC LIMIT ?"
    )
    return "\n".join(row[3] for row in conn.execute(sql, (*params, 50)))


@pytest.mark.timeout(300)
async def test_sqlite_migrates_an_old_database_and_searches_it_through_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_sqlite(path, N)
    store = open_store(f"sqlite:///{path}")
    try:
        found = await store.find(search="T777777")
        assert [e.order_id for e in found] == ["ORD-777777"]
        assert [e.order_id for e in await store.find(search="RF500000")] == ["ORD-500000"]
        assert [e.order_id for e in await store.find(search="pr500000")] == []  # exact ids keep case
        assert {e.order_id for e in await store.find(search="ord-12345", limit=20)} == {
            "ORD-12345", *(f"ORD-12345{i}" for i in range(10))}  # fmt: skip
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.SCHEMA_VERSION
    plan = _sqlite_plan(conn, "a1b2c3d4")
    conn.close()
    for index in ("order_lower", "transaction_id", "refund_id", "provider_refund_id"):
        assert f"paynotify_events_{index}" in plan, plan
    assert "sqlite_autoindex_paynotify_events_1" in plan, plan  # the event-id prefix: the key
    full_scans = [line for line in plan.splitlines() if line.startswith("SCAN paynotify_events")]
    assert not [line for line in full_scans if "INDEX" not in line], plan


async def _pg_old_schema(url: str, rows: int) -> tuple[object, str]:
    import asyncpg

    base, _, schema = url.rpartition("schema=")
    conn = await asyncpg.connect(base.rstrip("?&"))
    quoted = quote(schema)
    await conn.execute(f"CREATE SCHEMA {quoted}")
    await conn.execute(
        f"CREATE TABLE {quoted}.paynotify_schema (id integer PRIMARY KEY, version integer NOT NULL)"
    )
    for migration in MIGRATIONS[:2]:
        for statement in migration(quoted):
            await conn.execute(statement)
    await conn.execute(f"INSERT INTO {quoted}.paynotify_schema VALUES (1, 2)")
    row_json = (
        "json_build_object('order_id', 'ORD-' || n, 'transaction_id', 'T' || n, 'refund_id',"
        " CASE WHEN n % 10 = 0 THEN 'RF' || n END, 'provider_refund_id',"
        " CASE WHEN n % 10 = 0 THEN 'PR' || n END)::text"
    )
    await conn.execute(
        f"INSERT INTO {quoted}.paynotify_events (event_id, account, provider, kind, status, order_id,"
        " state, attempts, created_at, updated_at, result_json)"
        " SELECT md5(n::text), 'shop', 'examplepay', 'payment', 'succeeded', 'ORD-' || n, 'done', 1, n, n,"
        f" {row_json} FROM generate_series(1, $1) AS n",
        rows,
    )
    return conn, quoted


@pytest.mark.timeout(600)
async def test_postgresql_migrates_an_old_schema_and_searches_it_through_indexes(tmp_path: Path) -> None:
    url = isolated_url("postgresql", tmp_path)
    conn, quoted = await _pg_old_schema(url, N)
    store = open_store(url + "&timeout=120")
    try:
        await store.open()  # migration 3 builds the search's indexes over the existing rows
        assert [e.order_id for e in await store.find(search="T777777")] == ["ORD-777777"]
        assert [e.order_id for e in await store.find(search="PR500000")] == ["ORD-500000"]
        assert len(await store.find(search="ord-12345", limit=20)) == 11
        await conn.execute(f"ANALYZE {quoted}.paynotify_events")  # type: ignore[attr-defined]
        events = f"{quoted}.paynotify_events"
        condition, params = sql_search(
            Search.of("a1b2c3d4"), events, ids=_pg_ids(), at_least="~>=~", below="~<~"
        )
        for i in range(condition.count("?")):
            condition = condition.replace("?", f"${i + 1}", 1)
        sql = f"SELECT event_id FROM {events} WHERE {condition} ORDER BY created_at DESC LIMIT 50"
        # The generic plan is the one a prepared statement settles on after five runs: it must use
        # the indexes without seeing the values.
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")  # type: ignore[attr-defined]
            rows = await conn.fetch(f"EXPLAIN {sql}", *params)  # type: ignore[attr-defined]
            plan = "\n".join(r[0] for r in rows)
            assert "Seq Scan" not in plan, plan
            for index in ("order_lower", "transaction", "refund", "provider_refund", "pkey"):
                assert f"paynotify_events_{index}" in plan, plan
    finally:
        await store.close()
        await conn.close()  # type: ignore[attr-defined]
        await drop("postgresql", url)


def _pg_ids() -> tuple[str, ...]:
    from paynotify._stores.postgresql_sql import SEARCH_IDS

    return SEARCH_IDS
