"""The time of one `find(search=...)` at 10^6 events, on SQLite and PostgreSQL, for each kind of
term. Run on demand: `python -m bench.search [--events N] [--rounds R] [--postgres URL]`.

Rows are written straight into each store's own schema (opened by the store first, so every
index it makes is there). Each figure is the median of `--rounds` reads through `EventLog.find`
(page of 50) as the console calls it; the machine may be shared, so read them as orders of size.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from paynotify import Store, open_store

TERMS = {
    "transaction id": "T777777",
    "merchant refund id": "RF500000",
    "provider refund id": "PR500000",
    "order prefix, 11 match": "ord-77777",
    "order prefix, 1111 match": "ord-777",
    "event-id prefix (8 hex)": None,
    "no match": "zz-nothing",
}
_SQLITE_FILL = (
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?)"
    " INSERT INTO paynotify_events (event_id, account, provider, kind, status, order_id, state,"
    " attempts, created_at, updated_at, result_json)"
    " SELECT lower(hex(randomblob(16))), 'shop', 'examplepay', 'payment', 'succeeded',"
    " 'ORD-' || n, 'done', 1, n, n, json_object('order_id', 'ORD-' || n, 'transaction_id', 'T' || n,"
    " 'refund_id', CASE WHEN n % 10 = 0 THEN 'RF' || n END,"
    " 'provider_refund_id', CASE WHEN n % 10 = 0 THEN 'PR' || n END) FROM c"
)
_PG_FILL = (
    "INSERT INTO {events} (event_id, account, provider, kind, status, order_id, state, attempts,"
    " created_at, updated_at, result_json)"
    " SELECT md5(n::text), 'shop', 'examplepay', 'payment', 'succeeded', 'ORD-' || n, 'done', 1, n, n,"
    " json_build_object('order_id', 'ORD-' || n, 'transaction_id', 'T' || n,"
    " 'refund_id', CASE WHEN n % 10 = 0 THEN 'RF' || n END,"
    " 'provider_refund_id', CASE WHEN n % 10 = 0 THEN 'PR' || n END)::text FROM generate_series(1, $1) n"
)


async def timed(store: Store, event_prefix: str, rounds: int) -> dict[str, tuple[float, int]]:
    out = {}
    for name, term in TERMS.items():
        text = term or event_prefix
        times, found = [], 0
        for _ in range(rounds):
            t = time.perf_counter()
            found = len(await store.find(search=text, limit=50))
            times.append(time.perf_counter() - t)
        out[name] = (statistics.median(times) * 1000, found)
    return out


async def sqlite(n: int, rounds: int) -> dict[str, tuple[float, int]]:
    import sqlite3

    path = Path(tempfile.mkdtemp()) / "search.db"
    store = open_store(f"sqlite:///{path}")
    await store.open()
    conn = sqlite3.connect(path)
    conn.execute(_SQLITE_FILL, (n,))
    conn.commit()
    prefix = conn.execute(
        "SELECT substr(event_id, 1, 8) FROM paynotify_events LIMIT 1 OFFSET 4321"
    ).fetchone()[0]
    conn.close()
    try:
        return await timed(store, prefix, rounds)
    finally:
        await store.close()


async def postgres(url: str, n: int, rounds: int) -> dict[str, tuple[float, int]]:
    import asyncpg

    schema = f"pn_bench_{secrets.token_hex(4)}"
    store = open_store(f"{url}{'&' if '?' in url else '?'}schema={schema}&timeout=60")
    await store.open()
    conn = await asyncpg.connect(url)
    try:
        events = f'"{schema}".paynotify_events'
        await conn.execute(_PG_FILL.format(events=events), n)
        await conn.execute(f"ANALYZE {events}")
        prefix = await conn.fetchval(f"SELECT substr(event_id, 1, 8) FROM {events} OFFSET 4321 LIMIT 1")
        return await timed(store, prefix, rounds)
    finally:
        await store.close()
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    results = {"SQLite": asyncio.run(sqlite(args.events, args.rounds))}
    if args.postgres:
        results["PostgreSQL"] = asyncio.run(postgres(args.postgres, args.events, args.rounds))
    print(f"find(search=...) at {args.events:,} events, median of {args.rounds}, page of 50")
    for backend, figures in results.items():
        for name, (ms, found) in figures.items():
            print(f"  {backend:10} {name:26} {ms:8.2f} ms  ({found} found)")


if __name__ == "__main__":
    main()
