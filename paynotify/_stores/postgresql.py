"""The shared store: PostgreSQL through an asyncpg pool, for several processes and hosts.

Each method is one statement, so one round trip in its own implicit transaction (`claim` runs its
statement again in a rare race, `purge` deletes in batches). No explicit locking: row locks,
`ON CONFLICT` and `FOR UPDATE SKIP LOCKED` make concurrent callers on any number of connections and
processes safe. Times are the calling process's `time.time()`, as in every store.

URL: any libpq-style `postgresql://user:password@host:port/db?...` URL asyncpg accepts, plus query
options that paynotify strips before connecting:

- `schema=NAME`: the tables live in schema NAME (created if missing; used as given, quoted, so
  case-sensitive); default `public`;
- `pool_max=N`: at most N connections (default 10);
- `timeout=SECONDS`: the deadline of every operation, waiting for a pooled connection included
  (default 3, under the shortest provider's answer limit: WeChat waits 5 s); past it the operation
  fails with `StoreError`, so the provider gets the failure reply and resends, instead of a request
  hanging for as long as a network partition lasts;
- `connect_timeout=SECONDS`: as in libpq (asyncpg does not read it from a URL); default 3.

Other query parameters go to asyncpg (`sslmode`, ...) or to the server as settings
(`application_name`, ...). The schema is versioned in `paynotify_schema` and migrated at start-up
under an advisory lock, so processes starting together migrate it once.
"""

# SQL text comes from postgresql_sql.py, built from constants and the checked, quoted schema name.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from paynotify._errors import StoreError
from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._stores.base import (
    RETAINED,
    Claim,
    ClaimState,
    EventQuery,
    EventState,
    Lease,
    Store,
    StoredEvent,
)
from paynotify._stores.expectations import ExpectationStore
from paynotify._stores.filters import sql_filters
from paynotify._stores.history import Attempt, EventHistory, bounded
from paynotify._stores.postgresql_driver import (
    CONNECTION_ERRORS,
    DB_ERRORS,
    OPEN_ERRORS,
    drop_outcome,
    keep_session,
)
from paynotify._stores.postgresql_history import with_attempt
from paynotify._stores.postgresql_sql import (
    BYTEWISE,
    COLUMNS,
    DUE,
    DUE_WORK,
    MIGRATIONS,
    SCHEMA_VERSION,
    SEARCH_IDS,
    Statements,
    lock_key,
    numbered,
    quote,
)
from paynotify._stores.postgresql_url import StoreUrl
from paynotify._stores.reconciliations import ReconciliationStore
from paynotify._stores.rows import event_fields, stored_event
from paynotify._stores.search import Search, sql_search
from paynotify._stores.tokens import new_token, now
from paynotify._stores.transitions import CLAIM

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]

log = logging.getLogger("paynotify")

Row = Mapping[str, Any]
T = TypeVar("T")

_PURGE_BATCH = 1000
_CLAIM_TRIES = 5
_CLOSE_TIMEOUT = 10.0
_STATES = frozenset(s.value for s in EventState)


class PostgresStore(Store):
    """The pool is created on first use (or by `open()`), which also creates or migrates the schema."""

    def __init__(self, url: str) -> None:
        self._url = StoreUrl(url)
        self.schema = self._url.schema
        self.where = self._url.where
        quoted = quote(self.schema)
        self._schema_sql = quoted
        self._events = f"{quoted}.paynotify_events"
        self._versions = f"{quoted}.paynotify_schema"
        self._pool: Any = None
        self._migrated = False
        self._lock = asyncio.Lock()
        self._releasing: set[asyncio.Future[Any]] = set()  # connections going back to the pool
        self._sql = Statements(self._events)
        self._with_attempt: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r}, schema={self.schema!r})"

    # -- connections, errors and the schema ------------------------------------------------------

    def _error(self, exc: BaseException, connecting: bool = False) -> StoreError:
        """A StoreError naming the server, database and schema; never the password."""
        detail = self._url.redact(str(exc)) or "no detail"
        if isinstance(exc, TimeoutError):
            what = f"did not answer within {self._url.timeout:g} s"
        elif connecting:
            what = "cannot be opened"
        elif isinstance(exc, CONNECTION_ERRORS) or type(exc) is asyncpg.InterfaceError:
            what = "lost its connection (the pool reconnects on the next call)"
        else:
            what = "failed"
        return StoreError(
            f"PostgreSQL store {self.where} (schema {self.schema}) {what}: {type(exc).__name__}: {detail}"
        )

    async def _ready(self) -> Any:
        pool = self._pool
        if pool is not None and self._migrated:
            return pool
        try:
            async with asyncio.timeout(self._url.connect_timeout + self._url.timeout):
                return await self._open_pool()
        except TimeoutError as exc:
            raise self._error(exc, connecting=True) from exc

    async def _open_pool(self) -> Any:
        async with self._lock:
            try:
                if self._pool is None:
                    settings = {} if self._url.application_name_given else {"application_name": "paynotify"}
                    self._pool = await asyncpg.create_pool(
                        self._url.dsn,
                        min_size=1,
                        max_size=self._url.pool_max,
                        timeout=self._url.connect_timeout,
                        server_settings=settings,
                        reset=keep_session,
                    )
                if not self._migrated:
                    async with self._pool.acquire() as conn:
                        await self._migrate(conn)
                    self._migrated = True
            except OPEN_ERRORS as exc:
                raise self._error(exc, connecting=True) from exc
            return self._pool

    async def _migrate(self, conn: Any) -> None:
        try:
            version: int | None = await conn.fetchval(f"SELECT version FROM {self._versions} WHERE id = 1")
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            version = None
        if version == SCHEMA_VERSION:
            return  # the usual start-up: one round trip, no lock
        self._check_version(version)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(self.schema))
            # CREATE SCHEMA needs the CREATE privilege even when the schema exists: ask first.
            if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", self.schema):
                await conn.execute(f"CREATE SCHEMA {self._schema_sql}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._versions} ("
                " id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1), version integer NOT NULL)"
            )
            version = await conn.fetchval(f"SELECT version FROM {self._versions} WHERE id = 1") or 0
            self._check_version(version)
            if version == SCHEMA_VERSION:
                return  # another process migrated it while we waited for the lock
            for migration in MIGRATIONS[version:]:
                for statement in migration(self._schema_sql):
                    await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {self._versions} (id, version) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                SCHEMA_VERSION,
            )
            log.info(
                "PostgreSQL store %s: schema %s migrated to version %d",
                self.where,
                self.schema,
                SCHEMA_VERSION,
            )

    def _check_version(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL store {self.where} schema {self.schema} has version {version}, newer than this "
                f"paynotify understands ({SCHEMA_VERSION}); upgrade paynotify"
            )

    async def _fetch(self, sql: str, *args: object) -> list[Row]:
        rows: list[Row] = await self._bounded("fetch", sql, args)
        return rows

    async def _fetchrow(self, sql: str, *args: object) -> Row | None:
        row: Row | None = await self._bounded("fetchrow", sql, args)
        return row

    async def _execute(self, sql: str, *args: object) -> int:
        """Run a write; returns how many rows it touched."""
        status: str = await self._bounded("execute", sql, args)
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def _bounded(self, method: str, sql: str, args: Sequence[object]) -> Any:
        """`conn.<method>(sql, *args)` on a pooled connection, bounded (`_in_connection`)."""
        return await self._in_connection(lambda conn: getattr(conn, method)(sql, *args))

    async def _in_connection(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """`work` on one pooled connection (a statement, or a transaction of several), the wait for
        the connection included, within one deadline (one timer; no task of its own), as a
        StoreError otherwise.

        Past the deadline the statement is cancelled (asyncpg sends the server a cancel request in
        the background) and the connection goes back to the pool in a background task: a query cut
        off by a partition cleans its connection up over the same dead link (60 s observed), and the
        caller must not wait for that. `Pool.release` is shielded, so a release cut off by the
        deadline also finishes in the background."""
        pool = await self._ready()
        try:
            async with asyncio.timeout(self._url.timeout):
                conn = await pool.acquire()
                try:
                    result = await work(conn)
                except BaseException:
                    self._release_later(pool, conn)
                    raise
                await pool.release(conn)
        except DB_ERRORS as exc:  # TimeoutError included
            raise self._error(exc) from exc
        return result

    def _release_later(self, pool: Any, conn: Any) -> None:
        task = asyncio.ensure_future(pool.release(conn))
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Future[Any]) -> None:
        self._releasing.discard(task)
        drop_outcome(task)

    def _malformed(self, event_id: str, state: object) -> StoreError:
        return StoreError(
            f"PostgreSQL store {self.where} (schema {self.schema}): stored event {event_id} is malformed: "
            f"unknown state {state!r}"
        )

    def _event(self, row: Row) -> StoredEvent:
        if row["state"] not in _STATES:
            raise self._malformed(row["event_id"], row["state"])
        return stored_event(row)

    async def open(self) -> None:
        await self._ready()

    @property
    def expectations(self) -> ExpectationStore:
        from paynotify._stores.postgresql_expectations import PostgresExpectations

        return PostgresExpectations(self, self._schema_sql)

    @property
    def reconciliations(self) -> ReconciliationStore:
        from paynotify._stores.postgresql_reconciliations import PostgresReconciliations

        return PostgresReconciliations(self, self._schema_sql)

    @property
    def history(self) -> EventHistory:
        from paynotify._stores.postgresql_history import PostgresHistory

        return PostgresHistory(self, self._schema_sql)

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool, self._migrated = self._pool, None, False
            if pool is None:
                return
            try:
                await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
            except DB_ERRORS as exc:  # including TimeoutError: a server that does not answer
                log.warning("PostgreSQL store %s: %s", self.where, self._url.redact(str(exc)))
                pool.terminate()

    # -- inline delivery -----------------------------------------------------------------------

    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        event_id, account, provider, kind, status, order_id, result_json = event_fields(result)
        for _ in range(_CLAIM_TRIES):
            t, token = now(), new_token()
            row = await self._fetchrow(
                self._sql.claim,
                event_id,
                account,
                provider,
                kind,
                status,
                order_id,
                token,
                t + lease_seconds,
                t,
                result_json,
            )
            if row is None:
                continue  # inserted by a transaction that committed after this statement began
            state: str | None = row["state"]
            if state is None:
                return Claim(ClaimState.NEW, token, frozenset(row["done_subscribers"]), row["attempts"])
            if state == EventState.IN_FLIGHT and (row["lease_until"] or 0.0) > t:
                return Claim(ClaimState.IN_FLIGHT)
            if state not in _STATES:
                raise self._malformed(event_id, state)
            if not CLAIM.allows(EventState(state), lease_expired=True):
                return Claim(ClaimState.DONE)
            # The statement's snapshot shows a claimable event, yet the locked current row was not:
            # someone else changed it in between. Look again.
        return Claim(ClaimState.IN_FLIGHT)  # it keeps changing under us: the provider retries later

    async def subscriber_done(self, event_id: str, token: str, subscriber: str) -> None:
        await self._execute(self._sql.subscriber_done, event_id, subscriber)

    async def complete(
        self, event_id: str, token: str, *, done: Sequence[str] = (), attempt: Attempt | None = None
    ) -> None:
        if await self._settle("complete", attempt, event_id, now(), list(done)):
            return
        # Nothing changed: DONE already (another delivery completed it), or no row at all, as when
        # the server lost the claim's asynchronous commit in a crash. Acknowledging then would leave
        # nothing recorded: fail, and the provider's resend claims it again.
        if await self._fetchrow(self._sql.exists, event_id) is None:
            raise StoreError(
                f"PostgreSQL store {self.where} (schema {self.schema}): event {event_id} has no record"
                " (its claim was lost)"
            )

    async def release(
        self, event_id: str, token: str, *, error: str | None = None, attempt: Attempt | None = None
    ) -> None:
        await self._settle("release", attempt, event_id, token, error, now())

    async def _settle(self, name: str, attempt: Attempt | None, *args: object) -> int:
        """A write that ends a lease, with the attempt in the same statement when there is one;
        how many events it changed."""
        if attempt is None:
            return await self._execute(getattr(self._sql, name), *args)
        sql = self._with_attempt.get(name)
        if sql is None:
            sql = self._with_attempt[name] = with_attempt(
                getattr(self._sql, name), len(args), self._schema_sql
            )
        started, finished, outcome, error, instance, operator = attempt.values()
        row = await self._fetchrow(sql, *args, started, finished, outcome, bounded(error), instance, operator)
        return 0 if row is None else int(row["settled"])

    async def record(
        self, entry: PaymentResult | UnhandledEvent, state: EventState, *, reason: str | None
    ) -> bool:
        event_id, account, provider, kind, status, order_id, result_json = event_fields(entry)
        sql = self._sql.record[state]
        row = await self._fetchrow(
            sql, event_id, account, provider, kind, status, order_id, state.value, reason, now(), result_json
        )
        return row is not None

    # -- queued delivery -----------------------------------------------------------------------

    async def enqueue(self, result: PaymentResult) -> bool:
        event_id, account, provider, kind, status, order_id, result_json = event_fields(result)
        row = await self._fetchrow(
            self._sql.enqueue, event_id, account, provider, kind, status, order_id, now(), result_json
        )
        return row is not None

    async def acquire(self, *, limit: int, lease_seconds: float) -> list[Lease]:
        if limit <= 0:
            return []
        t = now()
        rows = await self._fetch(self._sql.acquire, t, limit, t + lease_seconds)
        rows = sorted(rows, key=lambda row: (row["due_at"], row["created_at"]))
        return [Lease(self._event(row), row["token"]) for row in rows]

    async def reschedule(
        self, event_id: str, token: str, *, at: float, error: str, attempt: Attempt | None = None
    ) -> None:
        await self._settle("reschedule", attempt, event_id, token, at, error, now())

    async def dead_letter(
        self, event_id: str, token: str, *, error: str, attempt: Attempt | None = None
    ) -> None:
        await self._settle("dead_letter", attempt, event_id, token, error, now())

    # -- operations ----------------------------------------------------------------------------

    async def get(self, event_id: str) -> StoredEvent | None:
        row = await self._fetchrow(self._sql.get, event_id)
        return self._event(row) if row is not None else None

    async def select(self, query: EventQuery) -> list[StoredEvent]:
        account, order_id, provider, kind = query.account, query.order_id, query.provider, query.kind
        states, limit = query.states, query.limit
        created_after, created_before, before_event_id = (
            query.created_after,
            query.created_before,
            query.before_event_id,
        )
        # Only the given filters appear in the SQL, so each combination gets a plan that uses the
        # right index (a few dozen statements at most in asyncpg's cache). Ties are broken in byte
        # order ("C"), as SQLite and Redis compare, whatever the collation.
        args: list[object] = []
        columns = {"account": account, "order_id": order_id, "provider": provider, "kind": kind}
        clauses = numbered(
            *sql_filters(columns, created_after, created_before, before_event_id, event_id=BYTEWISE), args
        )
        if states is not None:
            args.append([EventState(s).value for s in states])
            clauses.append(f"state = ANY(${len(args)}::text[])")
        if query.search is not None:
            clauses += numbered(*self._search(query.search), args)
        args.append(max(limit, 0))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM {self._events}{where}"
            f" ORDER BY created_at DESC, {BYTEWISE} DESC LIMIT ${len(args)}",
            *args,
        )
        return [self._event(row) for row in rows]

    def _search(self, text: str) -> tuple[list[str], list[object]]:
        """`find(search=...)` as one condition on migration 3's indexes."""
        condition, params = sql_search(
            Search.of(text), self._events, ids=SEARCH_IDS, at_least="~>=~", below="~<~"
        )
        return [condition], params

    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        return await self._fetchrow(self._sql.requeue[replay], event_id, now()) is not None

    async def delete(self, query: EventQuery, *, before: float) -> int:
        account, provider, order_id, created_after = (
            query.account,
            query.provider,
            query.order_id,
            query.created_after,
        )
        states = query.states if query.states is not None else frozenset(RETAINED)
        wanted = [EventState(s).value for s in states]
        if not wanted:
            return 0
        args: list[object] = [wanted, before, _PURGE_BATCH]
        columns = {"account": account, "order_id": order_id, "provider": provider}
        where = numbered(*sql_filters(columns, created_after), args)
        sql = self._sql.purge_where(where) if where else self._sql.purge
        # In batches, each its own short transaction: no long lock on a large table.
        total = 0
        while True:
            deleted = await self._execute(sql, *args)
            total += deleted
            if deleted < _PURGE_BATCH:
                return total

    async def oldest_due(self) -> float | None:
        row = await self._fetchrow(
            f"SELECT {DUE} AS due FROM {self._events} WHERE {DUE_WORK} AND state = 'pending'"
            f" ORDER BY {DUE} LIMIT 1"
        )
        return None if row is None else float(row["due"])

    async def count(self) -> dict[EventState, int]:
        rows = await self._fetch(f"SELECT state, count(*) AS n FROM {self._events} GROUP BY state")
        return {EventState(row["state"]): row["n"] for row in rows if row["state"] in _STATES}
