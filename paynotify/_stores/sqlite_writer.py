"""One SQLite connection per process, committing whatever arrives together (group commit).

An acknowledged notification must survive a power cut, so every commit is fsynced. One fsync per
operation caps a store at a few hundred notifications a second; instead, the operations of a batch
share one transaction, and the batch commits once. Each fails alone: one that changes at most one
row relies on SQLite undoing a failed statement by itself (`single_write`), any other runs in a
SAVEPOINT of its own. Callers are answered only after that commit, so nothing is reported written
before it is durable; the one exception is an operation that only needs to be visible
(`visible_is_enough`, the store's claim), answered once it has run.

Where the work runs. A notification's operations (claim, complete) are one or two indexed
single-row statements, ~5 us each: they run on the event loop, inside a write transaction this
process already holds, so they never wait for a lock. What can wait runs on the writer's thread:
opening the file, taking the write lock when another process holds it, the fsynced COMMIT, and
operations that may read many rows (`on_thread=True`: searches, purges). Handing every statement
to a thread cost more than the statement (two thread switches, and the GIL passed back and forth
per statement: measured in docs/benchmarks.md).

The cycle: an operation arriving while nothing is in flight begins a transaction on the loop (if
SQLite grants the write lock at once; otherwise the thread waits for it, up to the busy timeout),
runs, and schedules the commit for the loop's next turn, so everything that runs in the same turn
joins it. Operations arriving while a commit is on the thread wait for it and form the next batch.

One event loop drives the writer at a time (it moves to another loop when idle: `asyncio.run`
per CLI command, per test). An operation from a second loop while the first has work in flight
runs on a connection of its own in a worker thread, serialized by SQLite's locking: correct, not
fast.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from paynotify._errors import StoreError

__all__ = ["GroupCommitWriter"]

T = TypeVar("T")

MAX_BATCH = 256
"""Operations committed together at most; bounds how long one transaction holds the write lock."""
BUSY_TIMEOUT_MS = 10_000
"""How long the thread waits for another process's write lock before failing the batch."""


@dataclass(slots=True)
class _Operation(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    on_thread: bool
    visible_is_enough: bool
    single_write: bool
    outcome: tuple[bool, Any] = (False, None)


def _resolve(operations: list[_Operation[Any]]) -> None:
    for operation in operations:
        future = operation.future
        if future.done():  # the caller was cancelled; the operation still ran (or failed) as queued
            continue
        ok, value = operation.outcome
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class GroupCommitWriter:
    """Runs `fn(connection)` calls in group-committed transactions; `connect` opens the connection
    (on the writer's thread) when first needed, and again after it failed."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], describe: str) -> None:
        self._connect = connect
        self._describe = describe
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        # Off the owning loop, the connection is used only by jobs on this one thread, in order.
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = False  # a job is on the thread; the connection is the thread's
        self._commit_scheduled = False
        self._waiting: list[_Operation[Any]] = []  # arrived while a job was in flight
        self._batch: list[_Operation[Any]] = []  # ran in the open transaction, or will run on the thread
        self._broken: sqlite3.Error | None = None  # the open transaction cannot commit
        self._open_error: BaseException | None = None
        self.commits = 0
        """Transactions committed so far: fewer than the operations when they were batched."""

    async def run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        on_thread: bool = False,
        visible_is_enough: bool = False,
        single_write: bool = False,
    ) -> T:
        """`fn(conn)` in the current batch; its result once the batch is durably committed.

        `fn` runs on the event loop unless `on_thread` (use it for anything that may read many rows).
        `visible_is_enough`: answer as soon as `fn` has run on the loop, before the commit. Only for
        an operation whose loss, if the commit then fails, a later durable operation detects (the
        store's claim: see `SQLiteStore.claim`).
        `single_write`: `fn` changes the database with at most one statement, which SQLite makes
        atomic by itself, so it runs without a savepoint of its own (a savepoint copies every page
        it touches: ~3.5 us per operation, measured).
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop and not await self._adopt(loop):
            alone: T = await loop.run_in_executor(None, self._run_alone, fn)
            return alone
        future: asyncio.Future[T] = loop.create_future()
        operation = _Operation(fn, future, on_thread, visible_is_enough, single_write)
        if self._in_flight or len(self._batch) >= MAX_BATCH:
            self._waiting.append(operation)  # answered after the job in flight or the commit scheduled
        elif self._conn is None:
            self._waiting.append(operation)
            self._start(self._open)
        else:
            self._take(operation)
        return await future

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and (self._in_flight or self._waiting or self._batch):
            await self.run(lambda conn: None)  # answered after everything queued before it
        thread, self._thread = self._thread, None
        if thread is not None:  # after any job still queued there (a closed loop's)
            await loop.run_in_executor(thread, self._close_connection)
            thread.shutdown(wait=False)

    # -- on the owning loop --------------------------------------------------------------------

    async def _adopt(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Make `loop` the owner if the writer is idle, or its owner's loop has closed."""
        previous = self._loop
        if previous is not None and not previous.is_closed():
            if self._in_flight or self._waiting or self._batch:
                return False
        elif previous is not None and self._thread is not None:
            # Its callers are gone; a job may still be queued or finishing on the thread.
            await loop.run_in_executor(self._thread, self._abandon)
        elif previous is not None:
            self._abandon()
        self._loop = loop
        return True

    def _take(self, operation: _Operation[Any]) -> None:
        """Run `operation` in the open transaction (beginning one if needed) or queue it for the thread."""
        conn = self._conn
        assert conn is not None
        if not conn.in_transaction and self._broken is None:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    operation.outcome = (False, self._error(exc))
                    _resolve([operation])
                    return
                # Another process writes: the thread waits for the lock, then this runs there.
                operation.on_thread = True
        self._batch.append(operation)
        if not operation.on_thread:
            self._run_one(conn, operation)
            if operation.visible_is_enough and operation.outcome[0] and self._broken is None:
                _resolve([operation])  # the commit's answer to it will find it done and skip it
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._schedule_commit)

    def _schedule_commit(self) -> None:
        self._commit_scheduled = False
        if self._batch and not self._in_flight:
            self._start(self._commit)

    def _start(self, job: Callable[[list[_Operation[Any]]], None]) -> None:
        loop = self._loop
        assert loop is not None
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="paynotify-sqlite")
        batch, self._batch = self._batch, []
        self._in_flight = True
        done = self._thread.submit(job, batch)

        def finished(_: concurrent.futures.Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers
                loop.call_soon_threadsafe(self._finished, batch)

        done.add_done_callback(finished)

    def _finished(self, batch: list[_Operation[Any]]) -> None:
        self._in_flight = False
        _resolve(batch)
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        if self._conn is None:  # the open failed: those waiting fail; the next operation tries again
            error = self._open_error or StoreError(f"SQLite store {self._describe} is not open")
            for operation in waiting:
                operation.outcome = (False, error)
            _resolve(waiting)
            return
        for operation in waiting:
            if self._in_flight or len(self._batch) >= MAX_BATCH:
                self._waiting.append(operation)
            else:
                self._take(operation)

    def _run_one(self, conn: sqlite3.Connection, operation: _Operation[Any]) -> None:
        if self._broken is not None:
            operation.outcome = (False, self._error(self._broken))
            return
        if operation.single_write:
            try:
                operation.outcome = (True, operation.fn(conn))
            except Exception as exc:
                operation.outcome = (False, self._error(exc))
                if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
                    self._broken = exc  # SQLite rolled the whole transaction back (disk full, I/O error)
            return
        try:
            conn.execute("SAVEPOINT op")
            try:
                operation.outcome = (True, operation.fn(conn))
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                operation.outcome = (False, self._error(exc))
            conn.execute("RELEASE op")
        except sqlite3.Error as exc:  # the transaction itself is gone: the whole batch fails
            self._broken = exc

    # -- on the thread -------------------------------------------------------------------------

    def _open(self, batch: list[_Operation[Any]]) -> None:
        """Open the connection; the operations waiting for it then run on the loop (`_finished`)."""
        self._open_error = None
        try:
            conn = self._connect()
            conn.execute("PRAGMA busy_timeout = 0")  # the loop must never wait for a lock
        except Exception as exc:
            self._open_error = self._error(exc)
        else:
            self._conn = conn

    def _commit(self, batch: list[_Operation[Any]]) -> None:
        conn = self._conn
        assert conn is not None
        try:
            if self._broken is not None:
                raise self._broken
            threaded = [op for op in batch if op.on_thread]
            if threaded and not conn.in_transaction:
                _begin_waiting(conn)
            for operation in threaded:
                self._run_one(conn, operation)
            if self._broken is not None:
                raise self._broken
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # whatever happens, every caller gets an answer
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            error = self._error(exc)
            for operation in batch:
                operation.outcome = (False, error)
        finally:
            self._broken = None

    def _run_alone(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on a connection of its own (a second event loop): its own transaction and commit."""
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            _begin_waiting(conn)
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            if conn is not None:
                conn.close()

    def _abandon(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
        self._in_flight = self._commit_scheduled = False
        self._waiting, self._batch, self._broken = [], [], None

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sqlite3.Error):
            wrapped = StoreError(f"SQLite store {self._describe}: {exc}")
            wrapped.__cause__ = exc
            return wrapped
        return exc


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    # The primary result code is the low byte (SQLITE_BUSY_SNAPSHOT and the like are extended codes).
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _begin_waiting(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting up to BUSY_TIMEOUT_MS for another process's write lock."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")
