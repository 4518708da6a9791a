"""The emulators' trade bills: a day of the ledger written as WeChat Pay's backtick-prefixed CSV.

Both emulators (v2, v3) turn their orders and refunds into `Paid` and `Refunded` and call
`trade_bill`. `BillFaults` makes the bill disagree with the ledger, for tests and local development:

    emulator.bill_faults.unrecorded.append(("order-x", "9.99"))  # a paid order the shop never made
    emulator.bill_faults.missing.add("order-1")                  # its lines left out
    emulator.bill_faults.amounts["order-2"] = "1.00"             # its payment line says 1.00
    emulator.bill_faults.listed_as_paid.add("order-3")           # an unpaid order listed as paid
    emulator.bill_faults.malformed[3] = "`not,a,bill,line"       # file line 3 replaced
    emulator.bill_faults.bad_totals = True                       # the totals do not add up
    emulator.bill_faults.wrong_hash = True                       # v3: the signed hash_value is another file's

Totals are computed from the lines as written, so a bill with discrepancies still adds up unless
`bad_totals` says otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from paynotify import BEIJING
from paynotify_wechatpay._bills import HEADER, SUMMARY_HEADER, SUMS
from paynotify_wechatpay._fund_flow import FUND_FLOW_HEADER, FUND_FLOW_SUMMARY

__all__ = ["BillFaults", "Paid", "Refunded", "fund_flow_bill", "trade_bill"]

_CENT = Decimal("0.01")
_RATE = Decimal("0.006")


@dataclass
class BillFaults:
    """Discrepancies the emulator writes into its bills (see the module's docstring)."""

    unrecorded: list[tuple[str, str]] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    amounts: dict[str, str] = field(default_factory=dict)
    listed_as_paid: set[str] = field(default_factory=set)
    malformed: dict[int, str] = field(default_factory=dict)
    bad_totals: bool = False
    wrong_hash: bool = False


@dataclass(frozen=True)
class Paid:
    """An order of the ledger as a bill needs it; `at` is None while it is unpaid."""

    order: str
    total: int
    """fen"""
    at: datetime | None
    transaction_id: str
    appid: str
    mchid: str
    sub_mchid: str = "0"
    openid: str = ""


@dataclass(frozen=True)
class Refunded:
    order: str
    transaction_id: str
    out_refund_no: str
    refund_id: str
    refund: int
    """fen"""
    at: datetime | None
    status: str
    appid: str
    mchid: str
    sub_mchid: str = "0"


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2).quantize(_CENT)


def _stamp(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _payment(paid: Paid, amount: Decimal, at: datetime) -> dict[str, str]:
    fee = (amount * _RATE).quantize(_CENT)
    return {
        "交易时间": _stamp(at), "公众账号ID": paid.appid, "商户号": paid.mchid, "特约商户号": paid.sub_mchid,
        "微信订单号": paid.transaction_id, "商户订单号": paid.order, "用户标识": paid.openid,
        "交易类型": "JSAPI", "交易状态": "SUCCESS", "付款银行": "OTHERS", "货币种类": "CNY",
        "应结订单金额": f"{amount:.2f}", "代金券金额": "0.00", "微信退款单号": "0", "商户退款单号": "0",
        "退款金额": "0.00", "充值券退款金额": "0.00", "商品名称": "商品", "手续费": f"{fee:.5f}",
        "费率": "0.60%", "订单金额": f"{amount:.2f}", "申请退款金额": "0.00",
    }  # fmt: skip


def _refund(refund: Refunded, at: datetime) -> dict[str, str]:
    amount = _yuan(refund.refund)
    fee = (amount * _RATE).quantize(_CENT)
    return {
        "交易时间": _stamp(at), "公众账号ID": refund.appid, "商户号": refund.mchid,
        "特约商户号": refund.sub_mchid, "微信订单号": refund.transaction_id, "商户订单号": refund.order,
        "交易类型": "JSAPI", "交易状态": "REFUND", "付款银行": "OTHERS", "货币种类": "CNY",
        "应结订单金额": "0.00", "代金券金额": "0.00", "微信退款单号": refund.refund_id,
        "商户退款单号": refund.out_refund_no, "退款金额": f"{amount:.2f}", "充值券退款金额": "0.00",
        "退款类型": "ORIGINAL", "退款状态": refund.status, "商品名称": "商品", "手续费": f"{-fee:.5f}",
        "费率": "0.60%", "订单金额": "0.00", "申请退款金额": f"{amount:.2f}",
    }  # fmt: skip


def _rows(
    day: date, orders: Iterable[Paid], refunds: Iterable[Refunded], faults: BillFaults
) -> list[dict[str, str]]:
    noon = datetime.combine(day, time(12), BEIJING)
    rows: list[dict[str, str]] = []
    for paid in orders:
        if paid.order in faults.missing:
            continue
        at = paid.at if paid.at is not None else (noon if paid.order in faults.listed_as_paid else None)
        if at is not None and at.astimezone(BEIJING).date() == day:
            rows.append(_payment(paid, Decimal(faults.amounts.get(paid.order, _yuan(paid.total))), at))
    for refund in refunds:
        at = refund.at
        if refund.order not in faults.missing and at is not None and at.astimezone(BEIJING).date() == day:
            rows.append(_refund(refund, at))
    for order, amount in faults.unrecorded:
        digits = int(hashlib.sha256(order.encode()).hexdigest()[:16], 16) % 10**21
        ghost = Paid(order, 0, noon, f"4200000{digits:021d}", "wx00000000000ghost", "10000100")
        rows.append(_payment(ghost, Decimal(amount), noon))
    return rows


def trade_bill(day: date, orders: Iterable[Paid], refunds: Iterable[Refunded], faults: BillFaults) -> bytes:
    """The ALL trade bill WeChat Pay serves for `day` of the ledger (UTF-8, `\\n` line ends)."""
    rows = _rows(day, orders, refunds, faults)
    totals: dict[str, Decimal] = {}
    for name, column in SUMS.items():
        totals[name] = sum((Decimal(row.get(column, "0")) for row in rows), Decimal("0.00"))
    if faults.bad_totals:
        totals["订单总金额"] += _CENT
    summary = [str(len(rows))] + [
        f"{totals[name]:.5f}" if name == "手续费总金额" else f"{totals[name]:.2f}"
        for name in SUMMARY_HEADER[1:]
    ]
    lines = [
        ",".join(HEADER),
        *(_row(row) for row in rows),
        ",".join(SUMMARY_HEADER),
        "`" + ",`".join(summary),
    ]
    for number, text in faults.malformed.items():
        lines[number - 1] = text
    return ("\n".join(lines) + "\n").encode("utf-8")


def _row(values: Mapping[str, str]) -> str:
    return "`" + ",`".join(values.get(name, "") for name in HEADER)


def fund_flow_bill(day: date, orders: Iterable[Paid], refunds: Iterable[Refunded]) -> bytes:
    """The BASIC account's fund-flow bill of `day`: each payment in, each refund out (no faults)."""
    moves: list[tuple[datetime, bool, Decimal, str, str]] = []
    for paid in orders:
        if paid.at is not None and paid.at.astimezone(BEIJING).date() == day:
            moves.append((paid.at, True, _yuan(paid.total), paid.transaction_id, paid.order))
    for refund in refunds:
        if refund.at is not None and refund.at.astimezone(BEIJING).date() == day:
            moves.append((refund.at, False, _yuan(refund.refund), refund.refund_id, refund.out_refund_no))
    moves.sort(key=lambda move: move[0])
    balance = Decimal("0.00")
    lines = [",".join(FUND_FLOW_HEADER)]
    for at, income, amount, business_id, voucher in moves:
        balance += amount if income else -amount
        name = "交易" if income else "退款"
        direction, actor = ("收入", "系统") if income else ("支出", "API")
        values = [_stamp(at), business_id, business_id, name, name, direction, f"{amount:.2f}",
                  f"{balance:.2f}", actor, "", voucher]  # fmt: skip
        lines.append("`" + ",`".join(values))
    ins = [move[2] for move in moves if move[1]]
    outs = [move[2] for move in moves if not move[1]]
    lines.append(",".join(FUND_FLOW_SUMMARY))
    totals = [
        len(moves),
        len(ins),
        f"{sum(ins, Decimal('0.00')):.2f}",
        len(outs),
        f"{sum(outs, Decimal('0.00')):.2f}",
    ]
    lines.append("`" + ",`".join(str(total) for total in totals))
    return ("\n".join(lines) + "\n").encode("utf-8")
