# ruff: noqa: RUF001  (Alipay writes full-width punctuation; these are its exact bytes)
"""The emulator's trade bills: the day's ledger written as Alipay's ZIP of GBK CSV files.

`BillFaults` makes the bill disagree with the ledger, for tests and local development:

    emulator.bill_faults.unrecorded.append(("order-x", "9.99"))  # a paid order the shop never made
    emulator.bill_faults.missing.add("order-1")                  # its lines left out
    emulator.bill_faults.amounts["order-2"] = "1.00"             # its payment line says 1.00
    emulator.bill_faults.listed_as_paid.add("order-3")           # an unpaid trade listed as paid
    emulator.bill_faults.malformed[7] = "not,a,bill,line"        # file line 7 replaced
    emulator.bill_faults.bad_totals = True                       # the trailer does not add up

Totals are computed from the lines as written, so a bill with discrepancies still adds up unless
`bad_totals` says otherwise.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from paynotify_alipay._bills import DETAILS_SUFFIX, HEADER

__all__ = ["BillFaults", "trade_bill_zip"]

_RULE = "-" * 41
_PADDED = frozenset({"支付宝交易号", "商户订单号", "业务类型", "门店编号", "门店名称", "操作员", "终端号",
                     "对方账户", "退款批次号/请求号"})  # fmt: skip


@dataclass
class BillFaults:
    """Discrepancies the emulator writes into its bills (see the module's docstring)."""

    unrecorded: list[tuple[str, str]] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    amounts: dict[str, str] = field(default_factory=dict)
    listed_as_paid: set[str] = field(default_factory=set)
    malformed: dict[int, str] = field(default_factory=dict)
    bad_totals: bool = False


class _GbkName(zipfile.ZipInfo):
    """A member named in GBK without the UTF-8 flag, as Alipay's ZIPs are."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def _row(values: Mapping[str, str]) -> str:
    # Alipay pads ids with a tab so spreadsheets keep them as text; amounts are bare.
    return ",".join(values.get(name, "") + ("\t" if name in _PADDED else "") for name in HEADER)


def _payment(trade: Mapping[str, str], amount: str) -> dict[str, str]:
    fee = (Decimal(amount) * Decimal("0.006")).quantize(Decimal("0.01"))
    return {
        "支付宝交易号": trade["trade_no"], "商户订单号": trade["out_trade_no"], "业务类型": "交易",
        "商品名称": "商品", "创建时间": trade["send_pay_date"], "完成时间": trade["send_pay_date"],
        "对方账户": trade.get("buyer_logon_id", ""), "订单金额（元）": amount, "商家实收（元）": amount,
        "服务费（元）": f"{-fee:.2f}", "分润（元）": "0.00",
    }  # fmt: skip


def _refund(refund: Mapping[str, str]) -> dict[str, str]:
    amount = f"-{Decimal(refund['refund_amount']):.2f}"
    return {
        "支付宝交易号": refund["trade_no"], "商户订单号": refund["out_trade_no"], "业务类型": "退款",
        "商品名称": "商品", "创建时间": refund["gmt_refund_pay"], "完成时间": refund["gmt_refund_pay"],
        "订单金额（元）": amount, "商家实收（元）": amount, "退款批次号/请求号": refund["out_request_no"],
        "服务费（元）": "0.00", "分润（元）": "0.00",
    }  # fmt: skip


def _rows(
    day: date, trades: Iterable[Mapping[str, str]], refunds: Iterable[Mapping[str, str]], faults: BillFaults
) -> list[dict[str, str]]:
    on_day = day.isoformat()
    rows: list[dict[str, str]] = []
    for trade in trades:
        order = trade["out_trade_no"]
        paid = trade.get("send_pay_date", "")
        if order in faults.missing:
            continue
        if order in faults.listed_as_paid and not paid:
            trade = dict(trade, send_pay_date=f"{on_day} 12:00:00")
            paid = trade["send_pay_date"]
        if paid.startswith(on_day):
            rows.append(_payment(trade, faults.amounts.get(order, trade["total_amount"])))
    for refund in refunds:
        if refund["out_trade_no"] not in faults.missing and refund["gmt_refund_pay"].startswith(on_day):
            rows.append(_refund(refund))
    for order, amount in faults.unrecorded:
        trade_no = f"{day:%Y%m%d}2200" + hashlib.sha256(order.encode()).hexdigest()[:16]
        trade = {"trade_no": trade_no, "out_trade_no": order, "send_pay_date": f"{on_day} 12:00:00"}
        rows.append(_payment(trade, amount))
    return rows


def trade_bill_zip(
    pid: str,
    day: date,
    trades: Iterable[Mapping[str, str]],
    refunds: Iterable[Mapping[str, str]],
    faults: BillFaults,
    *,
    exported: str,
) -> bytes:
    """The ZIP Alipay serves for `day`'s trade bill of the ledger (`trades`, `refunds`)."""
    rows = _rows(day, trades, refunds, faults)
    paid = [row for row in rows if row["业务类型"] == "交易"]
    refunded = [row for row in rows if row["业务类型"] == "退款"]
    paid_sum = sum((Decimal(row["商家实收（元）"]) for row in paid), Decimal("0.00"))
    refund_sum = sum((Decimal(row["商家实收（元）"]) for row in refunded), Decimal("0.00"))
    if faults.bad_totals:
        paid_sum += Decimal("0.01")
    start, end = f"{day:%Y年%m月%d日}", f"{date.fromordinal(day.toordinal() + 1):%Y年%m月%d日}"
    lines = [
        "#支付宝业务明细查询",
        f"#账号：[{pid}0156]",
        f"#起始日期：[{start} 00:00:00]   终止日期：[{end} 00:00:00]",
        f"#{_RULE}业务明细列表{_RULE}",
        ",".join(HEADER),
        *(_row(row) for row in rows),
        f"#{_RULE}业务明细列表结束{_RULE}",
        f"#交易合计：{len(paid)}笔，商家实收共{paid_sum:.2f}元，商家优惠共0.00元",
        f"#退款合计：{len(refunded)}笔，商家实收退款共{refund_sum:.2f}元，商家优惠退款共0.00元",
        f"#导出时间：[{exported}]",
    ]
    for number, text in faults.malformed.items():
        lines[number - 1] = text
    stem = f"{pid}0156_{day:%Y%m%d}"
    summary = "\r\n".join(
        [*lines[:4], "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）", lines[-1]]
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in ((stem + DETAILS_SUFFIX, "\r\n".join(lines) + "\r\n"),
                           (f"{stem}_业务明细(汇总).csv", summary + "\r\n")):  # fmt: skip
            info = _GbkName(name, date_time=(day.year, day.month, day.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("gbk"))
    return buffer.getvalue()
