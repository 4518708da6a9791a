"""PostgreSQL specifics: schema creation and migration, URL options, malformed rows, lost connections
and outages, concurrency across pools, round trips on the hot path.

The behaviour every store shares is in test_store_contract.py. These tests skip when no server is
reachable (see _store_backends.py)."""

# The SQL here interpolates only generated schema names.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from _store_backends import require

import paynotify._stores.postgresql as pg
from paynotify import (
    ClaimState,
    ConfigurationError,
    EventState,
    Kind,
    PaymentResult,
    Status,
    StoreError,
    make_event_id,
    open_store,
)
from paynotify._stores.postgresql import PostgresStore


def result(order_id: str = "o-1", account: str = "shop") -> PaymentResult:
    return PaymentResult(
        provider="examplepay",
        account=account,
        kind=Kind.PAYMENT,
        status=Status.SUCCEEDED,
        provider_status="TRADE_SUCCESS",
        order_id=order_id,
        event_id=make_event_id(account, Kind.PAYMENT, order_id, None, "TRADE_SUCCESS"),
    )


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.fixture(params=["postgresql"], autouse=True)
def backend(request: pytest.FixtureRequest) -> str:
    """Only to put [postgresql] in every test id, as in the contract suite: `-k postgresql` runs both."""
    name: str = request.param
    return name


@pytest.fixture
def base(backend: str) -> str:
    return require(backend)


@pytest.fixture
async def admin(base: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(base)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def schemas(admin: Any) -> AsyncIterator[Callable[[], str]]:
    """Fresh schema names, dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"pn_test_{secrets.token_hex(4)}")
        return made[-1]

    yield make
    for name in made:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def stores(base: str, schemas: Callable[[], str]) -> AsyncIterator[Callable[..., PostgresStore]]:
    """PostgresStore(url) for a URL with a fresh schema (or the one given), closed afterwards."""
    opened: list[PostgresStore] = []
    default = schemas()

    def make(schema: str | None = None, query: str = "", url: str | None = None) -> PostgresStore:
        full = with_query(url or base, f"schema={schema or default}")
        store = PostgresStore(with_query(full, query) if query else full)
        opened.append(store)
        return store

    yield make
    await asyncio.gather(*(s.close() for s in opened))


# -- schema ------------------------------------------------------------------------------------


async def test_stores_opening_together_create_the_schema_once(
    stores: Callable[..., PostgresStore], schemas: Callable[[], str], admin: Any
) -> None:
    schema = schemas()
    several = [stores(schema) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in several))
    assert await admin.fetch(f'SELECT id, version FROM "{schema}".paynotify_schema') == [
        (1, pg.SCHEMA_VERSION)
    ]
    indexes = {
        row["indexname"]
        for row in await admin.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
    }
    assert indexes == {
        "paynotify_events_pkey",
        "paynotify_events_order",
        "paynotify_events_order_lower",
        "paynotify_events_transaction",
        "paynotify_events_refund",
        "paynotify_events_provider_refund",
        "paynotify_events_created",
        "paynotify_events_due",
        "paynotify_events_purge",
        "paynotify_schema_pkey",
        "paynotify_expectations_pkey",
        "paynotify_expectations_due",
        "paynotify_expectations_created",
        "paynotify_reconciliations_pkey",
        "paynotify_reconciliations_day",
        "paynotify_reconciliation_leases_pkey",
        "paynotify_attempts_pkey",
        "paynotify_attempts_event",
        "paynotify_audit_pkey",
        "paynotify_audit_at",
    }
    again = stores(schema)
    await again.open()
    await again.open()
    assert (await again.claim(result(), lease_seconds=60)).state is ClaimState.NEW
    assert (await several[0].claim(result(), lease_seconds=60)).state is ClaimState.IN_FLIGHT


async def test_a_new_migration_runs_once_in_order(
    stores: Callable[..., PostgresStore],
    schemas: Callable[[], str],
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = schemas()
    old = stores(schema)
    r = result()
    await old.enqueue(r)
    await old.close()

    def add_note(quoted: str) -> list[str]:
        return [f"ALTER TABLE {quoted}.paynotify_events ADD COLUMN note text"]

    monkeypatch.setattr(pg, "MIGRATIONS", [*pg.MIGRATIONS, add_note])
    monkeypatch.setattr(pg, "SCHEMA_VERSION", len(pg.MIGRATIONS))
    several = [stores(schema) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in several))  # one ALTER TABLE, or the others would fail
    assert await admin.fetchval(f'SELECT version FROM "{schema}".paynotify_schema') == len(pg.MIGRATIONS)
    columns = await admin.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'paynotify_events' AND column_name = 'note'",
        schema,
    )
    assert len(columns) == 1
    event = await several[0].get(r.event_id)
    assert event is not None
    assert event.state is EventState.PENDING


async def test_a_failed_migration_changes_nothing(
    stores: Callable[..., PostgresStore],
    schemas: Callable[[], str],
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = schemas()

    def broken(quoted: str) -> list[str]:
        return [f"ALTER TABLE {quoted}.paynotify_events ADD COLUMN note text", "SELECT no_such_function()"]

    monkeypatch.setattr(pg, "MIGRATIONS", [*pg.MIGRATIONS, broken])
    monkeypatch.setattr(pg, "SCHEMA_VERSION", len(pg.MIGRATIONS))
    with pytest.raises(StoreError, match="no_such_function"):
        await stores(schema).open()
    # One transaction: not even the schema is left behind.
    assert await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) == 0


async def test_refuses_a_schema_newer_than_the_code(
    stores: Callable[..., PostgresStore], schemas: Callable[[], str], admin: Any
) -> None:
    schema = schemas()
    await stores(schema).open()
    await admin.execute(f'UPDATE "{schema}".paynotify_schema SET version = 99')
    newer = stores(schema)
    with pytest.raises(StoreError, match=r"version 99, newer .*upgrade paynotify"):
        await newer.open()
    with pytest.raises(StoreError, match="upgrade paynotify"):
        await newer.claim(result(), lease_seconds=60)


async def test_tables_live_in_the_schema_the_url_names(
    stores: Callable[..., PostgresStore], schemas: Callable[[], str], admin: Any
) -> None:
    a, b = stores(schemas()), stores(schemas())
    r = result()
    assert (await a.claim(r, lease_seconds=60)).state is ClaimState.NEW
    assert (await b.claim(r, lease_seconds=60)).state is ClaimState.NEW  # another schema, another store
    await b.enqueue(result("o-2"))
    assert [e.order_id for e in await a.find()] == ["o-1"]
    assert sorted(e.order_id for e in await b.find()) == ["o-1", "o-2"]
    for store in (a, b):
        found = await admin.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
            " AND table_name IN ('paynotify_events', 'paynotify_schema')",
            store.schema,
        )
        assert found == 2


async def test_the_default_schema_is_public(base: str) -> None:
    store = PostgresStore(base)
    assert store.schema == "public"
    assert store._events == '"public".paynotify_events'
    await store.close()  # never opened: nothing to do


# -- URL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "schema=bad-name",
        "schema=1abc",
        "schema=",
        'schema=x"%3Bdrop',
        "schema=" + "x" * 64,
        "schema=a&schema=b",
        "pool_max=0",
        "pool_max=lots",
        "connect_timeout=-1",
        "sslmode",
    ],
)
def test_bad_url_options_are_configuration_errors(query: str) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL store"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:5432/test?{query}")


async def test_url_options_are_stripped_and_the_rest_reaches_the_server(
    stores: Callable[..., PostgresStore], admin: Any
) -> None:
    app = f"pn_app_{secrets.token_hex(4)}"
    store = stores(query=f"pool_max=2&application_name={app}&connect_timeout=5")
    assert "schema=" not in store._url.dsn
    assert "pool_max" not in store._url.dsn
    assert f"application_name={app}" in store._url.dsn
    await asyncio.gather(*(store.get(f"e-{i}") for i in range(20)))
    assert store._pool.get_max_size() == 2
    connections = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app
    )
    assert 1 <= connections <= 2


async def test_open_store_accepts_both_schemes(base: str, schemas: Callable[[], str]) -> None:
    schema = schemas()
    for scheme in ("postgresql", "postgres"):
        store = open_store(with_query(base.replace("postgresql", scheme, 1), f"schema={schema}"))
        assert isinstance(store, PostgresStore)
        await store.open()
        await store.close()


# -- bad rows ----------------------------------------------------------------------------------


async def test_a_malformed_row_is_a_clear_error(stores: Callable[..., PostgresStore], admin: Any) -> None:
    store = stores()
    r = result()
    await store.enqueue(r)
    await admin.execute(
        f"UPDATE {store._events} SET state = 'exploded' WHERE event_id = $1",
        r.event_id,
    )
    with pytest.raises(StoreError, match=f"{r.event_id} is malformed: unknown state 'exploded'"):
        await store.get(r.event_id)
    with pytest.raises(StoreError, match=r.event_id):
        await store.find()
    with pytest.raises(StoreError, match=r.event_id):
        await store.claim(r, lease_seconds=60)  # never overwrites a row it does not understand
    assert await store.acquire(limit=10, lease_seconds=60) == []
    assert await store.requeue(r.event_id, replay=True) is False
    assert await admin.fetchval(f"SELECT state FROM {store._events} WHERE event_id = $1", r.event_id) == (
        "exploded"
    )


async def test_a_result_that_does_not_parse_is_a_clear_error(
    stores: Callable[..., PostgresStore], admin: Any
) -> None:
    store = stores()
    r = result()
    await store.enqueue(r)
    await admin.execute(
        f"UPDATE {store._events} SET result_json = '{{\"x\": 1}}' WHERE event_id = $1", r.event_id
    )
    event = await store.get(r.event_id)
    assert event is not None
    with pytest.raises(StoreError, match=f"{r.event_id} is malformed"):
        event.result()


# -- lost connections and outages --------------------------------------------------------------


async def eventually(admin: Any, sql: str, *args: object, want: bool, seconds: float = 5.0) -> None:
    """Poll a query until its value is truthy (want=True) or falsy (want=False)."""
    deadline = time.monotonic() + seconds
    while bool(await admin.fetchval(sql, *args)) is not want:
        assert time.monotonic() < deadline, f"timed out waiting for {sql}"
        await asyncio.sleep(0.02)


async def test_a_connection_killed_mid_statement_is_a_store_error_then_the_store_recovers(
    stores: Callable[..., PostgresStore], admin: Any, base: str
) -> None:
    app = f"pn_kill_{secrets.token_hex(4)}"
    store = stores(query=f"application_name={app}&pool_max=2")
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    async with admin.transaction():
        # Hold the row so complete() is still running when its connection is killed.
        await admin.execute(f"SELECT 1 FROM {store._events} WHERE event_id = $1 FOR UPDATE", r.event_id)
        completing = asyncio.create_task(store.complete(r.event_id, claim.token))

        await eventually(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            app,
            want=True,
        )
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app
        )
        assert killed >= 1
        with pytest.raises(StoreError, match="lost its connection") as caught:
            await completing
    assert store.where in str(caught.value)
    assert urlsplit(base).netloc.rpartition("@")[2] in store.where
    # The transaction was killed with its connection: nothing was written, and a retry works at once.
    assert (await store.get(r.event_id)).state is EventState.IN_FLIGHT  # type: ignore[union-attr]
    await store.complete(r.event_id, claim.token)
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE


async def test_idle_connections_killed_server_side_are_replaced(
    stores: Callable[..., PostgresStore], admin: Any
) -> None:
    app = f"pn_kill_{secrets.token_hex(4)}"
    store = stores(query=f"application_name={app}&pool_max=3")
    events = [result(f"o-{i}") for i in range(12)]
    for round_ in range(3):
        claims = await asyncio.gather(*(store.claim(r, lease_seconds=60) for r in events[round_ * 4 :][:4]))
        assert all(c.state is ClaimState.NEW for c in claims)
        killed = {
            row["pid"]
            for row in await admin.fetch(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app
            )
        }
        assert killed

        await eventually(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
            sorted(killed),
            want=False,
        )
        await asyncio.sleep(0.05)  # the client reads the server's goodbye
    assert len(await store.find(states=[EventState.IN_FLIGHT])) == 12


def server_proxy(base: str) -> Proxy:
    parts = urlsplit(base)
    return Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)


class Proxy:
    """A TCP proxy to the server that can go down and come back on the same port: an outage of the
    database as the store sees it, without stopping the server other tests share."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()
        self._tasks.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def test_an_outage_is_a_store_error_and_the_store_works_again_after_it(
    stores: Callable[..., PostgresStore], base: str
) -> None:
    proxy = server_proxy(base)
    await proxy.up()
    try:
        url = f"postgresql://postgres:pa%24%24word-x9@127.0.0.1:{proxy.port}/test"
        store = stores(url=url, query="pool_max=2&connect_timeout=2")
        r = result()
        await store.enqueue(r)
        await proxy.down()
        with pytest.raises(StoreError) as caught:
            await store.get(r.event_id)
        message = str(caught.value)
        assert f"127.0.0.1:{proxy.port}/test" in message
        assert "pa$$word-x9" not in message
        assert "pa%24%24word-x9" not in message
        with pytest.raises(StoreError):
            await store.acquire(limit=1, lease_seconds=60)
        await proxy.up()  # the database is back: no restart of the store
        [lease] = await store.acquire(limit=1, lease_seconds=60)
        assert lease.event.event_id == r.event_id
        await store.complete(r.event_id, lease.token)
        assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE
    finally:
        if proxy._server is not None:
            await proxy.down()


async def test_a_store_opened_while_the_server_is_down_opens_once_it_is_up(
    stores: Callable[..., PostgresStore], base: str
) -> None:
    proxy = server_proxy(base)
    await proxy.up()
    port = proxy.port
    await proxy.down()
    store = stores(url=f"postgresql://postgres@127.0.0.1:{port}/test", query="connect_timeout=2")
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}/test .*cannot be opened"):
        await store.open()
    await proxy.up()
    try:
        assert (await store.claim(result(), lease_seconds=60)).state is ClaimState.NEW
    finally:
        await proxy.down()


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("127.0.0.1:1/test", "127.0.0.1:1/test"),  # nothing listens on port 1
        ("{server}/pn_no_such_db", "pn_no_such_db"),
    ],
)
async def test_connection_errors_name_host_and_database_never_the_password(
    base: str, where: str, expected: str
) -> None:
    server = urlsplit(base).netloc.rpartition("@")[2]
    store = PostgresStore(
        f"postgresql://postgres:s3cr%40t-Pw@{where.format(server=server)}?connect_timeout=2"
    )
    with pytest.raises(StoreError) as caught:
        await store.claim(result(), lease_seconds=60)
    await store.close()
    text = f"{caught.value} {caught.value.__cause__!r} {caught.value.__cause__}"
    assert expected in str(caught.value)
    assert "s3cr" not in text
    assert "Pw" not in str(caught.value)


async def test_a_closed_store_reopens_on_next_use(stores: Callable[..., PostgresStore]) -> None:
    store = stores()
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    await store.close()
    await store.close()
    await store.complete(r.event_id, claim.token)
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE


# -- concurrency -------------------------------------------------------------------------------


async def test_many_pools_race_for_new_and_expired_claims(
    stores: Callable[..., PostgresStore], admin: Any
) -> None:
    several = [stores(query="pool_max=4") for _ in range(4)]
    events = [result(f"o-{i}") for i in range(25)]
    first = await asyncio.gather(*(s.claim(r, lease_seconds=60) for r in events for s in several * 2))
    assert [c.state for c in first].count(ClaimState.NEW) == len(events)
    assert {c.state for c in first} == {ClaimState.NEW, ClaimState.IN_FLIGHT}
    # Every lease runs out (as if each owner died): the takeover has one winner per event too.
    await admin.execute(f"UPDATE {several[0]._events} SET lease_until = $1", time.time() - 1)
    second = await asyncio.gather(*(s.claim(r, lease_seconds=60) for r in events for s in several * 2))
    assert [c.state for c in second].count(ClaimState.NEW) == len(events)
    stored = await several[0].find(limit=1000)
    assert len(stored) == len(events)
    assert {(e.state, e.attempts) for e in stored} == {(EventState.IN_FLIGHT, 2)}


async def test_many_pools_share_out_the_queue(stores: Callable[..., PostgresStore]) -> None:
    several = [stores(query="pool_max=3") for _ in range(4)]
    await asyncio.gather(*(several[i % 4].enqueue(result(f"o-{i}")) for i in range(60)))
    leased: list[str] = []
    while batches := [
        b for b in await asyncio.gather(*(s.acquire(limit=4, lease_seconds=60) for s in several * 2)) if b
    ]:
        leased += [lease.event.event_id for batch in batches for lease in batch]
    assert len(leased) == len(set(leased)) == 60


# -- the hot path and housekeeping ---------------------------------------------------------------


async def test_claim_and_complete_take_one_round_trip_each(stores: Callable[..., PostgresStore]) -> None:
    store = stores(query="pool_max=1")
    await store.open()
    queries: list[str] = []
    async with store._pool.acquire() as conn:
        conn.add_query_logger(lambda record: queries.append(record.query))
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    await store.complete(r.event_id, claim.token)
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE
    assert len(queries) == 3  # no reset query after each statement, no follow-up reads


async def test_purge_deletes_in_batches(
    stores: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg, "_PURGE_BATCH", 3)
    store = stores()
    for i in range(10):
        r = result(f"o-{i}")
        claim = await store.claim(r, lease_seconds=60)
        assert claim.token
        await store.complete(r.event_id, claim.token)
    await store.enqueue(result("pending"))
    assert await store.purge(before=time.time() + 1) == 10
    assert [e.order_id for e in await store.find()] == ["pending"]


async def test_acquire_uses_the_due_index(stores: Callable[..., PostgresStore], admin: Any) -> None:
    store = stores()
    await store.open()
    await admin.execute("SET enable_seqscan = off")
    plan = "\n".join(
        row[0]
        for row in await admin.fetch(
            "EXPLAIN " + store._sql.acquire.replace("$1", "0").replace("$2", "10").replace("$3", "60")
        )
    )
    await admin.execute("RESET enable_seqscan")
    assert "paynotify_events_due" in plan


async def test_the_claim_commits_asynchronously_and_changes_no_session_setting(
    stores: Callable[..., PostgresStore],
) -> None:
    """The claim's transaction has synchronous_commit off (its durability comes from the
    completion's synchronous commit, docs/stores.md); the pooled session keeps its own setting, so
    every other statement, the completion first, commits synchronously."""
    store = stores(query="pool_max=1")
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    async with store._pool.acquire() as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        async with conn.transaction():
            t = time.time()
            args = (r.event_id, "shop", "examplepay", "payment", "succeeded", "o-1", "t", t + 60, t, "{}")
            await conn.fetchrow(store._sql.claim, *args)
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    await store.complete(r.event_id, claim.token)
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE


async def test_completing_an_event_with_no_record_is_a_store_error(
    stores: Callable[..., PostgresStore], admin: Any
) -> None:
    """As after a server crash that lost the claim's asynchronous commit: no acknowledgement may
    follow. Completing an event that is DONE already stays quiet (another delivery completed it)."""
    store = stores()
    lost, done = result("lost"), result("done")
    for r in (lost, done):
        claim = await store.claim(r, lease_seconds=60)
        assert claim.token
    await store.complete(done.event_id, "t")
    await store.complete(done.event_id, "t")  # DONE already: no error
    await admin.execute(f"DELETE FROM {store._events} WHERE event_id = $1", lost.event_id)
    with pytest.raises(StoreError, match="has no record"):
        await store.complete(lost.event_id, "t")


async def test_the_events_table_leaves_room_on_its_pages_for_updates(
    stores: Callable[..., PostgresStore], admin: Any
) -> None:
    store = stores()
    await store.open()
    options = await admin.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", store._events)
    assert options == ["fillfactor=80"]


async def test_recording_a_subscriber_is_a_hot_update(stores: Callable[..., PostgresStore]) -> None:
    """It changes no indexed column, so no index gets an entry. (The completion changes `state`,
    which the due and purge indexes read, so it cannot be HOT: docs/stores.md.)"""
    store = stores(query="pool_max=1")
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    async with store._pool.acquire() as conn, conn.transaction():
        await conn.execute(store._sql.subscriber_done, r.event_id, "first")
        hot = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = $1::regclass",
            store._events,
        )
    assert (hot["n_tup_upd"], hot["n_tup_hot_upd"]) == (1, 1)
