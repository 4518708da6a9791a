"""WeChat Pay API v3's fund-flow bill (资金账单): the account's money movements of one day.

    记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号
    `2026-11-03 09:00:00,`4200000...,`4200000...,`交易,`交易,`收入,`88.88,`88.88,`系统,`,`order-1
    `2026-11-03 15:00:00,`50300...,`50300...,`退款,`退款,`支出,`8.88,`80.00,`10000100API,`,`refund-1
    资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额
    `2,`1,`88.88,`1,`8.88

The same grammar as the trade bill (`_bills`): a header, backtick-valued lines, a summary header
and its totals, read strictly and streaming; 收支类型 is 收入 or 支出, amounts are positive, and the
totals (all lines, income lines and sum, expense lines and sum) must be the lines'. It is not a
list of payments: it is offered for a person or a ledger of the merchant's own
(`WeChatPayV3Api.fetch_fund_flow_bill`), not matched by the reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

from paynotify import BEIJING, BillFormatError
from paynotify_wechatpay._bills import _MAX_LINE, _WHEN, _money, _opened

__all__ = ["FUND_FLOW_HEADER", "FUND_FLOW_SUMMARY", "FundFlowBill", "FundFlowEntry"]

FUND_FLOW_HEADER = ("记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型",
                    "收支金额(元)", "账户结余(元)", "资金变更提交申请人", "备注", "业务凭证号")  # fmt: skip
FUND_FLOW_SUMMARY = ("资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额")
_DIRECTIONS = ("收入", "支出")


@dataclass(frozen=True, slots=True)
class FundFlowEntry:
    """One movement: `amount` in yuan, positive; `income` True for 收入, False for 支出."""

    line: int
    at: datetime
    business_id: str
    flow_id: str
    name: str
    business_type: str
    income: bool
    amount: Decimal
    balance: Decimal
    voucher: str


class FundFlowBill:
    """A downloaded fund-flow bill of one day: `entries()` reads it from its file."""

    def __init__(self, day: date, file: BinaryIO | None) -> None:
        self.day = day
        self._file = file

    def entries(self) -> Iterator[FundFlowEntry]:
        if self._file is None:
            raise BillFormatError("the bill was closed")
        return _read(_opened(self._file))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _read(file: BinaryIO) -> Iterator[FundFlowEntry]:
    counts = {True: 0, False: 0}
    sums = {True: Decimal(0), False: Decimal(0)}
    state, number = "header", 0
    try:
        while raw := file.readline(_MAX_LINE):
            number += 1
            if not raw.endswith(b"\n") and len(raw) >= _MAX_LINE:
                raise BillFormatError(f"longer than {_MAX_LINE} bytes", line=number)
            try:
                line = raw.decode("utf-8").rstrip("\r\n").removeprefix("\ufeff")
            except UnicodeDecodeError:
                raise BillFormatError("not UTF-8 text", line=number) from None
            if state == "header":
                if tuple(name.strip() for name in line.split(",")) != FUND_FLOW_HEADER:
                    raise BillFormatError("not the fund-flow bill's header", line=number)
                state = "table"
            elif state == "table" and line.startswith("`"):
                entry = _entry(_values(line, number, len(FUND_FLOW_HEADER)), number)
                counts[entry.income] += 1
                sums[entry.income] += entry.amount
                yield entry
            elif state == "table":
                if tuple(name.strip() for name in line.split(",")) != FUND_FLOW_SUMMARY:
                    raise BillFormatError("neither a data line nor the summary header", line=number)
                state = "totals"
            elif state == "totals":
                values = _values(line, number, len(FUND_FLOW_SUMMARY))
                expected = [sum(counts.values()), counts[True], sums[True], counts[False], sums[False]]
                for name, value, read in zip(FUND_FLOW_SUMMARY, values, expected, strict=True):
                    if _money(value.strip(), name, number) != read:
                        raise BillFormatError(
                            f"{name} says {value.strip()}; the lines give {read}", line=number
                        )
                state = "end"
            elif line.strip():
                raise BillFormatError("a line after the totals", line=number)
    except (EOFError, OSError) as exc:
        raise BillFormatError(f"WeChat Pay's bill is damaged: {exc}") from None
    if state != "end":
        raise BillFormatError(f"the file ends in its {state}: truncated", line=number)


def _values(line: str, number: int, expected: int) -> list[str]:
    values = line[1:].split(",`") if line.startswith("`") else []
    if len(values) != expected:
        raise BillFormatError(f"{len(values)} values for {expected} columns", line=number)
    return values


def _entry(values: list[str], number: int) -> FundFlowEntry:
    when, business_id, flow_id, name, business_type, direction, amount, balance, _, _, voucher = (
        value.strip() for value in values
    )
    if direction not in _DIRECTIONS:
        raise BillFormatError(f"收支类型 {direction[:20]!r} is neither 收入 nor 支出", line=number)
    try:
        if not _WHEN.fullmatch(when):
            raise ValueError(when)
        at = datetime.fromisoformat(when).replace(tzinfo=BEIJING)
    except ValueError:
        raise BillFormatError(f"记账时间 {when[:20]!r} is not %Y-%m-%d %H:%M:%S", line=number) from None
    moved = _money(amount, "收支金额(元)", number)
    if moved < 0:
        raise BillFormatError("收支金额(元) is negative: 收支类型 gives the direction", line=number)
    return FundFlowEntry(
        line=number, at=at, business_id=business_id,
        flow_id=flow_id, name=name, business_type=business_type, income=direction == "收入", amount=moved,
        balance=_money(balance, "账户结余(元)", number), voucher=voucher,
    )  # fmt: skip
