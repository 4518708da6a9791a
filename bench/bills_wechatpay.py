"""A 10^6-line WeChat Pay trade bill: write, SHA1, parse (plain and gzip), peak traced memory.

    python -m bench.bills --provider wechatpay [--lines 1000000] [--json bench/results/bills_wechatpay.json]

The bill is written in WeChat Pay's exact format (the emulators' row writer, UTF-8, backtick
values; payments, every tenth line a refund) to a temporary file, then: its SHA1 as a v3 download
is checked (`file_sha1`), `WeChatPayBill.lines()` timed over it, and again under tracemalloc; the
same over its gzip (tar_type=GZIP), inflated as it is read.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
import tracemalloc
from datetime import datetime
from datetime import time as clock_time
from decimal import Decimal
from typing import BinaryIO

from paynotify_wechatpay._bills import HEADER, SUMMARY_HEADER, SUMS, WeChatPayBill, file_sha1
from paynotify_wechatpay._emulator_bills import Paid, Refunded, _payment, _refund, _row

from bench.bills import DAY
from paynotify import BEIJING

__all__ = ["measure"]


def write_bill(file: BinaryIO, lines: int) -> None:
    """`lines` data lines and the summary written to `file` without holding them."""
    noon = datetime.combine(DAY, clock_time(12), BEIJING)
    totals = dict.fromkeys(SUMS, Decimal(0))
    file.write((",".join(HEADER) + "\n").encode())
    for number in range(lines):
        txn = f"42000{number:023d}"
        if number % 10 == 9:
            row = _refund(Refunded(f"order-{number}", txn, f"refund-{number}", f"5030{number:025d}", 100,
                                   noon, "SUCCESS", "wx2421b1c4370ec43b", "10000100"), noon)  # fmt: skip
        else:
            row = _payment(Paid(f"order-{number}", 8888, noon, txn, "wx2421b1c4370ec43b", "10000100",
                                openid="oUpF8uMEb4qRXf22hE3X68TekukE"), Decimal("88.88"), noon)  # fmt: skip
        for name, column in SUMS.items():
            totals[name] += Decimal(row.get(column, "0"))
        file.write((_row(row) + "\n").encode())
    file.write((",".join(SUMMARY_HEADER) + "\n").encode())
    file.write(
        ("`" + ",`".join([str(lines), *(f"{totals[name]}" for name in SUMMARY_HEADER[1:])]) + "\n").encode()
    )


def _read(file: BinaryIO) -> tuple[int, float, float]:
    """(lines, seconds, peak traced KiB) of reading `file` as a bill, timed then traced."""
    started = time.perf_counter()
    count = sum(1 for _ in WeChatPayBill(DAY, file).lines())
    seconds = time.perf_counter() - started
    tracemalloc.start()
    for _ in WeChatPayBill(DAY, file).lines():
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count, seconds, peak / 1024


def measure(lines: int) -> dict[str, float]:
    with tempfile.TemporaryFile() as plain, tempfile.TemporaryFile() as packed:
        started = time.perf_counter()
        write_bill(plain, lines)
        written = time.perf_counter() - started
        size = plain.tell()
        started = time.perf_counter()
        file_sha1(plain)
        hashed = time.perf_counter() - started
        count, parsed, peak = _read(plain)
        plain.seek(0)
        with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=6) as out:
            shutil.copyfileobj(plain, out)
        gz_size = packed.tell()
        gz_count, gz_parsed, gz_peak = _read(packed)
    assert count == gz_count == lines, (count, gz_count)
    return {"lines": float(lines), "bytes": float(size), "gzip_bytes": float(gz_size),
            "write_s": round(written, 2), "sha1_s": round(hashed, 2), "parse_s": round(parsed, 2),
            "lines_per_s": round(lines / parsed), "peak_traced_kib": round(peak, 1),
            "gzip_parse_s": round(gz_parsed, 2), "gzip_peak_traced_kib": round(gz_peak, 1)}  # fmt: skip
