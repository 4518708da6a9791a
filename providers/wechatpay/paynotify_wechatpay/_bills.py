"""WeChat Pay's trade bill (交易账单, bill_type ALL), v2 and v3 alike, read strictly and streaming.

The file is UTF-8 text (often with a BOM), one header line, one line per payment or refund, then
a summary header and its totals line. Every value of a data line starts with a backtick (WeChat
Pay's guard against spreadsheets); the two header lines have none:

    交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,...
    `2026-11-03 09:00:00,`wx2421b1c4370ec43b,`10000100,`0,`,`4200000...,`order-1,`oUpF8...,`JSAPI,`SUCCESS,...
    `2026-11-03 15:00:00,`wx2421b1c4370ec43b,`10000100,`0,`,`4200000...,`order-1,...,`REFUND,...,`refund-1,...
    总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
    `3,`98.88,`8.88,`0.00,`0.54000,`98.88,`8.88

A data line is cut at each `,` + backtick (so a comma inside 商品名称 is kept) and must have one
value per column. 交易状态 SUCCESS is a succeeded payment (`amount` = 订单金额, the order's total as
its notification states it); REFUND a refund (`amount` = 申请退款金额, the refund's amount as its
notification states it; its state from 退款状态; refund ids 商户退款单号 / 微信退款单号). `fee` =
手续费 (negative on a refund line: returned). Any other 交易状态, a missing or extra value, an
amount that is not a plain decimal, a refund amount that is not positive, a payment line with a
refund amount, a line before the header or after the totals: `BillFormatError` naming the file's
1-based line. The totals line is checked against the lines read: 总交易单数 and every sum
(手续费总金额 to its own precision: the lines carry five decimals).
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import BinaryIO

from paynotify import BEIJING, Bill, BillFormatError, BillLine, Kind, Status

__all__ = ["HEADER", "SUMMARY_HEADER", "WeChatPayBill", "file_sha1", "read_trade_bill"]

HEADER = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
    "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号",
    "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
    "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
)  # fmt: skip
"""The ALL bill's columns, as WeChat Pay writes them since 2018-11."""
SUMMARY_HEADER = ("总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
                  "订单总金额", "申请退款总金额")  # fmt: skip
SUMS = {"应结订单总金额": "应结订单金额", "退款总金额": "退款金额", "充值券退款总金额": "充值券退款金额",
        "手续费总金额": "手续费", "订单总金额": "订单金额", "申请退款总金额": "申请退款金额"}  # fmt: skip
"""Each total of the summary and the column it adds up."""
_NEEDED = ("交易时间", "微信订单号", "商户订单号", "交易状态", "货币种类", "微信退款单号", "商户退款单号",
           "退款状态", "手续费", "订单金额", "申请退款金额")  # fmt: skip
REFUND_STATES = {
    "SUCCESS": Status.SUCCEEDED, "PROCESSING": Status.PENDING, "CHANGE": Status.FAILED,
    "ABNORMAL": Status.FAILED, "REFUNDCLOSE": Status.CLOSED, "CLOSED": Status.CLOSED,
}  # fmt: skip
_NONE = frozenset({"", "0"})  # how a payment line leaves its refund ids empty
_MONEY = re.compile(r"-?\d{1,15}(?:\.\d{1,6})?")
_COUNT = re.compile(r"(\d{1,12})(?:\.0+)?")
_MAX_LINE = 64 * 1024
_TIME = "%Y-%m-%d %H:%M:%S"
_WHEN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


def _opened(file: BinaryIO) -> BinaryIO:
    """The bill's text: `file` itself, or inflated as it is read when it is gzip (tar_type=GZIP;
    told by its magic bytes, so a server that ignored tar_type is read too)."""
    file.seek(0)
    gzipped = file.read(2) == _GZIP_MAGIC
    file.seek(0)
    return gzip.GzipFile(fileobj=file, mode="rb") if gzipped else file  # type: ignore[return-value]


def file_sha1(file: BinaryIO) -> str:
    """The lowercase hex SHA1 of the bill's text (inflated first when gzip: WeChat Pay hashes the
    original bill), read in chunks."""
    digest = hashlib.sha1()  # noqa: S324 - WeChat Pay's hash_type, an integrity check of a signed value
    source = _opened(file)
    try:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise BillFormatError(f"WeChat Pay's bill is damaged: {exc}") from None
    return digest.hexdigest()


class WeChatPayBill(Bill):
    """One day's trade bill: `lines()` reads the downloaded file (gzip inflated as it is read)."""

    def lines(self) -> Iterator[BillLine]:
        if self._file is None:
            raise BillFormatError("the bill was closed")
        return read_trade_bill(_opened(self._file), self.day)


def read_trade_bill(file: BinaryIO, day: date) -> Iterator[BillLine]:
    """The lines of the bill in `file` (positioned at its start), checked as they are read."""
    try:
        yield from _Reader(day).read(file)
    except (EOFError, OSError) as exc:  # a truncated or corrupt gzip stream
        raise BillFormatError(f"WeChat Pay's bill is damaged: {exc}") from None


class _Reader:
    """The bill's grammar: header, data lines, summary header, totals, nothing after."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.columns: dict[str, int] = {}
        self.count = 0
        self.sums: dict[str, Decimal] = {}

    def read(self, file: BinaryIO) -> Iterator[BillLine]:
        state = "header"
        number = 0
        summary: list[str] = []
        while True:
            raw = file.readline(_MAX_LINE)
            if not raw:
                break
            number += 1
            if not raw.endswith(b"\n") and len(raw) >= _MAX_LINE:
                raise BillFormatError(f"longer than {_MAX_LINE} bytes", line=number)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise BillFormatError("not UTF-8 text", line=number) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            if state == "header":
                self._header(line, number)
                state = "table"
            elif state == "table":
                if line.startswith("`"):
                    yield self._line(line, number)
                elif line.split(",")[0] == SUMMARY_HEADER[0]:
                    summary = self._summary_header(line, number)
                    state = "totals"
                else:
                    raise BillFormatError(
                        "neither a data line (values start with `) nor the summary header", line=number
                    )
            elif state == "totals":
                self._totals(summary, line, number)
                state = "end"
            elif line.strip():
                raise BillFormatError("a line after the totals", line=number)
        if state != "end":
            where = {"header": "before its header", "table": "in its table", "totals": "before its totals"}
            raise BillFormatError(f"the file ends {where[state]}: truncated", line=number)

    def _header(self, line: str, number: int) -> None:
        names = [name.strip() for name in line.split(",")]
        if len(set(names)) != len(names):
            raise BillFormatError("the header names a column twice", line=number)
        missing = [name for name in _NEEDED if name not in names]
        if missing:
            raise BillFormatError(f"the header lacks {', '.join(missing)}", line=number)
        self.columns = {name: index for index, name in enumerate(names)}
        self.sums = {column: Decimal(0) for column in SUMS.values() if column in self.columns}

    def _summary_header(self, line: str, number: int) -> list[str]:
        names = [name.strip() for name in line.split(",")]
        if len(set(names)) != len(names) or any(name not in SUMMARY_HEADER for name in names):
            raise BillFormatError(f"a summary header out of shape: {line[:80]!r}", line=number)
        return names

    def _values(self, line: str, number: int, expected: int) -> list[str]:
        if not line.startswith("`"):
            raise BillFormatError("a value that does not start with `", line=number)
        values = line[1:].split(",`")
        if len(values) != expected:
            raise BillFormatError(f"{len(values)} values for {expected} columns", line=number)
        return values

    def _line(self, line: str, number: int) -> BillLine:
        values = self._values(line, number, len(self.columns))

        def cell(name: str) -> str:
            return values[self.columns[name]].strip()

        amounts = {column: _money(cell(column), column, number) for column in self.sums}
        order_id, transaction_id = cell("商户订单号"), cell("微信订单号")
        if not order_id or not transaction_id:
            raise BillFormatError("a line without 商户订单号 or 微信订单号", line=number)
        word = cell("交易状态")
        refund_no, wechat_refund_no = cell("商户退款单号"), cell("微信退款单号")
        refund_asked = amounts["申请退款金额"]
        if word == "SUCCESS":
            if refund_asked != 0 or refund_no not in _NONE or amounts["订单金额"] <= 0:
                raise BillFormatError("a SUCCESS line needs a positive 订单金额 and no refund", line=number)
            kind, status, provider_status, amount = Kind.PAYMENT, Status.SUCCEEDED, word, amounts["订单金额"]
        elif word == "REFUND":
            provider_status = cell("退款状态")
            status_or_none = REFUND_STATES.get(provider_status)
            if status_or_none is None:
                raise BillFormatError(f"退款状态 {provider_status[:20]!r} is not a refund state", line=number)
            if refund_asked <= 0 or refund_no in _NONE or wechat_refund_no in _NONE:
                raise BillFormatError(
                    "a REFUND line needs a positive 申请退款金额, 商户退款单号 and 微信退款单号", line=number
                )
            kind, status, amount = Kind.REFUND, status_or_none, refund_asked
        else:
            raise BillFormatError(f"交易状态 {word[:20]!r} is neither SUCCESS nor REFUND", line=number)
        when = cell("交易时间")
        try:
            if not _WHEN.fullmatch(when):
                raise ValueError(when)
            at = datetime.fromisoformat(when).replace(tzinfo=BEIJING)  # strptime's result, 10x faster
        except ValueError:
            raise BillFormatError(f"交易时间 {when[:20]!r} is not {_TIME}", line=number) from None
        currency = cell("货币种类")
        if not _CURRENCY.fullmatch(currency):
            raise BillFormatError(f"货币种类 {currency[:20]!r} is not a currency code", line=number)
        self.count += 1
        for column in self.sums:
            self.sums[column] += amounts[column]
        refund = kind is Kind.REFUND
        return BillLine(
            line=number, kind=kind, order_id=order_id, transaction_id=transaction_id, amount=amount,
            status=status, provider_status=provider_status, currency=currency,
            refund_id=refund_no if refund else None, provider_refund_id=wechat_refund_no if refund else None,
            at=at, fee=amounts["手续费"],
        )  # fmt: skip

    def _totals(self, names: list[str], line: str, number: int) -> None:
        values = [value.strip() for value in self._values(line, number, len(names))]
        for name, value in zip(names, values, strict=True):
            if name == "总交易单数":
                match = _COUNT.fullmatch(value)
                if match is None:
                    raise BillFormatError(f"总交易单数 {value[:20]!r} is not a count", line=number)
                if int(match[1]) != self.count:
                    raise BillFormatError(
                        f"总交易单数 says {int(match[1])} lines; the bill has {self.count}", line=number
                    )
                continue
            total = _money(value, name, number)
            column = SUMS[name]
            if column not in self.sums:
                continue
            read = self.sums[column]
            if name == "手续费总金额" and total.as_tuple().exponent != read.as_tuple().exponent:
                # The lines carry five decimals, the total is rounded to its own.
                read = read.quantize(Decimal(1).scaleb(total.as_tuple().exponent), ROUND_HALF_UP)  # type: ignore[arg-type]
            if total != read:
                raise BillFormatError(
                    f"{name} says {total}; the lines' {column} add up to {read}", line=number
                )


def _money(text: str, name: str, number: int) -> Decimal:
    if not _MONEY.fullmatch(text):
        raise BillFormatError(f"{name} {text[:20]!r} is not an amount in yuan", line=number)
    return Decimal(text)
