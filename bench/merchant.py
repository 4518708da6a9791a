"""The careful merchant: per notification, paynotify on a durable store against a hand-written route
that verifies inline (the floors of bench/_floors.py, as cheap as an SDK's bare call or cheaper) and
records the event idempotently in the same kind of store before it acknowledges.

    python -m bench merchant [--n 200] [--rounds 7] [--cases alipay,v2,v3] [--stores sqlite,postgresql]

Peers, on the same signed notifications (each round its own distinct ones, so nothing is a duplicate):
- SQLite, on the loop: `INSERT OR IGNORE` + `commit()` on the event loop (WAL, synchronous=FULL, as
  durable as paynotify's store); it blocks its loop for the fsync (shown for information);
- SQLite, in a worker thread: the same statements in one dedicated thread (`run_in_executor`);
- PostgreSQL: asyncpg, `INSERT ... ON CONFLICT DO NOTHING` (its own implicit transaction: one
  synchronous commit), in a schema of its own.
The merchant's record key is a SHA-1 of the body (cheaper than reading the order id out of it).
Contenders run in rotated order every round (bench._common.interleave); the printed ratio is
paynotify's best round over the merchant's best round on the same store.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import secrets
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from bench import _floors
from bench._common import Contender, Request, asgi_batch, interleave, new_loop
from bench._fixtures import (
    AlipayKeys,
    WeChatV2Keys,
    WeChatV3Keys,
    alipay_requests,
    as_request,
    wechat_v2_requests,
    wechat_v3_notes,
)
from paynotify import Notifier, PaymentResult

POSTGRES_URL = os.environ.get("PAYNOTIFY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
Record = Callable[[str, bytes], Any]


def merchant_app(verify: _floors.Verify, replies: tuple[Callable[[], Response], Callable[[], Response]],
                 record: Record) -> Starlette:  # fmt: skip
    """POST /shop/notify: verify inline, record idempotently (awaited when `record` is async), ack."""
    success, failure = replies

    async def notify(request: HttpRequest) -> Response:
        body = await request.body()
        if not verify(request.headers, body):
            return failure()
        outcome = record(hashlib.sha1(body).hexdigest(), body)
        if asyncio.iscoroutine(outcome):
            await outcome
        return success()

    return Starlette(routes=[Route("/shop/notify", notify, methods=["POST"])])


def alipay_postgres_merchant(public_pem: str, url: str, schema: str) -> Starlette:
    """The careful merchant as a server (bench.throughput's `merchant-postgresql` route): the Alipay
    floor, then asyncpg `INSERT ... ON CONFLICT DO NOTHING` on a pool of 10 (paynotify's default),
    the table created in `schema` at start-up."""
    state: dict[str, Any] = {}

    async def record(key: str, body: bytes) -> None:
        await state["pool"].execute(state["sql"], key, body)

    app = merchant_app(_floors.alipay(public_pem), _floors.ALIPAY_REPLIES, record)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=1, max_size=10)
        table = f'"{schema}".events'
        await pool.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await pool.execute(f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, body bytea NOT NULL)")
        state["pool"] = pool
        state["sql"] = f"INSERT INTO {table} (id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        yield
        await pool.close()

    app.router.lifespan_context = lifespan
    return app


def _sqlite_merchant(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body BLOB NOT NULL)")
    conn.commit()
    return conn


class Stores:
    """The merchants' and paynotify's stores of one run, opened on `loop`, removed by `close`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tmp: Path, kinds: Sequence[str]) -> None:
        self.loop, self.tmp, self.kinds = loop, tmp, kinds
        self.tag = f"pn_bench_m_{secrets.token_hex(4)}"
        self.thread = concurrent.futures.ThreadPoolExecutor(1)
        self.notifiers: list[Notifier] = []
        self.schemas: list[str] = []
        self.pg: Any = None

    def url(self, kind: str, label: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.tmp}/{label}.db"
        schema = f"{self.tag}_{label}"
        self.schemas.append(schema)
        return f"{POSTGRES_URL}?schema={schema}"

    def merchants(self, label: str) -> dict[str, Record]:
        records: dict[str, Record] = {}
        if "sqlite" in self.kinds:
            on_loop = _sqlite_merchant(str(self.tmp / f"merchant-loop-{label}.db"))
            in_thread = _sqlite_merchant(str(self.tmp / f"merchant-thread-{label}.db"))
            insert = "INSERT OR IGNORE INTO events (id, body) VALUES (?, ?)"

            def loop_record(key: str, body: bytes) -> None:
                on_loop.execute(insert, (key, body))
                on_loop.commit()

            def thread_record(key: str, body: bytes) -> None:
                in_thread.execute(insert, (key, body))
                in_thread.commit()

            async def threaded(key: str, body: bytes) -> None:
                await asyncio.get_running_loop().run_in_executor(self.thread, thread_record, key, body)

            records["SQLite, merchant on the loop"] = loop_record
            records["SQLite, merchant in a thread"] = threaded
        if "postgresql" in self.kinds:
            pool = self.loop.run_until_complete(self._pg_pool())
            table = f'"{self.tag}_merchant".events'
            self.loop.run_until_complete(
                pool.execute(f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, body bytea NOT NULL)")
            )
            sql = f"INSERT INTO {table} (id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING"

            async def pg_record(key: str, body: bytes) -> None:
                await pool.execute(sql, key, body)

            records["PostgreSQL, merchant (asyncpg)"] = pg_record
        return records

    async def _pg_pool(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        if self.pg is None:
            self.pg = await asyncpg.create_pool(POSTGRES_URL, min_size=1, max_size=4)
            await self.pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.tag}_merchant"')
            self.schemas.append(f"{self.tag}_merchant")
        return self.pg

    def notifier(self, url: str, provider: str, settings: dict[str, Any]) -> Notifier:
        notifier = Notifier(url)
        notifier.add_account("shop", provider, **settings)

        @notifier.subscribe
        async def record(result: PaymentResult) -> None:
            pass

        self.loop.run_until_complete(notifier.__aenter__())
        self.notifiers.append(notifier)
        return notifier

    def close(self) -> None:
        for notifier in self.notifiers:
            self.loop.run_until_complete(notifier.__aexit__(None, None, None))
        if self.pg is not None:
            for schema in self.schemas:
                self.loop.run_until_complete(self.pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            self.loop.run_until_complete(self.pg.close())
        self.thread.shutdown()


def _chunks(requests: list[Request], n: int) -> Callable[[], Iterator[list[Request]]]:
    def chunks() -> Iterator[list[Request]]:
        return (requests[i : i + n] for i in range(0, len(requests), n))

    return chunks


def _contender(name: str, app: Any, chunks: Iterator[list[Request]], check: Callable[[int, bytes], bool],
               reference: bool = False) -> Contender:  # fmt: skip
    """Each run takes the next chunk of notifications: every round's are new to every store."""

    async def run() -> None:
        await asgi_batch(app, "/shop/notify", next(chunks), check)()

    return Contender(name, run, reference=reference)


def _case(
    stores: Stores,
    label: str,
    provider: str,
    settings: dict[str, Any],
    requests: list[Request],
    n: int,
    verify: _floors.Verify,
    replies: Any,
    check: Callable[[int, bytes], bool],
) -> list[Contender]:
    chunks = _chunks(requests, n)
    contenders = []
    for name, record in stores.merchants(label).items():
        contenders.append(_contender(name, merchant_app(verify, replies, record), chunks(), check))
    for kind in stores.kinds:
        notifier = stores.notifier(stores.url(kind, f"pn_{label}"), provider, settings)
        contenders.append(_contender(f"paynotify, {kind} store", notifier.asgi(), chunks(), check))
    return contenders


def _ratios(timings: dict[str, Any]) -> list[str]:
    lines = []
    for name, timing in timings.items():
        if not name.startswith("paynotify"):
            lines.append(f"    {name}: {timing.best:.1f} us (median {timing.median:.1f})")
    for kind, peers in (("sqlite", ("SQLite, merchant in a thread", "SQLite, merchant on the loop")),
                        ("postgresql", ("PostgreSQL, merchant (asyncpg)",))):  # fmt: skip
        ours = timings.get(f"paynotify, {kind} store")
        if ours is None:
            continue
        lines.append(f"    paynotify, {kind} store: {ours.best:.1f} us (median {ours.median:.1f})")
        for peer in peers:
            theirs = timings[peer]
            lines.append(f"      ratio vs {peer}: best {ours.best / theirs.best:.2f},"
                         f" median {ours.median / theirs.median:.2f}")  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", default="alipay,v2,v3")
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    kinds = args.stores.split(",")
    total = args.n * (args.rounds + 1)  # the warm-up round takes a chunk too
    loop = new_loop()
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        stores = Stores(loop, Path(tmp), kinds)
        try:
            for case in args.cases.split(","):
                if case == "alipay":
                    a_keys = AlipayKeys.generate()
                    requests = alipay_requests(a_keys, total, f"merchant-alipay-{secrets.token_hex(3)}")
                    contenders = _case(stores, "alipay", "alipay", a_keys.settings(), requests, args.n,
                                       _floors.alipay(a_keys.public_pem), _floors.ALIPAY_REPLIES,
                                       lambda s, b: s == 200 and b == b"success")  # fmt: skip
                elif case == "v2":
                    v2_keys = WeChatV2Keys.generate("MD5")
                    requests = wechat_v2_requests(v2_keys, total, f"merchant-v2-{secrets.token_hex(3)}")
                    contenders = _case(stores, "v2", "wechatpay-v2", v2_keys.settings(), requests, args.n,
                                       _floors.wechat_v2(v2_keys.api_key, "MD5"), _floors.V2_REPLIES,
                                       lambda s, b: s == 200 and b"SUCCESS" in b)  # fmt: skip
                else:
                    v3_keys = WeChatV3Keys.generate()
                    notes = wechat_v3_notes(v3_keys, total, f"merchant-v3-{secrets.token_hex(3)}")
                    requests = [as_request(h, b) for h, b in notes]
                    contenders = _case(stores, "v3", "wechatpay-v3", v3_keys.settings(), requests, args.n,
                                       _floors.wechat_v3(v3_keys.signer.public_key_pem, v3_keys.apiv3_key),
                                       _floors.V3_REPLIES, lambda s, b: s == 204)  # fmt: skip
                timings = interleave(contenders, args.n, args.rounds, loop)
                print(
                    f"  {case} (us per notification, best of {args.rounds} interleaved rounds of {args.n}):"
                )
                print("\n".join(_ratios(timings)), flush=True)
        finally:
            stores.close()
    loop.close()


if __name__ == "__main__":
    main()
