"""One SQLite connection on one thread, committing whatever is queued together (group commit).

An acknowledged notification must survive a power cut, so every commit is fsynced. One fsync per
operation caps a store at a few hundred notifications a second; instead, each operation runs in
its own SAVEPOINT inside the current batch's transaction, and the batch commits once. Callers
are answered only after that commit, so nothing is reported written before it is durable. An
operation that fails rolls back to its own savepoint and fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from paynotify._errors import StoreError

__all__ = ["GroupCommitWriter"]

T = TypeVar("T")

MAX_BATCH = 256
"""Operations committed together at most; bounds how long one transaction holds the write lock."""
LINGER_SECONDS = 0.001
"""While operations keep arriving together, how long a batch waits for more before committing.

Without it, under load each commit carries a few operations and the fsyncs and thread switches
cost more than the work (measured in docs/benchmarks.md); when operations arrive one at a time
(the previous batch had one), nothing waits, so a quiet server answers as fast as before.
"""


@dataclass(slots=True)
class _Operation(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    outcome: tuple[bool, Any] = (False, None)


def _settle(batch: list[_Operation[Any]]) -> None:
    """Answer every caller of a batch: one wake-up per event loop, not one per operation."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Operation[Any]]] = {}
    for operation in batch:
        by_loop.setdefault(operation.loop, []).append(operation)
    for loop, operations in by_loop.items():
        # A closed event loop raises RuntimeError: nobody is waiting for these answers any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, operations)


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
    """Runs `fn(connection)` calls on one thread; `connect` opens the connection when first needed."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], describe: str) -> None:
        self._connect = connect
        self._describe = describe
        self._queue: queue.SimpleQueue[_Operation[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.commits = 0
        """Transactions committed so far: fewer than the operations when they were batched."""

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._queue.put(_Operation(fn, loop, future))
        return await future

    async def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="paynotify-sqlite", daemon=True)
                self._thread.start()

    def _gather(self, first: _Operation[Any], *, linger: bool) -> list[_Operation[Any]]:
        """`first` and what else is queued; when `linger`, what arrives in the next LINGER_SECONDS too."""
        batch = [first]
        deadline = time.monotonic() + LINGER_SECONDS if linger else 0.0
        while len(batch) < MAX_BATCH:
            try:
                wait = deadline - time.monotonic()
                more = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(more)
        return batch

    def _serve(self) -> None:
        busy = False
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = self._gather(first, linger=busy)
                busy = len(batch) > 1
                self._commit(batch)
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _commit(self, batch: list[_Operation[Any]]) -> None:
        try:
            self._run_batch(batch)
        except Exception as exc:  # whatever happens, every caller gets an answer
            if self._conn is not None and self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.rollback()
            self._fail(batch, exc)
        else:
            _settle(batch)

    def _run_batch(self, batch: list[_Operation[Any]]) -> None:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        for operation in batch:
            conn.execute("SAVEPOINT op")
            try:
                operation.outcome = (True, operation.fn(conn))
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                operation.outcome = (False, self._error(exc))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
        self.commits += 1

    def _fail(self, batch: list[_Operation[Any]], exc: Exception) -> None:
        error = self._error(exc)
        for operation in batch:
            operation.outcome = (False, error)
        _settle(batch)

    def _error(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error):
            wrapped = StoreError(f"SQLite store {self._describe}: {exc}")
            wrapped.__cause__ = exc
            return wrapped
        return exc
