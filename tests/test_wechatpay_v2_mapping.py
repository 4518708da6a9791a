"""Payment notifications into PaymentResult: statuses, amounts in fen to Decimal yuan, Beijing times,
payer, ids, event ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from _wechatpay_v2 import APPID, MCH_ID, account, parse, payment
from paynotify_wechatpay.testing import OPENID

from paynotify import BEIJING, Kind, MalformedNotification, Source, Status, make_event_id


def test_successful_payment_maps_every_field() -> None:
    body = payment(
        out_trade_no="order-42",
        total_fee=8888,
        time_end="20240101000001",
        transaction_id="4200001234202401010000000001",
        attach="meta",
    )
    result = parse(body)
    assert (result.provider, result.account) == ("wechatpay-v2", "shop")
    assert (result.kind, result.status, result.provider_status) == (Kind.PAYMENT, Status.SUCCEEDED, "SUCCESS")
    assert result.is_paid
    assert result.source is Source.NOTIFY
    assert result.order_id == "order-42"
    assert result.transaction_id == "4200001234202401010000000001"
    assert result.amount == Decimal("88.88")
    assert isinstance(result.amount, Decimal)
    assert result.currency == "CNY"
    assert result.paid_at == datetime(2024, 1, 1, 0, 0, 1, tzinfo=BEIJING)
    assert result.paid_at is not None
    assert result.paid_at.utcoffset() == timedelta(hours=8)
    assert result.paid_at.astimezone(UTC).isoformat() == "2023-12-31T16:00:01+00:00"
    assert result.payer_id == OPENID
    assert (result.app_id, result.merchant_id) == (APPID, MCH_ID)
    assert result.refund_id is None
    assert result.refund_amount is None
    assert result.provider_refund_id is None
    assert result.raw["attach"] == "meta"
    assert result.raw["cash_fee"] == "8888"


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (8888, "88.88"),
        (123456789, "1234567.89"),
        (10**18 - 1, "9999999999999999.99"),
    ],
)
def test_amounts_are_exact_decimal_yuan_with_two_places(fen: int, yuan: str) -> None:
    amount = parse(payment(total_fee=fen)).amount
    assert isinstance(amount, Decimal)
    assert str(amount) == yuan


def test_fee_type_sets_the_currency() -> None:
    assert parse(payment(fee_type="HKD")).currency == "HKD"
    assert parse(payment(fee_type=None)).currency == "CNY"


@pytest.mark.parametrize(
    ("result_code", "status"),
    [("SUCCESS", Status.SUCCEEDED), ("FAIL", Status.FAILED)],
)
def test_result_code_mapping(result_code: str, status: Status) -> None:
    result = parse(payment(result_code=result_code))
    assert (result.kind, result.status, result.provider_status) == (Kind.PAYMENT, status, result_code)
    assert result.is_paid is (status is Status.SUCCEEDED)


def test_failed_payment_needs_no_transaction_amount_or_time() -> None:
    result = parse(payment(result_code="FAIL", transaction_id=None, total_fee=None, time_end=None))
    assert (result.status, result.order_id) == (Status.FAILED, "order-1")
    assert result.transaction_id is None
    assert result.amount is None
    assert result.paid_at is None
    assert result.event_id == make_event_id("shop", "payment", "order-1", None, "FAIL")


@pytest.mark.parametrize("name", ["transaction_id", "total_fee", "time_end", "out_trade_no", "result_code"])
def test_successful_payment_missing_a_required_field_is_malformed(name: str) -> None:
    removed: dict[str, Any] = {name: "" if name == "out_trade_no" else None}
    with pytest.raises(MalformedNotification, match=f"has no {name}"):
        parse(payment(**removed))


@pytest.mark.parametrize(
    "value", ["-1", "1.5", "1e3", " 10", "10 ", "\uff11\uff10", "+10", "1_000", "0x10", "ten", "1" * 19]
)
def test_bad_total_fee_in_a_verified_message_is_malformed(value: str) -> None:
    with pytest.raises(MalformedNotification, match=r"total_fee is .* not a whole number of fen"):
        parse(payment(total_fee=value))


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01 00:00:00",
        "20241301000000",
        "20240230120000",
        "2024010112000",
        "202401011200000",
        "\uff12\uff10\uff12\uff140101120000",
    ],
)
def test_bad_time_end_in_a_verified_message_is_malformed(value: str) -> None:
    with pytest.raises(MalformedNotification, match=r"time_end is .* not a yyyyMMddHHmmss time"):
        parse(payment(time_end=value))


def test_payer_is_openid_or_else_sub_openid() -> None:
    assert parse(payment(sub_openid="sub-open-id")).payer_id == OPENID
    assert parse(payment(openid=None, sub_openid="sub-open-id")).payer_id == "sub-open-id"
    assert parse(payment(openid=None)).payer_id is None


def test_ids_come_from_the_message_for_the_pipeline_to_check() -> None:
    # A verified notification for another appid is returned as is: the pipeline's account check
    # refuses it (CheckFailed: acknowledged, not delivered).
    result = parse(payment(appid="wx00000000000other"))
    assert result.app_id == "wx00000000000other"
    assert account().settings.expected_app_id() == APPID
    assert account().settings.expected_merchant_id() == MCH_ID


def test_event_id_is_stable_across_retries_and_distinct_per_transition() -> None:
    first = parse(payment(time_end="20240101000001"))
    retry = parse(payment(time_end="20240101000009"))
    assert first.raw["nonce_str"] != retry.raw["nonce_str"]
    assert first.event_id == retry.event_id
    assert first.event_id == make_event_id("shop", "payment", first.transaction_id, None, "SUCCESS")
    failed = parse(payment(result_code="FAIL"))
    other_order = parse(payment(out_trade_no="order-2"))
    other_account = parse(payment(), account("shop-2"))
    assert len({first.event_id, failed.event_id, other_order.event_id, other_account.event_id}) == 4
