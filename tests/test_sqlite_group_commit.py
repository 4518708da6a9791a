"""The SQLite store's writer: operations queued together share one fsynced commit, each still
succeeds or fails on its own, and nobody is answered before the commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from test_store_contract import result

from paynotify import StoreError
from paynotify._sqlite_writer import GroupCommitWriter
from paynotify._store import ClaimState
from paynotify._store_sqlite import SQLiteStore


async def test_concurrent_claims_share_commits_and_all_stick(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = SQLiteStore(url)
    await store.open()
    results = [result(order_id=f"order-{i}") for i in range(300)]
    claims = await asyncio.gather(*(store.claim(r, lease_seconds=60) for r in results))
    assert {c.state for c in claims} == {ClaimState.NEW}
    await asyncio.gather(
        *(store.complete(r.event_id, c.token or "") for r, c in zip(results, claims, strict=True))
    )
    commits = store._writer.commits
    await store.close()
    assert commits < 600 / 4, f"{commits} commits for 600 operations: not batched"
    reopened = SQLiteStore(url)
    again = await asyncio.gather(*(reopened.claim(r, lease_seconds=60) for r in results))
    assert {c.state for c in again} == {ClaimState.DONE}
    await reopened.close()


def _writer(tmp_path: Path) -> GroupCommitWriter:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
        return conn

    return GroupCommitWriter(connect, "test")


def _insert(key: str, fail: bool = False) -> Callable[[sqlite3.Connection], str]:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (?)", (key,))
        if fail:
            raise sqlite3.IntegrityError("refused on purpose")
        return key

    return op


async def test_a_failing_operation_fails_alone_and_leaves_nothing(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    outcomes = await asyncio.gather(
        *(writer.run(_insert(f"k{i}", fail=(i == 5))) for i in range(10)), return_exceptions=True
    )
    assert isinstance(outcomes[5], StoreError)
    assert "refused on purpose" in str(outcomes[5])
    assert [o for i, o in enumerate(outcomes) if i != 5] == [f"k{i}" for i in range(10) if i != 5]
    keys = await writer.run(lambda conn: sorted(k for (k,) in conn.execute("SELECT k FROM t")))
    assert keys == sorted(f"k{i}" for i in range(10) if i != 5)
    await writer.close()


async def test_a_broken_transaction_fails_the_whole_batch(tmp_path: Path) -> None:
    writer = _writer(tmp_path)

    def commit_behind_the_writers_back(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    await writer.run(lambda conn: None)  # connected, so the next three are queued together
    outcomes = await asyncio.gather(
        writer.run(_insert("a")), writer.run(commit_behind_the_writers_back), writer.run(_insert("b")),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(o, StoreError) for o in outcomes), outcomes
    # The writer keeps serving after a failed batch.
    assert await writer.run(_insert("c")) == "c"
    await writer.close()


async def test_an_unopenable_file_fails_every_caller_and_the_next_batch_retries(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'missing' / 'e.db'}")
    with pytest.raises(StoreError, match="cannot open"):
        await store.open()
    (tmp_path / "missing").mkdir()
    await store.open()
    assert (await store.claim(result(), lease_seconds=60)).state is ClaimState.NEW
    await store.close()


async def test_a_cancelled_caller_does_not_stop_the_writer(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    task = asyncio.ensure_future(writer.run(_insert("x")))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await writer.run(_insert("y")) == "y"
    await writer.close()
