"""The emulator's bills: a settlement day's transactions as the ZM file of UnionPay's ZIP.

`BillFaults` makes the bill disagree with the ledger, for tests and local development:

    emulator.bill_faults.unrecorded.append(("order-x", "999"))   # a settled order never made (fen)
    emulator.bill_faults.missing.add("order-1")                  # its line left out
    emulator.bill_faults.amounts["order-2"] = "100"              # its line says 1.00 yuan
    emulator.bill_faults.listed_as_paid.add("order-3")           # an unsettled one listed as settled
    emulator.bill_faults.malformed[2] = b"not a ZM line"         # file line 2 replaced

交易传输时间 is the transaction's traceTime (UnionPay's, MMDDhhmmss), which this emulator sets to
the merchant's txnTime; a test may set it apart. The fields paynotify does not read (`_bills`:
fees, settlement amounts) are written blank-padded or zero, not in a guessed format.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from paynotify_unionpay._bills import ZM_LAYOUT

__all__ = ["BillFaults", "bill_zip", "zm_line"]


@dataclass
class BillFaults:
    """Discrepancies the emulator writes into its bills (see the module's docstring)."""

    unrecorded: list[tuple[str, str]] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    amounts: dict[str, str] = field(default_factory=dict)
    listed_as_paid: set[str] = field(default_factory=set)
    malformed: dict[int, bytes] = field(default_factory=dict)


def zm_line(values: Mapping[str, str]) -> bytes:
    """One ZM line: every field at its width (GBK bytes), left-aligned, space-separated."""
    cells = []
    for name, width in ZM_LAYOUT:
        data = values.get(name, "").encode("gbk")
        if len(data) > width:
            raise ValueError(f"{name} is {len(data)} bytes, wider than {width}")
        cells.append(data.ljust(width, b" "))
    return b" ".join(cells)


def _values(transaction: Mapping[str, str], mer_id: str, fen: str) -> dict[str, str]:
    return {
        "tradeNo": "S22" if transaction["txnType"] == "01" else "S30",
        "traceNo": transaction.get("traceNo", "000000"),
        "transmitTime": transaction.get("traceTime", transaction["txnTime"][4:]),  # 交易传输时间
        "txnAmt": f"{int(fen):012d}", "queryId": transaction["queryId"], "orderId": transaction["orderId"],
        "txnType": transaction["txnType"], "txnSubType": transaction.get("txnSubType", "00"),
        "bizType": transaction.get("bizType", "000201"), "origQryId": transaction.get("origQryId", ""),
        "merId": mer_id,
    }  # fmt: skip


def bill_zip(
    mer_id: str, day: date, transactions: Iterable[Mapping[str, str]], faults: BillFaults
) -> tuple[str, bytes]:
    """The ZIP's file name and bytes for `day`: the settled (respCode 00) transactions of that day."""
    lines = []
    for transaction in transactions:
        order = transaction["orderId"]
        settled = transaction["respCode"] == "00" or order in faults.listed_as_paid
        if order in faults.missing or not settled or transaction["txnTime"][:8] != f"{day:%Y%m%d}":
            continue
        lines.append(zm_line(_values(transaction, mer_id, faults.amounts.get(order, transaction["txnAmt"]))))
    for order, fen in faults.unrecorded:
        query_id = f"{int.from_bytes(hashlib.sha256(order.encode()).digest()[:8], 'big') % 10**21:021d}"
        ghost = {"txnType": "01", "txnTime": f"{day:%Y%m%d}120000", "queryId": query_id, "orderId": order}
        lines.append(zm_line(_values(ghost, mer_id, fen)))
    for number, text in faults.malformed.items():
        lines[number - 1] = text
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        stamp = (day.year, day.month, day.day, 0, 0, 0)
        archive.writestr(zipfile.ZipInfo(f"INN{day:%y%m%d}88ZM_{mer_id}", stamp),
                         b"".join(line + b"\r\n" for line in lines), zipfile.ZIP_DEFLATED)  # fmt: skip
        archive.writestr(zipfile.ZipInfo(f"INN{day:%y%m%d}88ZME_{mer_id}", stamp), b"", zipfile.ZIP_DEFLATED)
    return f"{mer_id}_{day:%Y%m%d}.zip", buffer.getvalue()
