"""PostgreSQL migration 4 (the attempt history and the audit log) on a schema at version 3."""

# The schema names are the fixture's own, quoted: test SQL, no user input.
# ruff: noqa: S608

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from test_store_postgres import admin, backend, base, result, schemas, stores

import paynotify._stores.postgresql as pg
from paynotify import Attempt, EventState
from paynotify._stores.postgresql import PostgresStore

__all__ = ["admin", "backend", "base", "schemas", "stores"]  # the fixtures, shared


async def test_migration_4_adds_the_history_to_a_version_3_schema(
    stores: Callable[..., PostgresStore],
    schemas: Callable[[], str],
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = schemas()
    with monkeypatch.context() as patched:
        patched.setattr(pg, "MIGRATIONS", pg.MIGRATIONS[:3])
        patched.setattr(pg, "SCHEMA_VERSION", 3)
        old = stores(schema)
        r = result()
        await old.enqueue(r)
        await old.close()
    assert await admin.fetchval(f'SELECT version FROM "{schema}".paynotify_schema') == 3
    new = stores(schema)
    await new.history.add_attempt(r.event_id, Attempt(1.0, 2.0, "retry", None, "h:1", "alice"))
    assert [a.operator for a in await new.history.attempts(r.event_id)] == ["alice"]
    assert await admin.fetchval(f'SELECT version FROM "{schema}".paynotify_schema') == pg.SCHEMA_VERSION
    assert await new.purge(before=time.time() + 1, states=[EventState.PENDING]) == 1
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".paynotify_attempts') == 0
