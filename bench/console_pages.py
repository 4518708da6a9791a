"""The console's pages over 10^6 events in SQLite: the first page and one far down (keyset), each
filter, the overview's reads. Run on demand: `python -m bench.console_pages [--events N]`.

The rows are written straight into the store's own schema (opened by `SQLiteStore`, so every
index the store makes is there), spread over 30 days: 99.4 % done, 0.5 % rejected, 0.1 % dead,
five accounts on two providers. Each figure is the median of `--rounds` timed reads through
`EventLog.find` / `count`, as the console calls them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from paynotify import EventState, SQLiteStore

ACCOUNTS = [
    ("shop", "alipay"),
    ("app", "alipay"),
    ("mini", "wechatpay-v3"),
    ("h5", "wechatpay-v3"),
    ("pos", "alipay"),
]


def fill(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    rng = random.Random(7)
    end = time.time()
    start = end - 30 * 86400
    step = (end - start) / n

    def rows() -> Any:
        for i in range(n):
            account, provider = ACCOUNTS[i % len(ACCOUNTS)]
            r = rng.random()
            state = "dead" if r < 0.001 else "rejected" if r < 0.006 else "done"
            t = start + i * step
            event_id = f"{i:032x}"
            raw = {"out_trade_no": f"order-{i}", "trade_status": "TRADE_SUCCESS", "total_amount": "88.88"}
            result = {"provider": provider, "account": account, "kind": "payment", "status": "succeeded",
                      "order_id": f"order-{i}", "event_id": event_id, "amount": "88.88", "currency": "CNY",
                      "raw": raw}  # fmt: skip
            yield (event_id, account, provider, "payment", "succeeded", f"order-{i}", state, 1, t, t,
                   "subscriber down" if state == "dead" else None, json.dumps(result))  # fmt: skip

    conn.executemany(
        "INSERT INTO paynotify_events (event_id, account, provider, kind, status, order_id, state, attempts,"
        " created_at, updated_at, last_error, result_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    conn.commit()
    conn.close()


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> tuple[float, Any]:
    took, found = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        found = await call()
        took.append(time.perf_counter() - t)
    return statistics.median(took) * 1000, found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        store = SQLiteStore(f"sqlite:///{path}")
        await store.open()
        await store.close()
        began = time.perf_counter()
        fill(path, args.events)
        print(f"{args.events} events written in {time.perf_counter() - began:.0f} s")
        store = SQLiteStore(f"sqlite:///{path}")
        await store.open()
        first = await store.find(limit=51)
        deep_t = first[0].created_at - 20 * 86400  # a cursor twenty days down
        cases: dict[str, Callable[[], Awaitable[Any]]] = {
            "first page (50), no filter": lambda: store.find(limit=51),
            "next page by cursor": lambda: store.find(
                limit=51, created_before=first[-1].created_at, before_event_id=first[-1].event_id
            ),
            "a page 20 days down (cursor)": lambda: store.find(
                limit=51, created_before=deep_t, before_event_id="f" * 32
            ),
            "account=shop": lambda: store.find(limit=51, account="shop"),
            "account=shop, 20 days down": lambda: store.find(limit=51, account="shop", created_before=deep_t),
            "state=dead (0.1 %)": lambda: store.find(limit=51, states=[EventState.DEAD]),
            "state=rejected (0.5 %)": lambda: store.find(limit=51, states=[EventState.REJECTED]),
            "state=done (99.4 %)": lambda: store.find(limit=51, states=[EventState.DONE]),
            "provider=wechatpay-v3": lambda: store.find(limit=51, provider="wechatpay-v3"),
            "kind=refund (none)": lambda: store.find(limit=51, kind="refund"),
            "order id": lambda: store.find(limit=51, account="shop", order_id="order-500000"),
            "time range, one hour": lambda: store.find(
                limit=51, created_after=deep_t - 3600, created_before=deep_t
            ),
            "overview: count()": lambda: store.count(),
            "overview: newest 1000": lambda: store.find(limit=1000),
            "overview: chart, 5000 of 24 h": lambda: store.find(
                limit=5000, created_after=first[0].created_at - 86400
            ),
        }
        print("| read | median ms | rows |\n|---|---:|---:|")
        for name, call in cases.items():
            ms, found = await timed(call, args.rounds)
            rows = len(found) if isinstance(found, list) else sum(found.values())
            print(f"| {name} | {ms:.1f} | {rows} |", flush=True)
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
