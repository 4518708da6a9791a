"""WAL pages per notification on SQLite: paynotify's store (claim, then complete with its attempt)
against the careful merchant (`INSERT OR IGNORE` + commit, bench/merchant.py), on warmed files.

    python -m bench.wal_pages [--n 60] [--warm 2000]

Counted as the WAL's growth in frames (page size + 24 bytes each) after a TRUNCATE checkpoint, with
fewer pages written than the autocheckpoint's 1000 (so no checkpoint restarts the log mid-count).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

from paynotify import Attempt, Kind, PaymentResult, SQLiteStore, Status, make_event_id


def _result(n: int) -> PaymentResult:
    order = f"order-{n:08d}"
    event_id = make_event_id("shop", Kind.PAYMENT, order, None, "TRADE_SUCCESS")
    return PaymentResult(provider="alipay", account="shop", kind=Kind.PAYMENT, status=Status.SUCCEEDED,
                         provider_status="TRADE_SUCCESS", order_id=order, transaction_id=f"2026{n:020d}",
                         amount="9.99", currency="CNY", event_id=event_id)  # fmt: skip


def _frames(path: Path) -> int:
    wal = Path(f"{path}-wal")
    if not wal.exists() or wal.stat().st_size < 32:
        return 0
    with sqlite3.connect(path) as conn:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return (wal.stat().st_size - 32) // (page + 24)


def _truncate(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def paynotify_pages(path: Path, n: int, warm: int) -> dict[str, float]:
    store = SQLiteStore(f"sqlite:///{path}")
    try:

        async def one(i: int, *, history: bool = True) -> None:
            r = _result(i)
            claim = await store.claim(r, lease_seconds=60)
            assert claim.token
            done = Attempt.of(1.0, "delivered") if history else None
            await store.complete(r.event_id, claim.token, done=["orders"], attempt=done)

        for i in range(warm):
            await one(i)
        figures: dict[str, float] = {}
        for label, history in (("claim + complete with its attempt", True), ("without the attempt", False)):
            _truncate(path)
            start = warm + (0 if history else n)
            for i in range(start, start + n):
                await one(i, history=history)
            figures[label] = _frames(path) / n
        return figures
    finally:
        await store.close()


def merchant_pages(path: Path, n: int, warm: int) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body BLOB NOT NULL)")
    conn.commit()
    body = os.urandom(700)

    def one(i: int) -> None:
        conn.execute("INSERT OR IGNORE INTO events (id, body) VALUES (?, ?)",
                     (hashlib.sha1(b"%d" % i).hexdigest(), body))  # fmt: skip
        conn.commit()

    for i in range(warm):
        one(i)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(warm, warm + n):
        one(i)
    frames = _frames(path)  # before close: closing the last connection checkpoints the log away
    conn.close()
    return frames / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--warm", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(paynotify_pages(Path(tmp) / "paynotify.db", args.n, args.warm))
        merchant = merchant_pages(Path(tmp) / "merchant.db", args.n, args.warm)
    print(f"WAL pages per notification ({args.n} after {args.warm} warm, one commit each):")
    for label, pages in figures.items():
        print(f"  paynotify, {label}: {pages:.1f}")
    print(f"  careful merchant (INSERT OR IGNORE + commit): {merchant:.1f}")


if __name__ == "__main__":
    main()
