"""Alipay's trade bills against the emulator: the download URL asked for through the signed request
path and verified like a query answer, the GBK ZIP parsed strictly (line numbers of the details
file), trailer totals checked; forged answers, no bill, an empty day, the emulator's discrepancies."""

from __future__ import annotations

import functools
import io
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from _query_emulator_send import emulator_download, emulator_send
from paynotify_alipay import AlipayProvider, AlipaySettings
from paynotify_alipay._api import BILL_QUERY, NO_BILL
from paynotify_alipay._bills import AlipayBill, member_name
from paynotify_alipay.testing import AlipayEmulator, generate_key

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

PROVIDER = AlipayProvider()
API = PROVIDER.api()
DAY = date(2026, 11, 3)


@functools.cache
def keys() -> tuple[Any, Any, Any]:
    return generate_key(), generate_key(), generate_key()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at.timestamp()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BEIJING)


def setup(**options: Any) -> tuple[AlipayEmulator, Account[AlipaySettings], Clock]:
    alipay, app, _ = keys()
    clock = Clock(at(DAY, 9))
    emu = AlipayEmulator(alipay_key=alipay, app_key=app, clock=clock, **options)
    return emu, Account("shop", PROVIDER, AlipaySettings(**emu.account_settings())), clock


def ledger(emu: AlipayEmulator, clock: Clock) -> None:
    """Two payments and a refund on DAY, a payment the day after; the clock then at DAY+1 11:00."""
    emu.pay("order-1", total_amount="88.88")
    clock.set(at(DAY, 10, 30))
    emu.pay("order-2", total_amount="10.00")
    clock.set(at(DAY, 15))
    emu.refund("refund-1", "order-1", refund_amount="8.88")
    clock.set(at(date(2026, 11, 4), 1))
    emu.pay("order-3", total_amount="1.00")
    clock.set(at(date(2026, 11, 4), 11))


async def lines_of(emu: AlipayEmulator, acct: Account[AlipaySettings], day: date = DAY) -> list[BillLine]:
    async with emulator_send(emu) as send, emulator_download(emu) as download:
        bill = await API.fetch_bill(send, download, acct, day)
    try:
        return list(bill.lines())
    finally:
        bill.close()


async def test_payments_and_refunds_of_the_day_are_read_from_the_signed_url_s_zip() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    lines = await lines_of(emu, acct)
    assert emu.requests[-1] == (BILL_QUERY, {"bill_type": "trade", "bill_date": "2026-11-03"})
    one, two, refund = lines
    assert (one.kind, one.order_id, one.amount, one.status) == (
        Kind.PAYMENT,
        "order-1",
        Decimal("88.88"),
        Status.SUCCEEDED,
    )
    assert one.transaction_id == emu.trades["order-1"]["trade_no"]
    assert one.provider_status == "交易"
    assert one.refund_id is None
    assert one.at == at(DAY, 9)
    assert one.fee == Decimal("0.53")
    assert one.line == 6  # the details file's own numbering: 4 comment lines and the header first
    assert (two.order_id, two.amount, two.line) == ("order-2", Decimal("10.00"), 7)
    assert (refund.kind, refund.order_id, refund.refund_id, refund.amount) == (
        Kind.REFUND, "order-1", "refund-1", Decimal("8.88"),
    )  # fmt: skip
    assert refund.transaction_id == one.transaction_id
    assert refund.at == at(DAY, 15)
    # order-3 was paid the next day: not on this day's bill
    assert all(line.order_id != "order-3" for line in lines)


async def test_an_empty_day_has_a_bill_without_lines() -> None:
    emu, acct, clock = setup()
    clock.set(at(date(2026, 11, 4), 11))
    assert await lines_of(emu, acct) == []


async def test_a_day_not_published_yet_or_without_a_bill_is_a_clear_error() -> None:
    emu, acct, clock = setup()
    clock.set(at(DAY, 23))  # the day is not over
    with pytest.raises(ProviderApiError, match=r"no trade bill of 2026-11-03.*not published") as caught:
        await lines_of(emu, acct)
    assert caught.value.code == NO_BILL
    clock.set(at(date(2026, 11, 4), 11))
    emu.no_bill.add(DAY)
    with pytest.raises(ProviderApiError, match=NO_BILL):
        await lines_of(emu, acct)


async def test_an_answer_signed_by_another_key_is_refused_before_the_url_is_used() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.answer_key = keys()[2]
    with pytest.raises(VerificationError):
        await lines_of(emu, acct)
    assert emu._bill_tokens  # the URL was never downloaded


async def test_an_answer_whose_url_was_changed_after_signing_is_refused() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.tamper = lambda text: text.replace("token=", "token=evil")
    with pytest.raises(VerificationError):
        await lines_of(emu, acct)


async def test_an_unsigned_refusal_is_an_error_never_a_bill() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.unsigned = True
    emu.error = NO_BILL
    with pytest.raises(ProviderApiError, match="unsigned"):
        await lines_of(emu, acct)


async def test_a_malformed_line_is_refused_with_its_line_number() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.bill_faults.malformed[7] = "2026110322001,order-2,交易"
    with pytest.raises(BillFormatError, match="line 7: 3 values") as caught:
        await lines_of(emu, acct)
    assert caught.value.line == 7


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [(11, "10,00", "values for"), (11, "10.0", "not an amount"), (2, "转账", "neither 交易 nor 退款"),
     (5, "2026/11/03 10:30", "完成时间")],
)  # fmt: skip
async def test_a_value_out_of_shape_is_refused_with_its_line_number(
    column: int, value: str, says: str
) -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    text = _details(emu.bill_zip(DAY)).splitlines()
    row = text[6].split(",")
    row[column] = value
    emu.bill_faults.malformed[7] = ",".join(row)
    with pytest.raises(BillFormatError, match=f"line 7: .*{says}"):
        await lines_of(emu, acct)


async def test_totals_that_do_not_add_up_are_refused() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.bill_faults.bad_totals = True
    with pytest.raises(BillFormatError, match=r"line 10: the total says 2 lines, 商家实收 98\.89"):
        await lines_of(emu, acct)


def test_a_line_removed_from_the_table_breaks_its_total() -> None:
    emu, _acct, clock = setup()
    ledger(emu, clock)
    rows = _details(emu.bill_zip(DAY)).split("\r\n")
    del rows[6]  # order-2's payment line: the #交易合计 line (now line 9) still counts it
    with pytest.raises(BillFormatError, match="line 9: the total says 2 lines"):
        list(AlipayBill(DAY, io.BytesIO(_zip("\r\n".join(rows)))).lines())


def test_a_refund_line_with_a_positive_amount_is_refused() -> None:
    emu, _acct, clock = setup()
    ledger(emu, clock)
    rows = _details(emu.bill_zip(DAY)).split("\r\n")
    cells = rows[7].split(",")
    assert cells[2] == "退款\t"
    cells[11] = "8.88"
    rows[7] = ",".join(cells)
    with pytest.raises(BillFormatError, match="line 8: a 退款 line needs a negative 订单金额"):
        list(AlipayBill(DAY, io.BytesIO(_zip("\r\n".join(rows)))).lines())


async def test_a_bill_of_another_day_or_a_truncated_file_is_refused() -> None:
    emu, _acct, clock = setup()
    ledger(emu, clock)
    zip_of_other_day = emu.bill_zip(date(2026, 11, 2))
    with pytest.raises(BillFormatError, match="line 3: the bill starts on 2026-11-02, not 2026-11-03"):
        list(AlipayBill(DAY, io.BytesIO(zip_of_other_day)).lines())
    text = _details(emu.bill_zip(DAY))
    cut = text[: text.index("#-----------------------------------------业务明细列表结束")]
    with pytest.raises(BillFormatError, match="ends in its table: truncated"):
        list(AlipayBill(DAY, io.BytesIO(_zip(cut))).lines())
    with pytest.raises(BillFormatError, match="not a ZIP"):
        list(AlipayBill(DAY, io.BytesIO(b"<html>expired</html>")).lines())


async def test_the_emulator_s_discrepancies_are_in_its_bill() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    clock.set(at(DAY, 16))
    emu.pay("order-unpaid", total_amount="5.00", trade_status="WAIT_BUYER_PAY")
    clock.set(at(date(2026, 11, 4), 11))
    faults = emu.bill_faults
    faults.unrecorded.append(("order-ghost", "9.99"))
    faults.missing.add("order-2")
    faults.amounts["order-1"] = "80.00"
    faults.listed_as_paid.add("order-unpaid")
    lines = {(line.kind, line.order_id): line for line in await lines_of(emu, acct)}
    assert set(lines) == {
        (Kind.PAYMENT, "order-1"), (Kind.REFUND, "order-1"), (Kind.PAYMENT, "order-unpaid"),
        (Kind.PAYMENT, "order-ghost"),
    }  # fmt: skip
    assert lines[(Kind.PAYMENT, "order-1")].amount == Decimal("80.00")
    assert lines[(Kind.PAYMENT, "order-ghost")].amount == Decimal("9.99")
    assert emu.trades["order-unpaid"]["trade_status"] == "WAIT_BUYER_PAY"  # the ledger is unchanged


def test_members_are_named_in_gbk_as_alipay_names_them() -> None:
    emu, _acct, clock = setup()
    clock.set(at(date(2026, 11, 4), 11))
    with zipfile.ZipFile(io.BytesIO(emu.bill_zip(DAY))) as archive:
        infos = archive.infolist()
        assert all(not info.flag_bits & 0x800 for info in infos)
        names = sorted(member_name(info) for info in infos)
    assert names[0].endswith("_20261103_业务明细(汇总).csv")
    assert names[1].endswith("_20261103_业务明细.csv")


def test_bills_need_what_a_query_needs() -> None:
    emu, acct, _ = setup()
    assert API.can_fetch_bills(acct)
    settings = {k: v for k, v in emu.account_settings().items() if k != "app_private_key"}
    assert not API.can_fetch_bills(Account("shop", PROVIDER, AlipaySettings(**settings)))


def _details(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (info,) = [i for i in archive.infolist() if member_name(i).endswith("_业务明细.csv")]
        return archive.read(info).decode("gbk")


def _zip(details: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x_20261103_业务明细.csv", details.encode("gbk"))
    return buffer.getvalue()
