"""Verified UnionPay fields -> PaymentResult: the txnType and respCode tables, amounts, times, ids,
event ids, other txnTypes as UnhandledEvents, and strict shapes after verification."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest
from _unionpay import MER_ID, ORDER_ID, chain, notify, parse, result
from paynotify_unionpay import RETURN_STATUS, TXN_TYPES, status_of
from paynotify_unionpay.testing import query_id

from paynotify import BEIJING, InvalidContent, Kind, Source, Status, UnhandledEvent

PAID_AT = datetime(2026, 11, 23, 9, 30, 15, tzinfo=BEIJING)
ORIG = query_id(MER_ID, ORDER_ID)


def test_txn_types_table() -> None:
    assert TXN_TYPES == {"01": Kind.PAYMENT, "04": Kind.REFUND, "31": Kind.REFUND}


@pytest.mark.parametrize(
    ("resp_code", "status"),
    [
        ("00", Status.SUCCEEDED),
        ("A6", Status.SUCCEEDED),
        ("03", Status.PENDING),
        ("04", Status.PENDING),
        ("05", Status.PENDING),
        ("01", Status.FAILED),
        ("06", Status.FAILED),
        ("12", Status.FAILED),
        ("34", Status.FAILED),
        ("61", Status.FAILED),
        ("99", Status.FAILED),
    ],
)
@pytest.mark.parametrize("txn_type", ["01", "04", "31"])
def test_resp_code_table(txn_type: str, resp_code: str, status: Status) -> None:
    assert status_of(resp_code) is status
    extra = {"orig_qry_id": ORIG} if txn_type != "01" else {}
    got = result(notify(txn_type=txn_type, resp_code=resp_code, txn_time=PAID_AT, **extra))
    assert (got.kind, got.status, got.provider_status) == (TXN_TYPES[txn_type], status, resp_code)
    assert got.is_paid is (txn_type == "01" and status is Status.SUCCEEDED)
    succeeded = status is Status.SUCCEEDED
    assert got.paid_at == (PAID_AT if succeeded and txn_type == "01" else None)
    assert got.refunded_at == (PAID_AT if succeeded and txn_type != "01" else None)


def test_consume() -> None:
    paid = result(notify(txn_amt="8888", txn_time=PAID_AT))
    assert (paid.kind, paid.status, paid.provider_status) == (Kind.PAYMENT, Status.SUCCEEDED, "00")
    assert paid.order_id == ORDER_ID
    assert paid.transaction_id == query_id(MER_ID, ORDER_ID)
    assert (paid.refund_id, paid.provider_refund_id, paid.refund_amount) == (None, None, None)
    assert paid.amount == Decimal("88.88")
    assert isinstance(paid.amount, Decimal)
    assert str(paid.amount) == "88.88"
    assert paid.currency == "CNY"
    assert paid.paid_at == PAID_AT
    assert paid.paid_at.utcoffset() is not None
    assert paid.merchant_id == MER_ID
    assert (paid.app_id, paid.payer_id) == (None, None)  # accNo is masked or encrypted: not an id
    assert paid.key_id == chain().cert_id
    assert paid.raw["txnAmt"] == "8888"


def test_refund_04() -> None:
    refund = result(notify(order_id="refund20260101001", txn_type="04", txn_amt="1000", orig_qry_id=ORIG))
    assert (refund.kind, refund.status) == (Kind.REFUND, Status.SUCCEEDED)
    assert refund.transaction_id == ORIG  # the consume's queryId: links the refund to the payment
    assert refund.order_id == refund.refund_id == "refund20260101001"
    assert refund.provider_refund_id == query_id(MER_ID, "refund20260101001")
    assert (refund.amount, refund.refund_amount) == (None, Decimal("10.00"))
    assert not refund.is_paid


def test_consume_undo_31_is_a_refund_of_the_whole_amount() -> None:
    undo = result(notify(order_id="undo20260101001", txn_type="31", txn_amt="8888", orig_qry_id=ORIG))
    assert (undo.kind, undo.status, undo.transaction_id) == (Kind.REFUND, Status.SUCCEEDED, ORIG)
    assert undo.amount == undo.refund_amount == Decimal("88.88")


@pytest.mark.parametrize(
    ("fen", "yuan"), [("1", "0.01"), ("0", "0.00"), ("100", "1.00"), ("999999999999", "9999999999.99")]
)
def test_fen_to_yuan(fen: str, yuan: str) -> None:
    assert str(result(notify(txn_amt=fen)).amount) == yuan


def test_currency_absent_is_cny_and_another_is_refused() -> None:
    assert result(notify(currencyCode=None)).currency == "CNY"
    with pytest.raises(InvalidContent, match="currencyCode 840 is not supported"):
        parse(notify(currencyCode="840"))


def test_event_ids() -> None:
    paid = result(notify(txn_time=PAID_AT))
    again = result(notify(txn_time=PAID_AT, traceNo="999999"))  # a resend, signed again
    assert again.event_id == paid.event_id
    assert result(notify(resp_code="A6")).event_id != paid.event_id
    assert result(notify(order_id="order20260101002")).event_id != paid.event_id
    refunds = {
        result(
            notify(order_id=f"refund2026010100{i}", txn_type="04", txn_amt="100", orig_qry_id=ORIG)
        ).event_id
        for i in (1, 2)
    }
    assert len(refunds) == 2
    assert paid.event_id not in refunds


@pytest.mark.parametrize(("txn_type", "sub_type"), [("79", "00"), ("00", "00"), ("02", "01"), ("03", "00")])
def test_other_txn_types_are_unhandled_events(txn_type: str, sub_type: str) -> None:
    event = parse(notify(txn_type=txn_type, txnSubType=sub_type))
    assert isinstance(event, UnhandledEvent)
    assert event.event_type == f"{txn_type}/{sub_type}"
    assert event.provider == "unionpay"
    assert event.key_id == chain().cert_id
    assert event.raw["txnType"] == txn_type
    assert parse(notify(txn_type=txn_type, txnSubType=sub_type)).event_id == event.event_id


def test_an_unhandled_event_is_not_refused_for_its_shape() -> None:
    # Verified and not a payment: acknowledged whatever its fields hold, so UnionPay stops resending.
    event = parse(notify(txn_type="79", txn_amt="1.00", orderId="x-1", queryId=None))
    assert isinstance(event, UnhandledEvent)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"txn_amt": "1.00"}, "txnAmt '1.00' is not fen: 1-12 digits"),
        ({"txn_amt": "-1"}, "txnAmt '-1' is not fen"),
        ({"txn_amt": "\uff11"}, "txnAmt '\uff11' is not fen"),  # a full-width digit
        ({"txn_amt": "1234567890123"}, "txnAmt '1234567890123' is not fen"),
        ({"txnAmt": None}, "txnAmt is missing"),
        (
            {"queryId": "7822090813220606740-2"},
            "queryId '7822090813220606740-2' is not 1-32 letters or digits",
        ),
        ({"queryId": None}, "queryId is missing"),
        ({"order_id": "order-2026-01"}, "orderId 'order-2026-01' is not 8-40 letters or digits"),
        ({"order_id": "short"}, "orderId 'short' is not 8-40 letters or digits"),
        ({"orderId": None}, "orderId is missing"),
        ({"merId": "777 290"}, "merId '777 290' is not 1-32 letters or digits"),
        ({"merId": None}, "merId is missing"),
        ({"respCode": "0"}, "respCode '0' is not 2 letters or digits"),
        ({"respCode": None}, "respCode is missing"),
        ({"txnTime": "2026112309301"}, "txnTime '2026112309301' is not yyyyMMddHHmmss: 14 digits"),
        ({"txnTime": "20261323093015"}, "txnTime '20261323093015' is not a yyyyMMddHHmmss time"),
        ({"txnType": "1"}, "txnType '1' is not 2 digits"),
        ({"txnType": None}, "txnType is missing"),
        ({"txnSubType": "x"}, "txnSubType 'x' is not 2 digits"),
        ({"currencyCode": "CNY"}, "currencyCode CNY is not supported (156, CNY)"),
        ({"currencyCode": "15"}, "currencyCode '15' is not 3 letters or digits"),
        ({"currencyCode": "840"}, "currencyCode 840 is not supported"),
        ({"txn_type": "04", "orig_qry_id": None}, "origQryId is missing"),
        ({"txn_type": "31", "orig_qry_id": "a.c"}, "origQryId 'a.c' is not 1-32 letters or digits"),
    ],
)
def test_strict_shapes_after_verification(fields: dict[str, str | None], message: str) -> None:
    with pytest.raises(InvalidContent, match=re.escape(message)) as info:
        parse(notify(**fields))
    assert str(info.value).startswith("account 'shop': verified, but ")
    assert info.value.raw["signature"]  # the verified fields, for the rejected record


def test_a_front_return_is_never_a_payment_result() -> None:
    for resp_code in ("00", "A6", "12"):
        back = result(notify(resp_code=resp_code), channel="return")
        assert (back.source, back.status, back.provider_status) == (
            Source.RETURN,
            Status.PENDING,
            RETURN_STATUS,
        )
        assert not back.is_paid
        assert back.paid_at is None
        assert back.raw["respCode"] == resp_code  # for the merchant's page
    refund_page = result(notify(txn_type="04", orig_qry_id=ORIG), channel="return", method="GET")
    assert (refund_page.kind, refund_page.source) == (Kind.REFUND, Source.RETURN)
    # A browser return of a failed payment may lack queryId and txnAmt; it is still a page.
    assert result(notify(resp_code="12", queryId=None, txnAmt=None), channel="return").amount is None
