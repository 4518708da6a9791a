"""Matching a 10^6-line bill against 10^6 recorded payments: time and peak memory.

    python -m bench.reconcile [--lines 1000000] [--json out.json]

The bill is written to a temporary file as CSV and streamed back as `BillLine`s (the provider's
parser's shape), matched by `paynotify.reconciliation.Matcher` in batches, as `reconcile` does; the
recorded events are `StoredEvent`s indexed one by one (as `reconcile` reads them, page by page).
Peak memory is the process's ru_maxrss (the index is what grows; the bill does not). 1% of the
lines are left unrecorded and 1% have another amount, so the discrepancy path is measured too.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import BinaryIO

from paynotify import BillLine, EventState, Kind, StoredEvent
from paynotify.reconciliation import Matcher

DAY = date(2026, 1, 31)


def _event(i: int) -> StoredEvent:
    result = json.dumps({"kind": "payment", "status": "succeeded", "transaction_id": f"T{i:010d}",
                         "amount": f"{i % 1000}.{i % 100:02d}", "currency": "CNY",
                         "paid_at": "2026-01-31T12:00:00+08:00"})  # fmt: skip
    return StoredEvent(event_id=f"e{i:031d}", account="shop", provider="bench", kind="payment",
                       status="succeeded", order_id=f"o-{i}", state=EventState.DONE, attempts=1,
                       created_at=0.0, updated_at=0.0, next_attempt_at=None, last_error=None,
                       done_subscribers=frozenset(), result_json=result)  # fmt: skip


def _bill(lines: int) -> BinaryIO:
    file = tempfile.TemporaryFile()  # noqa: SIM115
    for i in range(lines):
        amount = f"{i % 1000}.{i % 100:02d}" if i % 100 != 1 else "0.01"
        file.write(f"payment,o-{i},T{i:010d},{amount}\n".encode())
    file.seek(0)
    return file


def _lines(file: BinaryIO) -> Iterator[BillLine]:
    for number, raw in enumerate(file, start=1):
        _, order_id, txn, amount = raw.decode().rstrip("\n").split(",")
        yield BillLine(line=number, kind=Kind.PAYMENT, order_id=order_id, transaction_id=txn,
                       amount=Decimal(amount))  # fmt: skip


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    base = _rss_mib()
    bill = _bill(args.lines)
    matcher = Matcher(DAY)
    started = time.perf_counter()
    for i in range(args.lines):
        if i % 100 != 0:  # 1% never recorded
            matcher.add(_event(i))
    indexed = time.perf_counter()
    after_index = _rss_mib()
    lines = _lines(bill)
    while matcher.step(lines, 5000) == 5000:
        pass
    matched = time.perf_counter()
    figures = {
        "lines": args.lines, "index_seconds": indexed - started, "match_seconds": matched - indexed,
        "matched": matcher.matched, "unresolved": len(matcher.unresolved),
        "amount_mismatch": matcher.counts["amount_mismatch"], "rss_start_mib": base,
        "rss_after_index_mib": after_index, "rss_peak_mib": _rss_mib(),
    }  # fmt: skip
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return figures


if __name__ == "__main__":
    main()
