"""Parts 3 and 4: cost per notification with 10^3, 10^5 and 10^6 events already stored (SQLite,
PostgreSQL, Redis), and memory (RSS) over 10^5 notifications.

    python -m bench.stores [--sizes 1000,100000,1000000] [--per-size 500] [--rounds 3]
                           [--rss-n 100000] [--only stores|rss] [--dir bench/results]

Store scaling: for each size, a store of its own is filled with completed events cloned from a row
the store itself wrote (its own schema, indexes and row size), in bulk and untimed; then, in
`--rounds` rounds rotating over the sizes, `--per-size` new, distinct WeChat Pay v2 notifications go
through the whole pipeline as ASGI, one at a time; "store alone" is `claim` + `complete` for as
many new results. PostgreSQL and Redis are
used when reachable (PAYNOTIFY_TEST_POSTGRES_URL / PAYNOTIFY_TEST_REDIS_URL, or the local
defaults), in a fresh schema / key prefix removed afterwards.

RSS: a fresh process sends `--rss-n` distinct notifications through the pipeline with the SQLite
store (its data is on disk), 32 at a time, and samples RSS after every 10,000 and a gc.collect().
Writes stores.json and rss.json to `--dir`; when that is bench/results (the default), then rewrites
RESULTS.md and the plot from it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench._common import BENCH_DIR, asgi_batch, machine, new_loop, write_json
from bench._fixtures import XML, WeChatV2Keys, wechat_v2_bodies
from paynotify import Kind, Notifier, PaymentResult, Status, make_event_id

PROVIDER = "wechatpay-v2"
POSTGRES_URL = os.environ.get("PAYNOTIFY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PAYNOTIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RSS_CHUNK = 10_000
RESULTS_DIR = BENCH_DIR / "results"
DELIVERED = [0]
PREFILL = (
    "SQLite: one INSERT ... SELECT over a recursive CTE; PostgreSQL: INSERT ... SELECT over "
    "generate_series, then VACUUM ANALYZE; Redis: a Lua script writing each event's hash and index "
    "entries as the store's own scripts do, 10,000 per call."
)


# -- pre-fill, per store ---------------------------------------------------------------------------


async def _count_sqlite(path: str) -> int:
    with sqlite3.connect(path) as conn:
        (n,) = conn.execute("SELECT count(*) FROM paynotify_events").fetchone()
    return int(n)


async def _fill_sqlite(path: str, first: int, last: int, template: str) -> None:
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO paynotify_events (event_id, account, provider, kind, status, order_id, state,"
            " attempts, created_at, updated_at, done_subscribers, result_json)"
            " SELECT 'fill-' || i, account, provider, kind, status, 'fill-order-' || i, state, attempts,"
            " created_at, updated_at, done_subscribers, result_json"
            " FROM n, (SELECT * FROM paynotify_events WHERE event_id = ?)",
            (first, last, template),
        )
        conn.execute("COMMIT")


async def _pg_execute(url: str, schema: str, sql: str, *args: Any) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.split("?")[0])
    try:
        await conn.execute(f'SET search_path TO "{schema}"')
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _fill_postgres(url: str, schema: str, first: int, last: int, template: str) -> None:
    await _pg_execute(
        url,
        schema,
        "INSERT INTO paynotify_events (event_id, account, provider, kind, status, order_id, state,"
        " attempts, created_at, updated_at, done_subscribers, result_json)"
        " SELECT 'fill-' || i, account, provider, kind, status, 'fill-order-' || i, state, attempts,"
        " created_at, updated_at, done_subscribers, result_json"
        " FROM generate_series($1::int, $2::int) AS i,"
        " (SELECT * FROM paynotify_events WHERE event_id = $3) AS t",
        first,
        last,
        template,
    )
    # A table that grew by 10^6 rows in one statement is what autovacuum wakes up for; settle it
    # now, untimed, as a production table's regular vacuum would have, so it does not run during
    # the measurement.
    await _pg_execute(url, schema, "VACUUM ANALYZE paynotify_events")


_REDIS_FILL = """
local p, template, first, last = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('HGETALL', p .. 'e:' .. template)
local f = {}
for i = 1, #t, 2 do f[t[i]] = t[i + 1] end
for i = first, last do
  local id, order = 'fill-' .. i, 'fill-order-' .. i
  local okey = redis.sha1hex(f['account'] .. '\\31' .. order)
  redis.call('HSET', p .. 'e:' .. id, 'account', f['account'], 'provider', f['provider'],
    'kind', f['kind'], 'status', f['status'], 'order_id', order, 'result_json', f['result_json'],
    'okey', okey, 'attempts', f['attempts'], 'created_at', f['created_at'], 'done', f['done'],
    'state', 'done', 'updated_at', f['updated_at'])
  redis.call('ZADD', p .. 's:done', f['updated_at'], id)
  redis.call('ZADD', p .. 'created', f['created_at'], id)
  redis.call('SADD', p .. 'o:' .. okey, id)
end
return last - first + 1
"""


async def _fill_redis(url: str, prefix: str, first: int, last: int, template: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        for start in range(first, last + 1, 10_000):
            end = min(last, start + 9_999)
            await client.eval(_REDIS_FILL, 0, prefix, template, str(start), str(end))  # type: ignore[misc]
    finally:
        await client.aclose()


async def _count_redis(url: str, prefix: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        return int(await client.zcard(prefix + "created"))
    finally:
        await client.aclose()


async def _drop_redis(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=prefix + "*", count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


class Backend:
    """One store under test: its URL, how to count, fill and drop it. `label` keeps several apart."""

    def __init__(self, name: str, tmp: Path, label: str = "probe") -> None:
        self.name = name
        tag = f"pn_bench_{secrets.token_hex(4)}_{label}"
        if name == "sqlite":
            self.path = str(tmp / f"scaling-{label}.db")
            self.url = f"sqlite:///{self.path}"
        elif name == "postgresql":
            self.schema = tag
            self.url = f"{POSTGRES_URL}?schema={tag}"
        else:
            self.prefix = tag + ":"
            self.url = f"{REDIS_URL}?prefix={self.prefix}"

    async def count(self) -> int:
        if self.name == "sqlite":
            return await _count_sqlite(self.path)
        if self.name == "postgresql":
            return int(await _pg_execute(POSTGRES_URL, self.schema, "SELECT count(*) FROM paynotify_events"))
        return await _count_redis(REDIS_URL, self.prefix)

    async def fill(self, first: int, last: int, template: str) -> None:
        if self.name == "sqlite":
            await _fill_sqlite(self.path, first, last, template)
        elif self.name == "postgresql":
            await _fill_postgres(POSTGRES_URL, self.schema, first, last, template)
        else:
            await _fill_redis(REDIS_URL, self.prefix, first, last, template)

    async def drop(self) -> None:
        if self.name == "postgresql":
            await _pg_execute(POSTGRES_URL, "public", f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        elif self.name == "redis":
            await _drop_redis(REDIS_URL, self.prefix)


# -- measuring -------------------------------------------------------------------------------------


def _result(i: int, tag: str) -> PaymentResult:
    order = f"{tag}-{i}"
    return PaymentResult(
        provider=PROVIDER, account="shop", kind=Kind.PAYMENT, status=Status.SUCCEEDED,
        provider_status="SUCCESS", order_id=order, app_id="wx", merchant_id="m",
        event_id=make_event_id("shop", Kind.PAYMENT, order, None, "SUCCESS"),
    )  # fmt: skip


async def _timed(n: int, run: Callable[[], Awaitable[None]]) -> float:
    gc.collect()
    started = time.perf_counter_ns()
    await run()
    return (time.perf_counter_ns() - started) / n / 1000


def _timing(rounds_us: list[float]) -> dict[str, Any]:
    return {"best_us": min(rounds_us), "median_us": statistics.median(rounds_us), "rounds_us": rounds_us}


async def _round(notifier: Notifier, keys: WeChatV2Keys, size: int, r: int,
                 args: argparse.Namespace) -> tuple[float, float]:  # fmt: skip
    """One round on one size: `per_size` new notifications through the pipeline, then as many
    claim + complete on the store alone; microseconds per notification for each."""
    bodies = wechat_v2_bodies(keys, args.per_size, f"s{size}-r{r}")
    batch = asgi_batch(
        notifier.asgi(), "/shop/notify", [(XML, b) for b in bodies], lambda s, b: b"SUCCESS" in b
    )
    before = DELIVERED[0]
    pipeline = await _timed(args.per_size, batch)
    if DELIVERED[0] - before != args.per_size:  # a duplicate would be acknowledged, not delivered
        raise RuntimeError(f"{DELIVERED[0] - before} of {args.per_size} notifications delivered")
    results = [_result(i, f"alone-{size}-{r}") for i in range(args.per_size)]
    store = notifier.store

    async def claim_and_complete() -> None:
        for result in results:
            claim = await store.claim(result, lease_seconds=60)
            if claim.token is None:
                raise RuntimeError(f"{result.event_id} was not new")
            await store.complete(result.event_id, claim.token)

    return pipeline, await _timed(args.per_size, claim_and_complete)


async def _filled(
    backend: Backend, keys: WeChatV2Keys, size: int, stack: AsyncExitStack
) -> tuple[Notifier, float]:
    """A running Notifier on `backend` holding `size` events; the seconds the pre-fill took."""
    notifier = Notifier(backend.url)
    notifier.add_account("shop", PROVIDER, **keys.settings())

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:
        DELIVERED[0] += 1

    await stack.enter_async_context(notifier)
    # The template is a real notification the pipeline stored, so cloned rows have its size.
    body = wechat_v2_bodies(keys, 1, f"template-{size}")[0]
    await asgi_batch(notifier.asgi(), "/shop/notify", [(XML, body)], lambda s, b: b"SUCCESS" in b)()
    (template,) = await notifier.store.find(limit=1)
    started = time.monotonic()
    if size > 1:
        await backend.fill(1, size - 1, template.event_id)
    prefill = time.monotonic() - started
    if (have := await backend.count()) != size:
        raise RuntimeError(f"{backend.name}: {have} events stored, expected {size}")
    return notifier, prefill


async def _scale(name: str, tmp: Path, keys: WeChatV2Keys, args: argparse.Namespace) -> dict[str, Any]:
    """Every size filled in a store of its own first, then rounds rotating over the sizes, so a slow
    spell of this VM hits every size alike (as parts 1 and 2 interleave their contenders)."""
    backends = [Backend(name, tmp, str(size)) for size in args.sizes]
    try:
        async with AsyncExitStack() as stack:
            filled = [
                await _filled(backend, keys, size, stack)
                for backend, size in zip(backends, args.sizes, strict=True)
            ]
            times: dict[int, tuple[list[float], list[float]]] = {size: ([], []) for size in args.sizes}
            order = list(zip(args.sizes, filled, strict=True))
            for r in range(args.rounds):
                for size, (notifier, _) in order[r % len(order) :] + order[: r % len(order)]:
                    pipeline, alone = await _round(notifier, keys, size, r, args)
                    times[size][0].append(pipeline)
                    times[size][1].append(alone)
    finally:
        for backend in backends:
            await backend.drop()
    sizes: dict[str, Any] = {}
    for size, (_, prefill) in zip(args.sizes, filled, strict=True):
        pipe, alone = _timing(times[size][0]), _timing(times[size][1])
        sizes[str(size)] = {"pipeline": pipe, "store_only": alone, "prefill_seconds": prefill}
        line = f"pipeline {pipe['best_us']:.0f} us (median {pipe['median_us']:.0f}), "
        line += f"store alone {alone['best_us']:.0f} us, pre-fill {prefill:.1f} s"
        print(f"  {name} {size:>9,}: {line}", flush=True)
    return {"sizes": sizes}


async def _reachable(backend: Backend) -> str | None:
    """None when the store answers, else why not."""
    try:
        if backend.name == "postgresql":
            await _pg_execute(POSTGRES_URL, "public", "SELECT 1")
        elif backend.name == "redis":
            await _count_redis(REDIS_URL, "pn_bench_probe:")
    except Exception as exc:  # any failure to connect means: skip this store, say why
        return f"{type(exc).__name__}: {exc}"
    return None


async def run_stores(args: argparse.Namespace) -> dict[str, Any]:
    keys = WeChatV2Keys.generate("MD5")
    stores: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.stores:
            backend = Backend(name, Path(tmp))
            if (reason := await _reachable(backend)) is not None:
                skipped[name] = reason
                print(f"  {name}: skipped ({reason})", flush=True)
                continue
            stores[name] = await _scale(name, Path(tmp), keys, args)
    return {
        "machine": machine(),
        "provider": f"{PROVIDER} (MD5)",
        "per_size": args.per_size,
        "rounds": args.rounds,
        "prefill_method": PREFILL,
        "stores": stores,
        "skipped": skipped,
    }


# -- RSS -------------------------------------------------------------------------------------------


async def _rss_child(n: int, out: Path) -> None:
    import psutil

    process = psutil.Process()
    keys = WeChatV2Keys.generate("MD5")
    samples: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        notifier = Notifier(f"sqlite:///{tmp}/rss.db")
        notifier.add_account("shop", PROVIDER, **keys.settings())

        @notifier.subscribe
        async def record(result: PaymentResult) -> None:
            pass

        app = notifier.asgi()
        async with notifier:
            done = 0
            gc.collect()
            samples.append((0, process.memory_info().rss))
            while done < n:
                chunk = min(RSS_CHUNK, n - done)
                bodies = wechat_v2_bodies(keys, chunk, "rss", first=done)
                lanes = [bodies[i::32] for i in range(32)]
                await asyncio.gather(*(
                    asgi_batch(app, "/shop/notify", [(XML, b) for b in lane], lambda s, b: b"SUCCESS" in b)()
                    for lane in lanes
                ))  # fmt: skip
                done += chunk
                del bodies, lanes
                gc.collect()
                samples.append((done, process.memory_info().rss))
                print(f"  rss after {done:,}: {samples[-1][1] / 2**20:.1f} MiB", flush=True)
    write_json(out, {"machine": machine(), "provider": f"{PROVIDER} (MD5)", "store": "sqlite",
                     "chunk": RSS_CHUNK, "samples": samples})  # fmt: skip


def run_rss(args: argparse.Namespace) -> None:
    """In a fresh process, so nothing measured before inflates or hides its memory."""
    command = [sys.executable, "-m", "bench.stores", "--rss-child", "--rss-n", str(args.rss_n)]
    command += ["--dir", str(args.dir)]
    env = os.environ | {"PYTHONPATH": str(BENCH_DIR.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(command, check=True, env=env)


# -- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10**3, 10**5, 10**6]
    )
    parser.add_argument("--per-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stores", type=lambda s: s.split(","), default=["sqlite", "postgresql", "redis"])
    parser.add_argument("--rss-n", type=int, default=100_000)
    parser.add_argument("--only", choices=["stores", "rss"])
    parser.add_argument("--dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    loop = new_loop()
    try:
        if args.rss_child:
            loop.run_until_complete(_rss_child(args.rss_n, args.dir / "rss.json"))
            return
        if args.only != "rss":
            write_json(args.dir / "stores.json", loop.run_until_complete(run_stores(args)))
    finally:
        loop.close()
    if args.only != "stores":
        run_rss(args)
    if args.dir.resolve() == RESULTS_DIR.resolve():  # RESULTS.md always shows bench/results
        from bench.report import write_results

        write_results(args.dir, BENCH_DIR / "RESULTS.md", BENCH_DIR / "stores.png", "python -m bench")


if __name__ == "__main__":
    main()
