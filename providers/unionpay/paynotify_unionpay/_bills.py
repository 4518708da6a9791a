"""UnionPay's daily bill (全渠道商户对账文件): the ZM file of the file transfer answer's ZIP.

What is supported, and from where (UnionPay's own SDK demos, `parseZMFile`, and its file interface
spec《全渠道平台接入接口规范 第3部分 文件接口》as those demos cite it):

- the ZIP holds `INN<yymmdd><nn>ZM_<merId>` (the transaction file, read here) and
  `INN<yymmdd><nn>ZME_<merId>` (errors and adjustments, not read);
- a ZM line is 42 fixed-width fields, widths counted in GBK bytes, each followed by one separator
  byte (a space): `ZM_LAYOUT` below;
- read here, strictly: txnType (01 consume -> payment; 04 refund, 31 consume undo -> refund),
  queryId, orderId, txnAmt (12 digits, fen), origQryId, merId (must be the account's) and the
  交易传输时间 (MMDDhhmmss, UnionPay's transmission time, given as `at`).

Not supported (not confirmed from a public source, so not guessed): the sign convention of the
13-wide amount fields (商户手续费, 结算金额, 清算净额), so `fee` is None; the ZME file; a summary
line (the demos know none, so there are no totals to check); txnTypes other than 01, 04 and 31,
which are refused rather than dropped. Every line lists a settled transaction: `status` succeeded,
`provider_status` its txnType.

A UnionPay query needs the merchant's txnTime, which the ZM file does not carry: `at` is UnionPay's
交易传输时间, usually within seconds of it, not the same field.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

from paynotify import BEIJING, Bill, BillFormatError, BillLine, Kind, Status

__all__ = ["ZM_LAYOUT", "ZM_NAME", "UnionPayBill", "zm_line_length"]

ZM_LAYOUT: tuple[tuple[str, int], ...] = (
    ("tradeNo", 3), ("acqInsCode", 11), ("sendInsCode", 11), ("traceNo", 6), ("transmitTime", 10),
    ("accNo", 19), ("txnAmt", 12), ("merCatCode", 4), ("termType", 2), ("queryId", 21),
    ("oldPayType", 2), ("orderId", 32), ("payCardType", 2), ("origTraceNo", 6), ("origTime", 10),
    ("merCharge", 13), ("settleAmt", 13), ("payType", 4), ("groupMerId", 15), ("txnType", 2),
    ("txnSubType", 2), ("bizType", 6), ("accType", 2), ("billType", 4), ("billNo", 32),
    ("interactMode", 1), ("origQryId", 21), ("merId", 15), ("accountType", 1), ("subMerId", 15),
    ("subMerAbbr", 32), ("subMerAmt", 13), ("settleNetAmt", 13), ("termId", 8), ("merReserved", 32),
    ("discountAmt", 13), ("invoiceAmt", 13), ("insAdditionCharge", 12), ("installmentNum", 2),
    ("tradeMedia", 1), ("field41", 32), ("reserved", 98),
)  # fmt: skip
"""The ZM line's fields and their widths in bytes, in order (UnionPay's demo: parseZMFile)."""
ZM_NAME = re.compile(r"INN(\d{6})\d{2}ZM_([0-9A-Za-z]+)")
_KINDS = {"01": Kind.PAYMENT, "04": Kind.REFUND, "31": Kind.REFUND}
_SPANS = {}
_offset = 0
for _name, _width in ZM_LAYOUT:
    _SPANS[_name] = (_offset, _offset + _width)
    _offset += _width + 1
_FULL = _offset - 1
_MINIMUM = _SPANS["tradeMedia"][1]  # trailing reserved fields may come trimmed
_MAX_LINE = 4096


def zm_line_length() -> int:
    """A ZM line's length in bytes without its line break: every field and its separator."""
    return _FULL


class UnionPayBill(Bill):
    """One settlement day's bill of merchant `mer_id`: `lines()` reads the ZM member of the ZIP."""

    def __init__(self, day: date, file: BinaryIO | None, mer_id: str) -> None:
        super().__init__(day, file)
        self.mer_id = mer_id

    def lines(self) -> Iterator[BillLine]:
        if self._file is None:
            raise BillFormatError("the bill was closed")
        self._file.seek(0)
        return _read(self._file, self.day, self.mer_id)


def _read(file: BinaryIO, day: date, mer_id: str) -> Iterator[BillLine]:
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise BillFormatError("UnionPay's bill file is not a ZIP") from None
    with archive:
        found = [(info, ZM_NAME.fullmatch(info.filename.rsplit("/", 1)[-1])) for info in archive.infolist()]
        members = [(info, match) for info, match in found if match is not None]
        if len(members) != 1:
            names = ", ".join(info.filename for info in archive.infolist())[:200]
            raise BillFormatError(
                f"UnionPay's ZIP has {len(members)} ZM files (INN<yymmdd><nn>ZM_<merId>): {names}"
            )
        info, match = members[0]
        if match[1] != f"{day:%y%m%d}" or match[2] != mer_id:
            raise BillFormatError(f"the ZM file {info.filename!r} is not merId {mer_id}'s of {day}")
        try:
            with archive.open(info) as raw:
                number = 0
                while line := raw.readline(_MAX_LINE):
                    number += 1
                    if not line.endswith(b"\n") and len(line) >= _MAX_LINE:
                        raise BillFormatError(f"longer than {_MAX_LINE} bytes", line=number)
                    text = line.rstrip(b"\r\n")
                    if text.strip():
                        yield _line(text, number, day, mer_id)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise BillFormatError(f"UnionPay's ZIP is damaged: {exc}") from None


def _line(raw: bytes, number: int, day: date, mer_id: str) -> BillLine:
    if not _MINIMUM <= len(raw) <= _FULL:
        raise BillFormatError(f"{len(raw)} bytes: a ZM line has {_MINIMUM} to {_FULL}", line=number)
    separators = [start - 1 for start, _ in _SPANS.values() if 0 < start < len(raw)]
    if any(raw[at] != 0x20 for at in separators):
        raise BillFormatError("a field is not followed by its separator (a space)", line=number)

    def field(name: str) -> str:
        start, end = _SPANS[name]
        try:
            return raw[start:end].decode("gbk").strip()
        except UnicodeDecodeError:
            raise BillFormatError(f"{name} is not GBK text", line=number) from None

    txn_type = field("txnType")
    kind = _KINDS.get(txn_type)
    if kind is None:
        raise BillFormatError(f"txnType {txn_type!r} is not supported (01, 04, 31)", line=number)
    fen, query_id, order_id, orig = field("txnAmt"), field("queryId"), field("orderId"), field("origQryId")
    if not re.fullmatch(r"\d{12}", fen):
        raise BillFormatError(f"txnAmt {fen!r} is not 12 digits (fen)", line=number)
    if not re.fullmatch(r"\d{21}", query_id) or not order_id:
        raise BillFormatError("a line without a 21-digit queryId or an orderId", line=number)
    refund = kind is Kind.REFUND
    if refund and not re.fullmatch(r"\d{21}", orig):
        raise BillFormatError("a refund line without a 21-digit origQryId", line=number)
    if field("merId") != mer_id:
        raise BillFormatError(f"merId {field('merId')!r} is not the account's {mer_id}", line=number)
    return BillLine(
        line=number, kind=kind, order_id=order_id, transaction_id=orig if refund else query_id,
        amount=Decimal(fen).scaleb(-2), status=Status.SUCCEEDED, provider_status=txn_type,
        refund_id=order_id if refund else None, provider_refund_id=query_id if refund else None,
        at=_transmitted(field("transmitTime"), day, number),
    )  # fmt: skip


def _transmitted(text: str, day: date, number: int) -> datetime:
    """MMDDhhmmss in the settlement day's year (the year before, for December on a January day)."""
    try:
        at = datetime.strptime(f"{day.year}{text}", "%Y%m%d%H%M%S")
    except ValueError:
        raise BillFormatError(f"交易传输时间 {text!r} is not MMDDhhmmss", line=number) from None
    if at.date() > day:
        at = at.replace(year=day.year - 1)
    return at.replace(tzinfo=BEIJING)
