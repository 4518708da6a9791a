"""UnionPay's bills against the emulator: the file transfer request (txnType 76) signed with the
merchant's .pfx, the answer verified like a query's before its fileContent is inflated, the ZM file's
fixed-width lines parsed strictly (line numbers); forged, unsigned and no-bill answers, an empty
day, another day's file, the emulator's discrepancies."""

from __future__ import annotations

import base64
import functools
import io
import zipfile
import zlib
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from _query_emulator_send import emulator_download, emulator_send
from paynotify_unionpay import UnionPayProvider, UnionPaySettings
from paynotify_unionpay._bills import UnionPayBill, zm_line_length
from paynotify_unionpay._emulator import MerchantCertificate, generate_merchant_certificate
from paynotify_unionpay._emulator_bills import zm_line
from paynotify_unionpay._file_transfer import _inflated
from paynotify_unionpay.testing import SigningChain, UnionPayEmulator, generate_chain

from paynotify import (
    BEIJING,
    Account,
    BillFormatError,
    BillLine,
    Kind,
    ProviderApiError,
    Status,
    VerificationError,
)

PROVIDER = UnionPayProvider()
API = PROVIDER.api()
DAY = date(2026, 11, 3)


@functools.cache
def chain() -> SigningChain:
    return generate_chain()


@functools.cache
def merchant() -> MerchantCertificate:
    return generate_merchant_certificate()


def setup(**options: Any) -> tuple[UnionPayEmulator, Account[UnionPaySettings]]:
    emu = UnionPayEmulator(chain=chain(), merchant=merchant(), **options)
    return emu, Account("shop", PROVIDER, UnionPaySettings(**emu.account_settings()))


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BEIJING)


def ledger(emu: UnionPayEmulator) -> None:
    emu.pay("order20261103001", txn_amt="8888", txn_time=at(DAY, 9))
    emu.pay("order20261103002", txn_amt="1000", txn_time=at(DAY, 10))
    emu.refund("refund2026110301", "order20261103001", txn_amt="888", txn_time=at(DAY, 15))
    emu.refund("undo2026110301", "order20261103002", txn_amt="1000", txn_type="31", txn_time=at(DAY, 16))
    emu.pay("order20261103003", txn_amt="500", resp_code="05", txn_time=at(DAY, 11))  # not settled
    emu.pay("order20261104001", txn_amt="100", txn_time=at(date(2026, 11, 4), 1))  # the next day


async def lines_of(emu: UnionPayEmulator, acct: Account[UnionPaySettings], day: date = DAY) -> list[BillLine]:
    async with emulator_send(emu) as send, emulator_download(emu) as download:
        bill = await API.fetch_bill(send, download, acct, day)
    try:
        return list(bill.lines())
    finally:
        bill.close()


async def test_consumes_refunds_and_undos_of_the_day_are_read_from_the_signed_answer() -> None:
    emu, acct = setup()
    ledger(emu)
    lines = await lines_of(emu, acct)
    request = emu.requests[-1]
    assert (request["txnType"], request["txnSubType"], request["fileType"], request["settleDate"]) == (
        "76", "01", "00", "1103",
    )  # fmt: skip
    one, two, refund, undo = lines
    assert (one.kind, one.order_id, one.amount, one.line) == (
        Kind.PAYMENT,
        "order20261103001",
        Decimal("88.88"),
        1,
    )
    assert one.transaction_id == emu.transactions[("order20261103001", "20261103090000")]["queryId"]
    assert one.status is Status.SUCCEEDED
    assert one.at == at(DAY, 9)
    assert (two.order_id, two.amount) == ("order20261103002", Decimal("10.00"))
    assert (refund.kind, refund.order_id, refund.refund_id, refund.amount) == (
        Kind.REFUND, "refund2026110301", "refund2026110301", Decimal("8.88"),
    )  # fmt: skip
    assert refund.transaction_id == one.transaction_id  # origQryId: the consume's queryId
    assert refund.provider_refund_id == emu.transactions[("refund2026110301", "20261103150000")]["queryId"]
    assert (undo.kind, undo.provider_status, undo.transaction_id) == (Kind.REFUND, "31", two.transaction_id)


async def test_an_empty_day_has_a_bill_without_lines() -> None:
    emu, acct = setup()
    assert await lines_of(emu, acct) == []


async def test_no_bill_for_a_day_is_a_clear_error() -> None:
    emu, acct = setup()
    emu.no_bill.add(DAY)
    with pytest.raises(ProviderApiError, match=r"no bill for settleDate 1103 \(2026-11-03\): respCode '98'"):
        await lines_of(emu, acct)
    emu.unsigned = True
    with pytest.raises(ProviderApiError, match="unsigned"):
        await lines_of(emu, acct)


async def test_a_forged_or_altered_answer_is_refused_before_its_file_is_read() -> None:
    emu, acct = setup()
    ledger(emu)
    emu.tamper = lambda body: body.replace(b"fileContent=", b"fileContent=QUFB", 1)  # content changed
    with pytest.raises(VerificationError):
        await lines_of(emu, acct)
    emu.tamper = None
    emu.chain = generate_chain()  # signed by a chain the account does not trust
    with pytest.raises(VerificationError):
        await lines_of(emu, acct)


async def test_a_malformed_line_is_refused_with_its_line_number() -> None:
    emu, acct = setup()
    ledger(emu)
    emu.bill_faults.malformed[2] = b"S22 too short"
    with pytest.raises(BillFormatError, match="line 2: 13 bytes") as caught:
        await lines_of(emu, acct)
    assert caught.value.line == 2


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [("txnAmt", "88.88", "txnAmt"), ("txnType", "02", "txnType '02' is not supported"),
     ("queryId", "", "queryId"), ("merId", "898000000000002", "not the account's"),
     ("transmitTime", "1399000000", "MMDDhhmmss")],
)  # fmt: skip
def test_a_field_out_of_shape_is_refused_with_its_line_number(name: str, value: str, says: str) -> None:
    emu, _acct = setup()
    values = {"txnType": "01", "transmitTime": "1103090000", "txnAmt": "000000008888", "queryId": "1" * 21,
              "orderId": "order1", "merId": emu.mer_id, name: value}  # fmt: skip
    with pytest.raises(BillFormatError, match=f"line 1: .*{says}"):
        list(UnionPayBill(DAY, io.BytesIO(_zip(emu.mer_id, zm_line(values))), emu.mer_id).lines())


def test_a_field_without_its_separator_is_refused() -> None:
    emu, _acct = setup()
    values = {"txnType": "01", "transmitTime": "1103090000", "txnAmt": "000000008888", "queryId": "1" * 21,
              "orderId": "order1", "merId": emu.mer_id}  # fmt: skip
    line = bytearray(zm_line(values))
    assert len(line) == zm_line_length()
    line[3] = ord("X")  # the byte after tradeNo
    with pytest.raises(BillFormatError, match="line 1: a field is not followed by its separator"):
        list(UnionPayBill(DAY, io.BytesIO(_zip(emu.mer_id, bytes(line))), emu.mer_id).lines())


def test_another_day_s_or_merchant_s_file_is_refused() -> None:
    emu, _acct = setup()
    other = emu.bill_zip(date(2026, 11, 2))[1]
    with pytest.raises(BillFormatError, match="is not merId"):
        list(UnionPayBill(DAY, io.BytesIO(other), emu.mer_id).lines())
    with pytest.raises(BillFormatError, match="is not merId"):
        list(UnionPayBill(DAY, io.BytesIO(emu.bill_zip(DAY)[1]), "898000000000009").lines())


async def test_the_emulator_s_discrepancies_are_in_its_bill() -> None:
    emu, acct = setup()
    ledger(emu)
    faults = emu.bill_faults
    faults.unrecorded.append(("ghost20261103", "999"))
    faults.missing.add("order20261103002")
    faults.amounts["order20261103001"] = "100"
    faults.listed_as_paid.add("order20261103003")
    lines = {line.order_id: line for line in await lines_of(emu, acct)}
    assert set(lines) == {
        "order20261103001",
        "refund2026110301",
        "undo2026110301",
        "order20261103003",
        "ghost20261103",
    }
    assert lines["order20261103001"].amount == Decimal("1.00")
    assert lines["ghost20261103"].amount == Decimal("9.99")


def test_bills_need_what_a_query_needs() -> None:
    emu, acct = setup()
    assert API.can_fetch_bills(acct)
    settings = {k: v for k, v in emu.account_settings().items() if not k.startswith("signing_pfx")}
    assert not API.can_fetch_bills(Account("shop", PROVIDER, UnionPaySettings(**settings)))


def _zip(mer_id: str, *lines: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"INN{DAY:%y%m%d}88ZM_{mer_id}", b"".join(line + b"\r\n" for line in lines))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "says"),
    [("not base64!", "not base64"), ("bm90IGRlZmxhdGVk", "not deflated"), ("truncated", "truncated")],
)
def test_file_content_that_does_not_inflate_is_refused(content: str, says: str) -> None:
    if content == "truncated":
        content = base64.b64encode(zlib.compress(b"x" * 10_000)[:-8]).decode()
    with pytest.raises(ProviderApiError, match=says):
        _inflated(content, "shop")
