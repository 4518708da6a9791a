"""The SQLite store's writer: operations queued together share one fsynced commit, each still
succeeds or fails on its own, and nobody is answered before the commit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_store_contract import result

from paynotify import StoreError
from paynotify._stores.base import Claim, ClaimState
from paynotify._stores.sqlite import SQLiteStore
from paynotify._stores.sqlite_writer import BUSY_TIMEOUT_MS, GroupCommitWriter


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


async def test_statements_run_on_the_loop_and_searches_on_the_thread(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    here = threading.current_thread()
    inline = await writer.run(lambda conn: threading.current_thread())
    threaded = await writer.run(lambda conn: threading.current_thread(), on_thread=True)
    assert inline is here
    assert threaded is not here
    await writer.close()


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = SQLiteStore(url)
    await store.open()
    other = sqlite3.connect(tmp_path / "e.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    claim = asyncio.ensure_future(store.claim(result(), lease_seconds=60))
    started = time.monotonic()
    for _ in range(20):  # the claim's first step runs in the first of these turns
        await asyncio.sleep(0.005)
    # Waiting for the lock on the loop would have held it for the whole busy timeout (10 s) here;
    # the bound tells that apart from a loop that kept turning, whatever this machine's speed.
    assert time.monotonic() - started < BUSY_TIMEOUT_MS / 1000 / 2
    assert not claim.done()
    other.execute("COMMIT")
    other.close()
    assert (await asyncio.wait_for(claim, 5)).state is ClaimState.NEW
    assert (await store.claim(result(), lease_seconds=60)).state is ClaimState.IN_FLIGHT
    await store.close()


def test_a_second_event_loop_is_served_while_the_first_is_busy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = SQLiteStore(url)
    first = [result(order_id=f"a-{i}") for i in range(200)]
    second = [result(order_id=f"b-{i}") for i in range(50)]
    outcomes: list[ClaimState] = []

    def other_loop() -> None:
        async def claims() -> None:
            for r in second:
                outcomes.append((await store.claim(r, lease_seconds=60)).state)

        asyncio.run(claims())

    async def main() -> list[Claim]:
        thread = threading.Thread(target=other_loop)
        claims = asyncio.gather(*(store.claim(r, lease_seconds=60) for r in first))
        thread.start()
        done = await claims
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        return done

    claimed = asyncio.run(main())
    assert {c.state for c in claimed} == {ClaimState.NEW}
    assert outcomes == [ClaimState.NEW] * len(second)

    async def check() -> set[ClaimState]:
        again = [(await store.claim(r, lease_seconds=60)).state for r in first + second]
        await store.close()
        return set(again)

    assert asyncio.run(check()) == {ClaimState.IN_FLIGHT}


def test_a_loop_closed_with_work_in_flight_leaves_the_store_usable(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'e.db'}")
    asyncio.run(store.open())
    loop = asyncio.new_event_loop()
    task = loop.create_task(store.claim(result(order_id="abandoned"), lease_seconds=60))
    loop.run_until_complete(asyncio.sleep(0))  # the claim ran; its commit is on the thread
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()

    async def later() -> ClaimState:
        state = (await store.claim(result(order_id="later"), lease_seconds=60)).state
        await store.close()
        return state

    assert asyncio.run(later()) is ClaimState.NEW


async def test_a_claim_is_answered_before_its_commit_and_acknowledged_only_after(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'e.db'}")
    await store.open()
    event = result()
    commits = store._writer.commits
    claim = await store.claim(event, lease_seconds=60)
    assert claim.state is ClaimState.NEW
    assert store._writer.commits == commits  # answered before the commit...
    other = sqlite3.connect(tmp_path / "e.db")
    assert other.execute("SELECT count(*) FROM paynotify_events").fetchone() == (0,)  # ...not yet visible
    assert (await store.claim(event, lease_seconds=60)).state is ClaimState.IN_FLIGHT  # but to this store
    await store.complete(event.event_id, claim.token or "")
    assert other.execute("SELECT state FROM paynotify_events").fetchall() == [("done",)]
    other.close()
    await store.close()


async def test_a_claim_whose_commit_fails_makes_its_completion_fail(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'e.db'}")
    await store.open()
    event = result()

    def roll_back_everything(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")

    claim, broken = await asyncio.gather(
        store.claim(event, lease_seconds=60), store._writer.run(roll_back_everything), return_exceptions=True
    )
    assert isinstance(claim, Claim)
    assert claim.state is ClaimState.NEW
    assert isinstance(broken, StoreError)
    with pytest.raises(StoreError, match="claim was lost"):
        await store.complete(event.event_id, claim.token or "")
    # Nothing was recorded, so the provider's retry is delivered afresh.
    assert (await store.claim(event, lease_seconds=60)).state is ClaimState.NEW
    await store.close()


async def test_single_write_operations_still_fail_alone(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    await writer.run(_insert("k5"))
    outcomes = await asyncio.gather(
        *(writer.run(_insert(f"k{i}"), single_write=True) for i in range(10)), return_exceptions=True
    )
    assert isinstance(outcomes[5], StoreError)  # a duplicate key: SQLite undoes that statement alone
    assert [o for i, o in enumerate(outcomes) if i != 5] == [f"k{i}" for i in range(10) if i != 5]
    keys = await writer.run(lambda conn: sorted(k for (k,) in conn.execute("SELECT k FROM t")))
    assert keys == sorted(f"k{i}" for i in range(10))
    await writer.close()


async def test_a_single_write_that_loses_the_transaction_fails_the_whole_batch(tmp_path: Path) -> None:
    writer = _writer(tmp_path)

    def transaction_lost(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # as SQLite does itself on a full disk or an I/O error
        raise sqlite3.OperationalError("database or disk is full")

    await writer.run(lambda conn: None)
    outcomes = await asyncio.gather(
        writer.run(_insert("a"), single_write=True),
        writer.run(transaction_lost, single_write=True),
        writer.run(_insert("b"), single_write=True),
        return_exceptions=True,
    )
    assert all(isinstance(o, StoreError) for o in outcomes), outcomes
    assert await writer.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()) == (0,)
    await writer.close()
