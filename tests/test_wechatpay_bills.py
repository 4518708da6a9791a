"""WeChat Pay's trade bill parser (v2 and v3 share the file) and the v3 bill download: the signed
answer verified before its URL is used, the file's SHA1 checked against the signed hash before a
line is read, the backtick CSV read strictly (line numbers), the totals checked; gzip; no bill."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from _query_emulator_send import emulator_download, emulator_send
from cryptography.hazmat.primitives.asymmetric import rsa
from paynotify_wechatpay import WeChatPayV3Provider, WeChatPayV3Settings
from paynotify_wechatpay._bills import HEADER, WeChatPayBill
from paynotify_wechatpay._fund_flow import FundFlowBill
from paynotify_wechatpay.testing import (
    SUB_MCH_ID,
    V3SigningKey,
    WeChatPayV3Emulator,
    generate_apiv3_key,
    generate_v3_platform_certificate,
)

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


@functools.cache
def keys() -> tuple[V3SigningKey, V3SigningKey, rsa.RSAPrivateKey, str]:
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        generate_v3_platform_certificate(),
        generate_v3_platform_certificate(),
        merchant,
        generate_apiv3_key(),
    )


def setup() -> tuple[WeChatPayV3Emulator, Account[WeChatPayV3Settings], Clock, WeChatPayV3Provider]:
    platform, _, merchant, apiv3 = keys()
    clock = Clock()
    emu = WeChatPayV3Emulator(signing_key=platform, merchant_key=merchant, apiv3_key=apiv3, clock=clock)
    provider = WeChatPayV3Provider(clock=clock)
    return emu, Account("shop", provider, WeChatPayV3Settings(**emu.account_settings())), clock, provider


def ledger(emu: WeChatPayV3Emulator, clock: Clock) -> None:
    """Two payments and a refund on DAY, a payment the day after; the clock then at DAY+1 11:00."""
    emu.pay("order-1", total=8888)
    clock.set(at(DAY, 10, 30))
    emu.pay("order-2", total=1000)
    clock.set(at(DAY, 15))
    emu.refund("refund-1", "order-1", refund=888)
    clock.set(at(NEXT, 1))
    emu.pay("order-3", total=100)
    clock.set(at(NEXT, 11))


async def lines_of(emu: WeChatPayV3Emulator, acct: Account[WeChatPayV3Settings]) -> list[BillLine]:
    api = acct.provider.api()
    assert api is not None
    async with emulator_send(emu) as send, emulator_download(emu) as download:
        bill = await api.fetch_bill(send, download, acct, DAY)
    try:
        return list(bill.lines())
    finally:
        bill.close()


def parsed(text: str | bytes, day: date = DAY) -> list[BillLine]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    bill = WeChatPayBill(day, io.BytesIO(data))
    try:
        return list(bill.lines())
    finally:
        bill.close()


def emulated_bill() -> list[str]:
    emu, _acct, clock, _ = setup()
    ledger(emu, clock)
    return emu.trade_bill(DAY).decode("utf-8").split("\n")


# -- the parser -----------------------------------------------------------------------------------


def test_payments_and_refunds_are_read_with_their_line_numbers() -> None:
    emu, _acct, clock, _ = setup()
    ledger(emu, clock)
    one, two, refund = parsed(emu.trade_bill(DAY))
    assert (one.line, one.kind, one.order_id, one.amount, one.status) == (
        2, Kind.PAYMENT, "order-1", Decimal("88.88"), Status.SUCCEEDED,
    )  # fmt: skip
    assert one.transaction_id == emu.orders[(None, "order-1")]["transaction_id"]
    assert (one.provider_status, one.refund_id, one.fee, one.at) == (
        "SUCCESS",
        None,
        Decimal("0.53"),
        at(DAY, 9),
    )
    assert (two.line, two.order_id, two.amount) == (3, "order-2", Decimal("10.00"))
    assert (refund.line, refund.kind, refund.order_id, refund.refund_id, refund.amount) == (
        4, Kind.REFUND, "order-1", "refund-1", Decimal("8.88"),
    )  # fmt: skip
    assert refund.provider_refund_id == emu.refunds[(None, "refund-1")]["refund_id"]
    assert (refund.status, refund.fee, refund.at) == (Status.SUCCEEDED, Decimal("-0.05"), at(DAY, 15))


OFFICIAL_STYLE = (
    "\ufeff" + ",".join(HEADER) + "\r\n"
    "`2026-11-03 05:01:46,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134212,"
    "`autotest_1,`oHkLxtx0vUqe,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50000709672019011908420787722,"
    "`REF4200000263201902167700963919,`0.01,`0.00,`ORIGINAL,`SUCCESS,`拨测, with a comma,`,`0.00000,`39.00%,"
    "`0.00,`0.01,`\r\n"
    "`2026-11-03 01:52:32,`wxab8acd895ab1638a,`1921000401,`0,`,`4200000263201902167700134902,`autotest_2,"
    "`wxab8acb865bb1637e,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.03,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,"
    "`0.01000,`39.00%,`0.03,`0.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`2.0,`0.03,`0.01,`0.0,`0.01,`0.03,`0.01\r\n"
)
"""WeChat Pay's own quirks: a BOM, CRLF, a count written 2.0, five-decimal fees, a comma in 商品名称."""


def test_a_bill_in_wechat_pay_s_own_style_is_read() -> None:
    refund, payment = parsed(OFFICIAL_STYLE)
    assert (refund.kind, refund.refund_id, refund.amount, refund.line) == (
        Kind.REFUND, "REF4200000263201902167700963919", Decimal("0.01"), 2,
    )  # fmt: skip
    assert (payment.kind, payment.amount, payment.fee) == (Kind.PAYMENT, Decimal("0.03"), Decimal("0.01"))


def test_an_empty_day_has_a_bill_without_lines() -> None:
    emu, _acct, _clock, _ = setup()
    assert parsed(emu.trade_bill(date(2026, 11, 1))) == []


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("交易状态", "REVOKED", "neither SUCCESS nor REFUND"),
        ("订单金额", "88.88,`0", "28 values for 27 columns"),
        ("订单金额", "88,88", "订单金额 .88,88. is not an amount"),
        ("订单金额", "88.8.8", "订单金额 '88.8.8' is not an amount"),
        ("交易时间", "2026/11/03 09:00", "交易时间"),
        ("商户订单号", "", "without 商户订单号"),
        ("申请退款金额", "1.00", "a SUCCESS line needs a positive 订单金额 and no refund"),
        ("货币种类", "yuan", "not a currency code"),
    ],
)
def test_a_value_out_of_shape_is_refused_with_its_line_number(column: str, value: str, says: str) -> None:
    rows = emulated_bill()
    cells = rows[2][1:].split(",`")
    cells[HEADER.index(column)] = value
    rows[2] = "`" + ",`".join(cells)
    with pytest.raises(BillFormatError, match=f"^line 3: .*{says}") as caught:
        parsed("\n".join(rows))
    assert caught.value.line == 3


def test_a_refund_line_whose_amount_is_not_positive_is_refused() -> None:
    rows = emulated_bill()
    assert "`REFUND," in rows[3]
    cells = rows[3][1:].split(",`")
    cells[HEADER.index("申请退款金额")] = "-8.88"
    rows[3] = "`" + ",`".join(cells)
    with pytest.raises(BillFormatError, match=r"^line 4: a REFUND line needs a positive 申请退款金额"):
        parsed("\n".join(rows))


@pytest.mark.parametrize(
    ("number", "text", "says"),
    [
        (3, "2026-11-03 10:30:00,wx,10000100", "line 3: neither a data line"),
        (3, "`2026-11-03 10:30:00,`wx", "line 3: 2 values for 27 columns"),
        (1, "交易时间,商户订单号", "line 1: the header lacks 微信订单号"),
        (6, "`3,`98.88,`8.88,`0.00,`0.54000,`98.88", "line 6: 6 values for 7 columns"),
    ],
)
def test_a_malformed_line_is_refused_with_its_line_number(number: int, text: str, says: str) -> None:
    rows = emulated_bill()
    rows[number - 1] = text
    with pytest.raises(BillFormatError, match=f"^{says}"):
        parsed("\n".join(rows))


def test_the_totals_are_checked_against_the_lines() -> None:
    emu, _acct, clock, _ = setup()
    ledger(emu, clock)
    emu.bill_faults.bad_totals = True
    with pytest.raises(
        BillFormatError, match=r"^line 6: 订单总金额 says 98\.89; the lines' 订单金额 add up to 98\.88"
    ):
        parsed(emu.trade_bill(DAY))
    rows = emulated_bill()
    del rows[2]  # order-2's line: the totals (now line 5) still count it
    with pytest.raises(BillFormatError, match=r"^line 5: 总交易单数 says 3 lines; the bill has 2"):
        parsed("\n".join(rows))


def test_a_truncated_bill_or_a_line_after_the_totals_is_refused() -> None:
    rows = emulated_bill()
    with pytest.raises(BillFormatError, match=r"^line 4: the file ends in its table: truncated"):
        parsed("\n".join(rows[:4]))
    with pytest.raises(BillFormatError, match=r"^line 5: the file ends before its totals"):
        parsed("\n".join(rows[:5]))
    with pytest.raises(BillFormatError, match=r"^line 7: a line after the totals"):
        parsed("\n".join([*rows[:6], "`1,`2"]))
    with pytest.raises(BillFormatError, match=r"^line 2: not UTF-8"):
        parsed(rows[0].encode() + b"\n`\xff\xfe\n")
    with pytest.raises(BillFormatError, match="damaged"):
        parsed(gzip.compress("\n".join(rows).encode())[:-12])


def test_a_gzip_bill_is_inflated_as_it_is_read() -> None:
    emu, _acct, clock, _ = setup()
    ledger(emu, clock)
    assert [line.order_id for line in parsed(gzip.compress(emu.trade_bill(DAY)))] == [
        "order-1",
        "order-2",
        "order-1",
    ]


# -- v3 download ----------------------------------------------------------------------------------


async def test_the_v3_bill_is_asked_for_verified_downloaded_and_hash_checked() -> None:
    emu, acct, clock, _ = setup()
    ledger(emu, clock)
    lines = await lines_of(emu, acct)
    assert [(line.kind, line.order_id) for line in lines] == [
        (Kind.PAYMENT, "order-1"), (Kind.PAYMENT, "order-2"), (Kind.REFUND, "order-1"),
    ]  # fmt: skip
    (asked, fetched) = emu.requests
    assert asked == ("GET", "/v3/bill/tradebill?bill_date=2026-11-03&bill_type=ALL")
    assert fetched[1].startswith("/v3/billdownload/file?token=")  # signed: the emulator checked it


async def test_a_gzip_v3_bill_is_hash_checked_on_its_text() -> None:
    emu, acct, clock, provider = setup()
    ledger(emu, clock)
    provider.api().gzip_bills = True
    assert len(await lines_of(emu, acct)) == 3
    assert emu.requests[0][1].endswith("&tar_type=GZIP")


async def test_a_file_whose_sha1_is_not_the_signed_hash_is_refused_before_a_line_is_read() -> None:
    emu, acct, clock, _ = setup()
    ledger(emu, clock)
    emu.bill_faults.wrong_hash = True
    emu.bill_faults.malformed[2] = "not read"  # parsing it would say so: it is never parsed
    with pytest.raises(VerificationError, match=r"SHA1 .* is not the signed hash_value"):
        await lines_of(emu, acct)


@pytest.mark.parametrize("forgery", ["tampered hash", "tampered url", "unsigned", "another key"])
async def test_a_forged_or_unsigned_bill_answer_is_refused_before_its_url_is_used(forgery: str) -> None:
    emu, acct, clock, _ = setup()
    ledger(emu, clock)
    if forgery == "tampered hash":
        forged = b'"hash_value":"' + hashlib.sha1(b"another file").hexdigest().encode() + b'"'  # noqa: S324
        emu.tamper = lambda body: re.sub(rb'"hash_value":"[0-9a-f]{40}"', forged, body)
    elif forgery == "tampered url":
        emu.tamper = lambda body: body.replace(b"token=", b"token=x")
    elif forgery == "unsigned":
        emu.unsigned = True
    else:
        emu.signing_key = keys()[1]
    with pytest.raises(VerificationError):
        await lines_of(emu, acct)
    assert len(emu.requests) == 1  # the download URL was never fetched
    assert emu._bill_files


async def test_no_bill_yet_or_none_at_all_is_a_clear_error() -> None:
    emu, acct, clock, _ = setup()
    clock.set(at(DAY, 23))
    with pytest.raises(ProviderApiError, match="gives no bill of 2026-11-03: STATEMENT_CREATING") as caught:
        await lines_of(emu, acct)
    assert caught.value.code == "STATEMENT_CREATING"
    clock.set(at(NEXT, 11))
    emu.no_bill.add(DAY)
    with pytest.raises(ProviderApiError, match="NO_STATEMENT_EXIST"):
        await lines_of(emu, acct)


def test_bills_need_what_a_query_needs() -> None:
    emu, acct, _clock, provider = setup()
    api = provider.api()
    assert api.can_fetch_bills(acct)
    settings: dict[str, Any] = {
        k: v for k, v in emu.account_settings().items() if k != "merchant_private_key"
    }
    settings.pop("merchant_serial")
    assert not api.can_fetch_bills(Account("shop", provider, WeChatPayV3Settings(**settings)))


# -- v3 fund-flow bill ----------------------------------------------------------------------------


async def test_the_v3_fund_flow_bill_is_fetched_hash_checked_and_read() -> None:
    emu, acct, clock, provider = setup()
    ledger(emu, clock)
    async with emulator_send(emu) as send, emulator_download(emu) as download:
        bill = await provider.api().fetch_fund_flow_bill(send, download, acct, DAY)
        try:
            entries = list(bill.entries())
        finally:
            bill.close()
        emu.bill_faults.wrong_hash = True
        with pytest.raises(VerificationError, match="SHA1"):
            await provider.api().fetch_fund_flow_bill(send, download, acct, DAY)
    assert emu.requests[0] == ("GET", "/v3/bill/fundflowbill?bill_date=2026-11-03&account_type=BASIC")
    assert [(e.line, e.income, e.amount, e.balance, e.voucher) for e in entries] == [
        (2, True, Decimal("88.88"), Decimal("88.88"), "order-1"),
        (3, True, Decimal("10.00"), Decimal("98.88"), "order-2"),
        (4, False, Decimal("8.88"), Decimal("90.00"), "refund-1"),
    ]


def test_a_fund_flow_bill_out_of_shape_or_not_adding_up_is_refused_by_its_line() -> None:
    emu, _acct, clock, _ = setup()
    ledger(emu, clock)
    rows = emu.trade_bill(DAY, fund_flow=True).decode().split("\n")

    def read(lines: list[str]) -> None:
        bill = FundFlowBill(DAY, io.BytesIO("\n".join(lines).encode()))
        list(bill.entries())

    read(rows)
    with pytest.raises(BillFormatError, match=r"^line 3: 收支类型 '转账' is neither"):
        read([*rows[:2], rows[2].replace("`收入", "`转账"), *rows[3:]])
    with pytest.raises(BillFormatError, match=r"^line 6: 收入金额 says 98\.88; the lines give 99\.88"):
        read([*rows[:2], rows[2].replace("`10.00", "`11.00"), *rows[3:]])
    with pytest.raises(BillFormatError, match=r"^line 1: not the fund-flow bill's header"):
        read(emulated_bill())


async def test_a_service_provider_gets_its_sub_merchant_s_bill() -> None:
    platform, _, merchant, apiv3 = keys()
    clock = Clock()
    emu = WeChatPayV3Emulator(
        signing_key=platform, merchant_key=merchant, apiv3_key=apiv3, clock=clock, partner=True
    )
    provider = WeChatPayV3Provider(clock=clock)
    acct = Account("sp", provider, WeChatPayV3Settings(**emu.account_settings(sub_mchid=SUB_MCH_ID)))
    emu.pay("order-s", total=500, sub_mchid=SUB_MCH_ID)
    emu.pay("order-other", total=700, sub_mchid="1900000999")  # another sub-merchant's
    clock.set(at(NEXT, 11))
    (line,) = await lines_of(emu, acct)
    assert (line.order_id, line.amount) == ("order-s", Decimal("5.00"))
    assert (
        emu.requests[0][1] == f"/v3/bill/tradebill?bill_date=2026-11-03&bill_type=ALL&sub_mchid={SUB_MCH_ID}"
    )


async def test_a_bill_downloads_from_an_emulator_mounted_under_a_path_as_emulate_does() -> None:
    emu, _acct, clock, provider = setup()
    emu.base_url = "http://127.0.0.1:8001/shop-wechat-v3"  # `paynotify emulate`'s: the account's prefix
    acct = Account("shop", provider, WeChatPayV3Settings(**emu.account_settings()))
    ledger(emu, clock)

    async def mounted(scope: Any, receive: Any, send: Any) -> None:  # as paynotify emulate strips it
        prefix = "/shop-wechat-v3"
        assert scope["path"].startswith(prefix)
        inner = dict(scope, path=scope["path"][len(prefix) :], raw_path=scope["raw_path"][len(prefix) :])
        await emu(dict(inner, root_path=prefix), receive, send)

    api = provider.api()
    assert api is not None
    async with emulator_send(mounted) as send, emulator_download(mounted) as download:
        bill = await api.fetch_bill(send, download, acct, DAY)
    try:
        assert [(line.kind, line.order_id) for line in bill.lines()] == [
            (Kind.PAYMENT, "order-1"), (Kind.PAYMENT, "order-2"), (Kind.REFUND, "order-1"),
        ]  # fmt: skip
    finally:
        bill.close()
