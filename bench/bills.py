# ruff: noqa: RUF001
"""Parsing a large trade bill: time and peak memory, run once on demand (not a unit test).

    python -m bench.bills [--provider alipay|wechatpay] [--lines 1000000] [--json bench/results/bills.json]

Alipay: writes a ZIP of `--lines` details lines (payments, every tenth a refund) in Alipay's exact
format (the emulator's writer, GBK, streamed to a temporary file), then reads it through
`AlipayBill.lines()` twice: once timed, once under tracemalloc for the peak of Python allocations
(the parser's memory must not grow with the bill). WeChat Pay (`bench.bills_wechatpay`): the same
for its backtick CSV, plain and gzip (tar_type=GZIP), with the SHA1 check a v3 download gets
first. Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from paynotify_alipay._bills import DETAILS_SUFFIX, HEADER, AlipayBill
from paynotify_alipay._emulator_bills import _GbkName, _payment, _refund, _row

DAY = date(2026, 11, 3)
_RULE = "-" * 41


def write_bill(file: BinaryIO, lines: int) -> None:
    """A details member of `lines` lines (and its trailer) written to `file` without holding it."""
    info = _GbkName(f"20880000000000000156_{DAY:%Y%m%d}{DETAILS_SUFFIX}", date_time=(2026, 11, 3, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    paid = refunded = 0
    paid_sum = refund_sum = Decimal("0.00")
    with zipfile.ZipFile(file, "w") as archive, archive.open(info, "w", force_zip64=True) as member:

        def put(text: str) -> None:
            member.write((text + "\r\n").encode("gbk"))

        put("#支付宝业务明细查询")
        put("#账号：[20880000000000000156]")
        put("#起始日期：[2026年11月03日 00:00:00]   终止日期：[2026年11月04日 00:00:00]")
        put(f"#{_RULE}业务明细列表{_RULE}")
        put(",".join(HEADER))
        for number in range(lines):
            trade = {"trade_no": f"2026110322001{number:015d}", "out_trade_no": f"order-{number}",
                     "send_pay_date": "2026-11-03 12:00:00"}  # fmt: skip
            if number % 10 == 9:
                refund = {**trade, "out_request_no": f"refund-{number}", "refund_amount": "1.00",
                          "gmt_refund_pay": "2026-11-03 13:00:00"}  # fmt: skip
                put(_row(_refund(refund)))
                refunded += 1
                refund_sum -= Decimal("1.00")
            else:
                put(_row(_payment(trade, "88.88")))
                paid += 1
                paid_sum += Decimal("88.88")
        put(f"#{_RULE}业务明细列表结束{_RULE}")
        put(f"#交易合计：{paid}笔，商家实收共{paid_sum:.2f}元，商家优惠共0.00元")
        put(f"#退款合计：{refunded}笔，商家实收退款共{refund_sum:.2f}元，商家优惠退款共0.00元")
        put("#导出时间：[2026年11月04日 09:00:00]")


def read_all(file: BinaryIO) -> int:
    count = 0
    for _ in AlipayBill(DAY, file).lines():
        count += 1
    return count


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", choices=("alipay", "wechatpay"), default="alipay")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.provider == "wechatpay":
        from bench.bills_wechatpay import measure

        return _written(measure(args.lines), args.json)
    with tempfile.TemporaryFile() as file:
        started = time.perf_counter()
        write_bill(file, args.lines)
        written = time.perf_counter() - started
        size = file.tell()
        started = time.perf_counter()
        count = read_all(file)
        parsed = time.perf_counter() - started
        tracemalloc.start()
        read_all(file)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert count == args.lines, count
    result = {"lines": float(args.lines), "zip_bytes": float(size), "write_s": round(written, 2),
              "parse_s": round(parsed, 2), "lines_per_s": round(args.lines / parsed),
              "peak_traced_kib": round(peak / 1024, 1)}  # fmt: skip
    return _written(result, args.json)


def _written(result: dict[str, float], path: Path | None) -> dict[str, float]:
    print(json.dumps(result))
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
