"""From a verified notification to a PaymentResult: the status table, event ids, money and times."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from _alipay_keys import APP_ID, key, parse
from paynotify_alipay import RETURN_STATUS
from paynotify_alipay.testing import BUYER_ID, SELLER_ID, make_notify, make_return

from paynotify import BEIJING, Kind, MalformedNotification, PaymentResult, Source, Status, VerificationError

PARTIAL = {"refund_fee": "20.00", "gmt_refund": "2024-05-20 12:31:05.123", "out_biz_no": "R-1"}
FULL = {"refund_fee": "88.88", "gmt_refund": "2024-05-21 09:00:00", "out_biz_no": "R-2"}


def notify(
    trade_status: str | None = "TRADE_SUCCESS", order: str = "order-1", **fields: str | None
) -> PaymentResult:
    data = make_notify(key(), app_id=APP_ID, out_trade_no=order, trade_status=trade_status, **fields)  # type: ignore[arg-type]
    return parse(data)


# One row per line of the table in paynotify_alipay._provider's docstring.
TABLE = [
    ("WAIT_BUYER_PAY", {}, Kind.PAYMENT, Status.PENDING, "WAIT_BUYER_PAY"),
    ("TRADE_SUCCESS", {}, Kind.PAYMENT, Status.SUCCEEDED, "TRADE_SUCCESS"),
    ("TRADE_FINISHED", {}, Kind.PAYMENT, Status.SUCCEEDED, "TRADE_FINISHED"),
    ("TRADE_FINISHED", PARTIAL, Kind.PAYMENT, Status.SUCCEEDED, "TRADE_FINISHED"),
    ("TRADE_CLOSED", {}, Kind.PAYMENT, Status.CLOSED, "TRADE_CLOSED"),
    ("TRADE_SUCCESS", PARTIAL, Kind.REFUND, Status.SUCCEEDED, "TRADE_SUCCESS"),
    ("TRADE_SUCCESS", {"gmt_refund": "2024-05-20 12:31:05"}, Kind.REFUND, Status.SUCCEEDED, "TRADE_SUCCESS"),
    ("TRADE_SUCCESS", {"refund_fee": "1.00"}, Kind.REFUND, Status.SUCCEEDED, "TRADE_SUCCESS"),
    ("TRADE_CLOSED", FULL, Kind.REFUND, Status.SUCCEEDED, "TRADE_CLOSED"),
    (None, {}, Kind.PAYMENT, Status.PENDING, "trade_status_sync"),
]


@pytest.mark.parametrize(
    ("trade_status", "extra", "kind", "status", "provider_status"),
    TABLE,
    ids=[f"{row[0]}{'+refund' if 'refund_fee' in row[1] or 'gmt_refund' in row[1] else ''}" for row in TABLE],
)
def test_status_table(
    trade_status: str | None, extra: dict[str, str], kind: Kind, status: Status, provider_status: str
) -> None:
    result = notify(trade_status, **extra)
    assert (result.kind, result.status, result.provider_status) == (kind, status, provider_status)
    assert result.source is Source.NOTIFY
    assert result.is_paid == (kind is Kind.PAYMENT and status is Status.SUCCEEDED)


def test_return_row_is_pending_and_never_paid_even_if_it_claims_success() -> None:
    data = make_return(key(), app_id=APP_ID, out_trade_no="order-1", trade_status="TRADE_SUCCESS")
    result = parse(data, channel="return", method="GET")
    assert (result.kind, result.status, result.provider_status) == (
        Kind.PAYMENT,
        Status.PENDING,
        RETURN_STATUS,
    )
    assert result.source is Source.RETURN
    assert not result.is_paid


def test_payment_fields() -> None:
    result = notify()
    assert result.provider == "alipay"
    assert result.account == "shop"
    assert result.order_id == "order-1"
    assert result.transaction_id is not None
    assert result.transaction_id == result.raw["trade_no"]
    assert result.amount == Decimal("88.88")
    assert type(result.amount) is Decimal
    assert result.currency == "CNY"
    assert (result.payer_id, result.app_id, result.merchant_id) == (BUYER_ID, APP_ID, SELLER_ID)
    assert (result.refund_id, result.refund_amount, result.refunded_at) == (None, None, None)
    assert result.paid_at is not None
    assert result.paid_at.utcoffset() == timedelta(hours=8)
    assert abs(result.paid_at - datetime.now(BEIJING)) < timedelta(minutes=5)
    assert result.raw["notify_type"] == "trade_status_sync"


def test_buyer_open_id_stands_in_for_buyer_id() -> None:
    assert notify(
        buyer_id=None, buyer_open_id="074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
    ).payer_id == ("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5")
    assert notify(buyer_id=None).payer_id is None


def test_refund_fields_and_cumulative_refund_fee() -> None:
    result = notify(**PARTIAL)
    assert result.refund_id == "R-1"
    assert result.refund_amount == Decimal("20.00")  # refund_fee: cumulative refunded on the trade
    assert result.amount == Decimal("88.88")
    assert result.refunded_at == datetime(2024, 5, 20, 12, 31, 5, 123000, tzinfo=BEIJING)
    assert result.provider_refund_id is None
    assert result.refunded_at is not None
    assert result.refunded_at.utcoffset() == timedelta(hours=8)


def test_timeout_close_has_no_payment_time() -> None:
    result = notify("TRADE_CLOSED")
    assert result.paid_at is None
    assert result.status is Status.CLOSED


# -- event ids ----------------------------------------------------------------------------------


def test_event_id_is_stable_across_retries_with_new_notify_ids() -> None:
    first, retry = notify(), notify()
    assert first.raw["notify_id"] != retry.raw["notify_id"]
    assert first.event_id == retry.event_id


def test_each_transition_has_its_own_event_id() -> None:
    ids = [
        notify("WAIT_BUYER_PAY").event_id,
        notify("TRADE_SUCCESS").event_id,
        notify("TRADE_FINISHED").event_id,
        notify("TRADE_SUCCESS", **PARTIAL).event_id,
        notify("TRADE_SUCCESS", **dict(PARTIAL, out_biz_no="R-1b", refund_fee="30.00")).event_id,
        notify("TRADE_CLOSED", **FULL).event_id,
        notify("TRADE_SUCCESS", order="order-2").event_id,
    ]
    assert len(set(ids)) == len(ids)


def test_refund_retry_keeps_its_event_id() -> None:
    assert notify(**PARTIAL).event_id == notify(**PARTIAL).event_id


def test_refund_without_out_biz_no_is_keyed_by_time_and_amount() -> None:
    first = {"refund_fee": "10.00", "gmt_refund": "2024-05-20 10:00:00"}
    second = {"refund_fee": "25.00", "gmt_refund": "2024-05-21 10:00:00"}
    assert notify(**first).event_id == notify(**first).event_id
    assert notify(**first).event_id != notify(**second).event_id
    assert notify(**first).refund_id is None


def test_event_ids_are_per_account() -> None:
    from _alipay_keys import account

    data = make_notify(key(), app_id=APP_ID, out_trade_no="order-1")
    assert parse(data, account("shop")).event_id != parse(data, account("shop-hk")).event_id


def test_without_trade_status_each_notification_is_its_own_event() -> None:
    first, second = notify(None), notify(None)
    assert first.event_id != second.event_id  # never collapse notifications we cannot classify
    assert notify(None, notify_id="1" * 34).event_id == notify(None, notify_id="1" * 34).event_id


# -- bad business values in a verified message --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"total_amount": "abc"}, "total_amount"),
        ({"total_amount": "1e3"}, "total_amount"),
        ({"total_amount": "-1.00"}, "total_amount"),
        ({"total_amount": "NaN"}, "total_amount"),
        ({"total_amount": "1,000.00"}, "total_amount"),
        ({"refund_fee": "ten", "gmt_refund": "2024-05-20 10:00:00"}, "refund_fee"),
        ({"gmt_payment": "2024/05/20 10:00:00"}, "gmt_payment"),
        ({"gmt_payment": "2024-05-20T10:00:00+08:00"}, "gmt_payment"),
        ({"refund_fee": "1.00", "gmt_refund": "yesterday"}, "gmt_refund"),
        ({"order": ""}, "out_trade_no"),
    ],
)
def test_bad_business_values_are_malformed_naming_the_field(fields: dict[str, str], name: str) -> None:
    with pytest.raises(MalformedNotification, match=name) as info:
        notify(**fields)
    assert info.value.account == "shop"


def test_missing_optional_amount_and_times_are_none() -> None:
    result = notify("WAIT_BUYER_PAY", total_amount="", gmt_payment=None)
    assert result.amount is None
    assert result.paid_at is None


def test_verification_comes_before_business_fields() -> None:
    # A forgery with a nonsense amount is a VerificationError, not a MalformedNotification:
    # nothing of an unverified message is read.
    data = make_notify(key("forger"), app_id=APP_ID, out_trade_no="o", total_amount="lots")
    with pytest.raises(VerificationError):
        parse(data)
    no_order = make_notify(key("forger"), app_id=APP_ID, out_trade_no="")
    with pytest.raises(VerificationError):
        parse(no_order)
