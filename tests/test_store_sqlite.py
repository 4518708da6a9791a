"""SQLite specifics: durability across restarts, schema versions and migration, bad rows and paths.

The behaviour every store shares is in test_store_contract.py."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from paynotify import (
    Attempt,
    ClaimState,
    Kind,
    PaymentResult,
    SQLiteStore,
    Status,
    StoreError,
    make_event_id,
)
from paynotify._stores.history import ATTEMPTS_KEPT
from paynotify._stores.sqlite import PURGE_BATCH


def result(order_id: str = "o-1", status: str = "TRADE_SUCCESS") -> PaymentResult:
    return PaymentResult(
        provider="examplepay",
        account="shop",
        kind=Kind.PAYMENT,
        status=Status.SUCCEEDED,
        provider_status=status,
        order_id=order_id,
        event_id=make_event_id("shop", Kind.PAYMENT, order_id, None, status),
    )


async def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    r = result()
    first = SQLiteStore(url)
    claim = await first.claim(r, lease_seconds=60)
    assert claim.token
    await first.complete(r.event_id, claim.token)
    await first.close()
    second = SQLiteStore(url)
    assert (await second.claim(r, lease_seconds=60)).state is ClaimState.DONE
    await second.close()


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    store = SQLiteStore(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="schema version 99"):
        await store.claim(result(), lease_seconds=60)
    await store.close()


async def test_sqlite_malformed_row_is_a_clear_error(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'e.db'}")
    r = result()
    await store.claim(r, lease_seconds=60)
    await store.close()
    with sqlite3.connect(tmp_path / "e.db") as conn:
        conn.execute("UPDATE paynotify_events SET state = 'exploded'")
    with pytest.raises(StoreError, match=r"stored event [0-9a-f]+ is malformed"):
        await store.get(r.event_id)
    await store.close()


async def test_sqlite_unreachable_path_is_a_store_error(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'missing-dir' / 'e.db'}")
    with pytest.raises(StoreError, match="cannot open"):
        await store.claim(result(), lease_seconds=60)
    await store.close()


def test_sqlite_url_forms() -> None:
    assert SQLiteStore("sqlite:///events.db").path == "events.db"
    assert SQLiteStore("sqlite:////var/lib/events.db").path == "/var/lib/events.db"
    with pytest.raises(StoreError):
        SQLiteStore("sqlite://")


V1_SCHEMA = """
CREATE TABLE paynotify_events (
    event_id TEXT PRIMARY KEY, account TEXT NOT NULL, order_id TEXT NOT NULL, state TEXT NOT NULL,
    token TEXT, lease_until REAL, attempts INTEGER NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, result_json TEXT NOT NULL
);
PRAGMA user_version = 1;
"""


async def test_sqlite_migrates_a_version_1_file_keeping_its_events(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    done = result("paid-before-upgrade")
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute(
            "INSERT INTO paynotify_events VALUES (?, 'shop', ?, 'done', NULL, NULL, 1, 1.0, 1.0, ?)",
            (done.event_id, done.order_id, done.model_dump_json()),
        )
    store = SQLiteStore(f"sqlite:///{path}")
    assert (await store.claim(done, lease_seconds=60)).state is ClaimState.DONE
    event = await store.get(done.event_id)
    assert event is not None
    assert (event.provider, event.kind, event.status) == ("examplepay", "payment", "succeeded")
    assert event.result() == done
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5


async def test_sqlite_migrates_a_version_3_file_to_the_attempt_history(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    r = result("paid-before-the-history")
    store = SQLiteStore(f"sqlite:///{path}")
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    await store.complete(r.event_id, claim.token)
    await store.close()
    with sqlite3.connect(path) as conn:  # back to what version 3 wrote
        conn.executescript(
            "DROP TRIGGER paynotify_attempts_forget; DROP TABLE paynotify_attempts;"
            " DROP TABLE paynotify_audit; PRAGMA user_version = 3;"
        )
    store = SQLiteStore(f"sqlite:///{path}")
    await store.history.add_attempt(r.event_id, Attempt(1.0, 2.0, "replay", None, "h:1", "alice"))
    assert [a.operator for a in await store.history.attempts(r.event_id)] == ["alice"]
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5


async def test_sqlite_schema_creation_is_idempotent_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    stores = [SQLiteStore(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    claims = await asyncio.gather(*(s.claim(result(), lease_seconds=60) for s in stores))
    assert [c.state for c in claims].count(ClaimState.NEW) == 1
    await asyncio.gather(*(s.close() for s in stores))


async def test_purge_deletes_in_batches_and_lets_notifications_through(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = SQLiteStore(url)
    await store.open()
    old = [result(order_id=f"old-{i}") for i in range(2 * PURGE_BATCH + 500)]
    claims = await asyncio.gather(*(store.claim(r, lease_seconds=60) for r in old))
    await asyncio.gather(
        *(store.complete(r.event_id, c.token or "") for r, c in zip(old, claims, strict=True))
    )
    finished: list[str] = []

    async def purge() -> int:
        purged = await store.purge(before=time.time() + 1)
        finished.append("purge")
        return purged

    async def claim() -> None:
        await asyncio.sleep(0)  # queued behind the purge's first batch
        await store.claim(result(order_id="new"), lease_seconds=60)
        finished.append("claim")

    purged, _ = await asyncio.gather(purge(), claim())
    assert purged == len(old)
    assert finished == ["claim", "purge"]  # the notification did not wait for the whole purge
    assert [e.order_id for e in await store.find()] == ["new"]
    await store.close()


def test_find_by_account_uses_an_index_for_the_order_too(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    asyncio.run(_open(f"sqlite:///{path}"))
    with sqlite3.connect(path) as conn:
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT event_id FROM paynotify_events WHERE account = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT 100",
                ("shop",),
            )
        )
    assert "paynotify_events_account" in plan
    assert "TEMP B-TREE" not in plan


async def _open(url: str) -> None:
    store = SQLiteStore(url)
    await store.open()
    await store.close()


def _stored_attempts(path: Path, event_id: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM paynotify_attempts WHERE event_id = ?", (event_id,)
            ).fetchone()[0]
        )


async def test_the_history_caps_lazily_yet_stays_bounded_across_requeues(tmp_path: Path) -> None:
    # The settling writes skip the cap while the event's attempt counter is under ATTEMPTS_KEPT, and
    # a requeue of a dead letter restarts that counter: the requeue caps, so storage stays bounded
    # even for an event dead-lettered again and again after a few attempts each time.
    path = tmp_path / "events.db"
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        r = result("dead-again-and-again")
        for cycle in range(12):
            for n in range(8):
                claim = await store.claim(r, lease_seconds=60)
                assert claim.token
                failed = Attempt.of(1.0, "failed", f"{cycle}.{n}")
                await store.release(r.event_id, claim.token, error="e", attempt=failed)
            claim = await store.claim(r, lease_seconds=60)
            assert claim.token
            dead = Attempt.of(1.0, "dead", f"{cycle}.dead")
            await store.dead_letter(r.event_id, claim.token, error="d", attempt=dead)
            assert await store.requeue(r.event_id)
            assert _stored_attempts(path, r.event_id) < 2 * ATTEMPTS_KEPT
        # Now uncapped in storage (the last requeue capped at ATTEMPTS_KEPT, then more arrived
        # under the counter's threshold): the read still returns the newest ATTEMPTS_KEPT only.
        for n in range(ATTEMPTS_KEPT - 1):
            claim = await store.claim(r, lease_seconds=60)
            assert claim.token
            failed = Attempt.of(1.0, "failed", f"last.{n}")
            await store.release(r.event_id, claim.token, error="e", attempt=failed)
        assert ATTEMPTS_KEPT < _stored_attempts(path, r.event_id) < 2 * ATTEMPTS_KEPT
        found = await store.history.attempts(r.event_id)
        assert len(found) == ATTEMPTS_KEPT
        assert found[0].error == f"last.{ATTEMPTS_KEPT - 2}"
        assert found[-1].error == "11.dead"
    finally:
        await store.close()
