"""WeChat Pay API v2 bills against the emulator: /pay/downloadbill signed (MD5 and HMAC-SHA256) like
a query, the bill's text read by the shared parser, its error XML ("No Bill Exist") a clear error,
never a bill; gzip; a refused signature; the emulator's discrepancies."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from _query_emulator_send import emulator_download, emulator_send
from paynotify_wechatpay import WeChatPayV2Provider, WeChatPayV2Settings
from paynotify_wechatpay._v2_bills import DOWNLOAD_BILL_PATH, NO_BILL
from paynotify_wechatpay.testing import WeChatPayV2Emulator, generate_api_key

from paynotify import BEIJING, Account, BillFormatError, BillLine, Kind, ProviderApiError, Status

PROVIDER = WeChatPayV2Provider()
API = PROVIDER.api()
DAY = date(2026, 11, 3)
NEXT = date(2026, 11, 4)


class Clock:
    def __init__(self) -> None:
        self.now = at(DAY, 9).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BEIJING)


def setup(**options: Any) -> tuple[WeChatPayV2Emulator, Account[WeChatPayV2Settings], Clock]:
    clock = Clock()
    emu = WeChatPayV2Emulator(clock=clock, **options)
    return emu, Account("shop", PROVIDER, WeChatPayV2Settings(**emu.account_settings())), clock


def ledger(emu: WeChatPayV2Emulator, clock: Clock) -> None:
    emu.pay("order-1", total_fee=8888)
    clock.set(at(DAY, 10, 30))
    emu.pay("order-2", total_fee=1000)
    clock.set(at(DAY, 12))
    emu.pay("order-unpaid", total_fee=500, trade_state="NOTPAY")
    clock.set(at(DAY, 15))
    emu.refund("refund-1", "order-1", refund_fee=888)
    clock.set(at(NEXT, 1))
    emu.pay("order-3", total_fee=100)
    clock.set(at(NEXT, 11))


async def lines_of(emu: WeChatPayV2Emulator, acct: Account[WeChatPayV2Settings]) -> list[BillLine]:
    async with emulator_send(emu) as send, emulator_download(emu) as download:
        bill = await API.fetch_bill(send, download, acct, DAY)
    try:
        return list(bill.lines())
    finally:
        bill.close()


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
async def test_the_day_s_bill_is_downloaded_signed_and_read(sign_type: Any) -> None:
    emu, acct, clock = setup(sign_type=sign_type)
    ledger(emu, clock)
    lines = await lines_of(emu, acct)
    assert emu.requests == [(DOWNLOAD_BILL_PATH, "20261103")]  # the emulator checked the sign
    one, two, refund = lines
    assert (one.line, one.kind, one.order_id, one.amount) == (2, Kind.PAYMENT, "order-1", Decimal("88.88"))
    assert one.transaction_id == emu.orders["order-1"]["transaction_id"]
    assert one.at == at(DAY, 9)
    assert (two.order_id, two.amount) == ("order-2", Decimal("10.00"))
    assert (refund.kind, refund.refund_id, refund.amount, refund.status) == (
        Kind.REFUND, "refund-1", Decimal("8.88"), Status.SUCCEEDED,
    )  # fmt: skip
    assert refund.provider_refund_id == emu.refunds["refund-1"]["refund_id"]


async def test_no_bill_is_a_clear_error_never_a_bill() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.no_bill.add(DAY)
    with pytest.raises(ProviderApiError, match=f"no bill of 2026-11-03 \\({NO_BILL}\\)") as caught:
        await lines_of(emu, acct)
    assert caught.value.code == "20002"
    emu.no_bill.clear()
    clock.set(at(DAY, 23))  # the day is not over
    with pytest.raises(ProviderApiError, match=NO_BILL):
        await lines_of(emu, acct)


async def test_a_request_refused_for_its_sign_is_an_error() -> None:
    emu, _acct, clock = setup()
    ledger(emu, clock)
    wrong = Account(
        "shop", PROVIDER, WeChatPayV2Settings(**{**emu.account_settings(), "api_key": generate_api_key()})
    )
    with pytest.raises(ProviderApiError, match="return_msg '签名错误'"):
        await lines_of(emu, wrong)


async def test_the_emulator_s_discrepancies_are_in_its_bill() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
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
    assert emu.orders["order-unpaid"]["trade_state"] == "NOTPAY"  # the ledger is unchanged


async def test_a_malformed_or_unbalanced_bill_is_refused_by_its_line() -> None:
    emu, acct, clock = setup()
    ledger(emu, clock)
    emu.bill_faults.malformed[3] = "`2026-11-03 10:30:00,`wx"
    with pytest.raises(BillFormatError, match=r"^line 3: 2 values for 27 columns"):
        await lines_of(emu, acct)
    emu.bill_faults.malformed.clear()
    emu.bill_faults.bad_totals = True
    with pytest.raises(BillFormatError, match=r"^line 6: 订单总金额 says"):
        await lines_of(emu, acct)
