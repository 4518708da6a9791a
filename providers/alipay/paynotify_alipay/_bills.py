# ruff: noqa: RUF001, RUF002  (Alipay writes full-width punctuation; these are its exact bytes)
"""Alipay's trade bill (交易账单, bill_type trade): a ZIP of GBK CSV files, read strictly and streaming.

`alipay.data.dataservice.bill.downloadurl.query` answers a short-lived `bill_download_url`; the ZIP
behind it holds `<pid>_<yyyymmdd>_业务明细.csv` (the details, read here) and
`<pid>_<yyyymmdd>_业务明细(汇总).csv` (a per-store summary, not read). Member names are GBK without
the ZIP's UTF-8 flag (Python reads them as cp437), so they are decoded back. The details file:

    #支付宝业务明细查询
    #账号：[20880211096256330156]
    #起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,...,订单金额（元）,商家实收（元）,...
    2019091622001458860515315453\t,service_1568601259302\t,交易\t,...,0.01,0.01,...
    2019091622001458860515315453\t,service_1568601259302\t,退款\t,...,-0.01,-0.01,...,re_test_1\t,...
    #-----------------------------------------业务明细列表结束------------------------------------
    #交易合计：1笔，商家实收共0.01元，商家优惠共0.00元
    #退款合计：1笔，商家实收退款共-0.01元，商家优惠退款共0.00元
    #导出时间：[2019年09月17日 05:46:49]

Values carry trailing tabs or spaces (Alipay's guard against spreadsheets), stripped here. A 交易
line is a succeeded payment (`amount` = 订单金额); a 退款 line a succeeded refund (订单金额 and
商家实收 negative; `amount` = -订单金额, `refund_id` = 退款批次号/请求号). `fee` = -服务费. The
trailer's counts and 商家实收 sums are checked against the lines read; the start date must be the
day asked for. Anything else (a missing or extra column, an unknown 业务类型, an amount that is not
`-?d+.dd`, a table without its trailer) is a `BillFormatError` naming the member's 1-based line.
The ZIP itself is not signed: the reconciliation only ever queries, verified, what a bill names.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

from paynotify import BEIJING, Bill, BillFormatError, BillLine, Kind, Status

__all__ = ["DETAILS_SUFFIX", "HEADER", "AlipayBill", "member_name", "read_details"]

DETAILS_SUFFIX = "_业务明细.csv"
HEADER = (
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
    "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
    "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
    "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注",
)  # fmt: skip
"""The details table's columns as Alipay writes them (full-width parentheses)."""
_NEEDED = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "商家实收（元）",
           "退款批次号/请求号", "服务费（元）")  # fmt: skip
_KINDS = {"交易": Kind.PAYMENT, "退款": Kind.REFUND}
_MONEY = re.compile(r"-?\d{1,12}\.\d{2}")
_START = re.compile(r"#起始日期[：:]\[(\d{4})年(\d{2})月(\d{2})日 00:00:00\].*")
_TABLE = re.compile(r"#-+业务明细列表-+")
_END = re.compile(r"#-+业务明细列表结束-+")
_PAID = re.compile(r"#交易合计[：:](\d+)笔，商家实收共(-?\d+\.\d{2})元，商家优惠共(-?\d+\.\d{2})元")
_REFUNDED = re.compile(
    r"#退款合计[：:](\d+)笔，商家实收退款共(-?\d+\.\d{2})元，商家优惠退款共(-?\d+\.\d{2})元"
)
_MAX_LINE = 64 * 1024
_TIME = "%Y-%m-%d %H:%M:%S"


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name as Alipay wrote it: GBK bytes, unless the UTF-8 flag says otherwise."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


class AlipayBill(Bill):
    """One day's trade bill: `lines()` reads the details member of the downloaded ZIP."""

    def lines(self) -> Iterator[BillLine]:
        if self._file is None:
            raise BillFormatError("the bill was closed")
        self._file.seek(0)
        return read_details(self._file, self.day)


def read_details(file: BinaryIO, day: date) -> Iterator[BillLine]:
    """The lines of the details member of the ZIP in `file`, checked as they are read."""
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise BillFormatError("Alipay's bill is not a ZIP file") from None
    with archive:
        details = [info for info in archive.infolist() if member_name(info).endswith(DETAILS_SUFFIX)]
        if len(details) != 1:
            names = ", ".join(member_name(info) for info in archive.infolist())[:200]
            raise BillFormatError(
                f"Alipay's bill ZIP has {len(details)} details files (*{DETAILS_SUFFIX}): {names}"
            )
        try:
            with archive.open(details[0]) as raw:
                text = io.TextIOWrapper(raw, encoding="gbk", newline=None)
                yield from _Reader(day).read(text)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:  # a truncated or corrupt member
            raise BillFormatError(f"Alipay's bill ZIP is damaged: {exc}") from None


class _Reader:
    """The details file's grammar: comments, the table's marker, header, lines, end, trailer."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.columns: dict[str, int] = {}
        self.counts = {Kind.PAYMENT: 0, Kind.REFUND: 0}
        self.received = {Kind.PAYMENT: Decimal(0), Kind.REFUND: Decimal(0)}

    def read(self, text: io.TextIOWrapper) -> Iterator[BillLine]:
        state = "preamble"
        dated = False
        totals: dict[Kind, tuple[int, Decimal]] = {}
        number = 0
        while True:
            try:
                line = text.readline(_MAX_LINE)
            except UnicodeDecodeError:
                raise BillFormatError("not GBK text", line=number + 1) from None
            if not line:
                break
            number += 1
            if not line.endswith("\n") and len(line) >= _MAX_LINE:
                raise BillFormatError(f"longer than {_MAX_LINE} characters", line=number)
            line = line.rstrip("\r\n")
            if state == "preamble":
                if _START.fullmatch(line):
                    dated = self._check_day(line, number)
                elif _TABLE.fullmatch(line):
                    if not dated:
                        raise BillFormatError("the table starts before the #起始日期 line", line=number)
                    state = "header"
                elif not line.startswith("#"):
                    raise BillFormatError("a line before the table that is not a # comment", line=number)
            elif state == "header":
                self._header(line, number)
                state = "table"
            elif state == "table":
                if _END.fullmatch(line):
                    state = "trailer"
                else:
                    yield self._line(line, number)
            elif state == "trailer":
                paid, refunded = _PAID.fullmatch(line), _REFUNDED.fullmatch(line)
                if paid or refunded:
                    match, kind = (paid, Kind.PAYMENT) if paid else (refunded, Kind.REFUND)
                    assert match is not None
                    if kind in totals:
                        raise BillFormatError("a total given twice", line=number)
                    totals[kind] = (int(match[1]), Decimal(match[2]))
                    self._check_total(kind, totals[kind], number)
                elif line and not line.startswith("#"):
                    raise BillFormatError("a line after the table that is not a # comment", line=number)
        if state != "trailer":
            raise BillFormatError(f"the file ends in its {state}: truncated", line=number)
        missing = [name for kind, name in ((Kind.PAYMENT, "#交易合计"), (Kind.REFUND, "#退款合计"))
                   if kind not in totals]  # fmt: skip
        if missing:
            raise BillFormatError(f"the trailer has no {' or '.join(missing)} line", line=number)

    def _check_day(self, line: str, number: int) -> bool:
        match = _START.fullmatch(line)
        assert match is not None
        start = date(int(match[1]), int(match[2]), int(match[3]))
        if start != self.day:
            raise BillFormatError(f"the bill starts on {start}, not {self.day}", line=number)
        return True

    def _header(self, line: str, number: int) -> None:
        names = [name.strip().replace("(", "（").replace(")", "）") for name in _cells(line, number)]
        if len(set(names)) != len(names):
            raise BillFormatError("the header names a column twice", line=number)
        missing = [name for name in _NEEDED if name not in names]
        if missing:
            raise BillFormatError(f"the header lacks {', '.join(missing)}", line=number)
        self.columns = {name: index for index, name in enumerate(names)}

    def _line(self, line: str, number: int) -> BillLine:
        cells = [cell.strip() for cell in _cells(line, number)]
        if len(cells) != len(self.columns):
            raise BillFormatError(f"{len(cells)} values for {len(self.columns)} columns", line=number)

        def cell(name: str) -> str:
            return cells[self.columns[name]]

        word = cell("业务类型")
        kind = _KINDS.get(word)
        if kind is None:
            raise BillFormatError(f"业务类型 {word[:20]!r} is neither 交易 nor 退款", line=number)
        total, received, fee = (
            _money(cell(name), name, number) for name in ("订单金额（元）", "商家实收（元）", "服务费（元）")
        )
        order_id, trade_no, refund_no = cell("商户订单号"), cell("支付宝交易号"), cell("退款批次号/请求号")
        if not order_id or not trade_no:
            raise BillFormatError("a line without 商户订单号 or 支付宝交易号", line=number)
        refund = kind is Kind.REFUND
        if refund != (total < 0) or (refund and not refund_no):
            wrong = (
                "a 退款 line needs a negative 订单金额 and its 退款批次号/请求号"
                if refund
                else "a 交易 line with a negative 订单金额"
            )
            raise BillFormatError(wrong, line=number)
        try:
            at = datetime.strptime(cell("完成时间"), _TIME).replace(tzinfo=BEIJING)
        except ValueError:
            raise BillFormatError(f"完成时间 {cell('完成时间')[:20]!r} is not {_TIME}", line=number) from None
        self.counts[kind] += 1
        self.received[kind] += received
        return BillLine(
            line=number, kind=kind, order_id=order_id, transaction_id=trade_no,
            amount=-total if refund else total, status=Status.SUCCEEDED, provider_status=word,
            refund_id=refund_no if refund else None, at=at, fee=-fee,
        )  # fmt: skip

    def _check_total(self, kind: Kind, total: tuple[int, Decimal], number: int) -> None:
        count, received = total
        if (count, received) != (self.counts[kind], self.received[kind]):
            raise BillFormatError(
                f"the total says {count} lines, 商家实收 {received}; the table has {self.counts[kind]}, "
                f"{self.received[kind]}",
                line=number,
            )


def _cells(line: str, number: int) -> list[str]:
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error as exc:
        raise BillFormatError(f"not a CSV line: {exc}", line=number) from None
    return rows[0] if rows else []


def _money(text: str, name: str, number: int) -> Decimal:
    if not _MONEY.fullmatch(text):
        raise BillFormatError(f"{name} {text[:20]!r} is not an amount in yuan (-?d.dd)", line=number)
    return Decimal(text)
