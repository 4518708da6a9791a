"""Verified UnionPay fields -> `PaymentResult` (consume, refund, consume undo) or `UnhandledEvent`.

| txnType | what            | kind    | transaction_id | refund_id | amount | refund_amount |
|---------|-----------------|---------|----------------|-----------|--------|---------------|
| 01      | 消费 consume      | payment | queryId        | -         | txnAmt | -             |
| 04      | 退货 refund       | refund  | origQryId      | orderId   | -      | txnAmt        |
| 31      | 消费撤销 undo     | refund  | origQryId      | orderId   | txnAmt | txnAmt        |
| other   | (79 token open, 00 query, 02/03 pre-authorisation, ...) | an UnhandledEvent | | | | |

| respCode       | status    |
|----------------|-----------|
| 00, A6         | succeeded |
| 03, 04, 05     | pending   |
| anything else  | failed    |

A consume undo (31) reverses the whole consume on the day it was made (UnionPay allows no
partial undo), so it is a refund of the whole amount: `amount` and `refund_amount` are both its
txnAmt. A refund (04) may be partial, and UnionPay does not send the consume's amount with it.
For both, `orderId` is the merchant's order number of the refund request itself (UnionPay does not
send the consume's orderId): `order_id` and `refund_id` are that, `provider_refund_id` is its queryId,
and `transaction_id` is origQryId, the consume's queryId, which links it to the payment.

provider_status = respCode; txnAmt (fen) -> Decimal yuan; currencyCode 156 (or absent) -> CNY;
paid_at / refunded_at = txnTime (Beijing) when succeeded; merchant_id = merId; key_id = certId of
the verifying certificate. event_id = account + kind + queryId (origQryId for refunds) + orderId of
a refund + respCode. A front return (`source="return"`) is never a payment result: it is `pending`,
provider_status `RETURN`, whatever respCode it carries (read it from `raw` for the page).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from paynotify import (
    Kind,
    MalformedNotification,
    PaymentResult,
    Source,
    Status,
    UnhandledEvent,
    beijing_time,
    make_event_id,
)

__all__ = ["RETURN_STATUS", "TXN_TYPES", "UNHANDLED_KIND", "status_of", "to_result"]

RETURN_STATUS = "RETURN"
"""provider_status of a front return (frontUrl), which the buyer's browser delivered and proves nothing."""
UNHANDLED_KIND = "event"
"""The `kind` part of an UnhandledEvent's event_id."""

TXN_TYPES = {"01": Kind.PAYMENT, "04": Kind.REFUND, "31": Kind.REFUND}
"""The txnTypes that become a PaymentResult; any other verified one is an UnhandledEvent."""
_WHOLE_AMOUNT = frozenset({"31"})
_SUCCEEDED = frozenset({"00", "A6"})
_PENDING = frozenset({"03", "04", "05"})
_CURRENCIES = {"156": "CNY"}

# UnionPay's field formats (全渠道 specification): N = digits, AN = letters and digits.
_SHAPES = {
    "txnType": re.compile(r"[0-9]{2}"),
    "txnSubType": re.compile(r"[0-9]{2}"),
    "merId": re.compile(r"[0-9A-Za-z]{1,32}"),
    "orderId": re.compile(r"[0-9A-Za-z]{8,40}"),
    "queryId": re.compile(r"[0-9]{1,32}"),
    "origQryId": re.compile(r"[0-9]{1,32}"),
    "txnAmt": re.compile(r"[0-9]{1,12}"),
    "respCode": re.compile(r"[0-9A-Z]{2}"),
    "currencyCode": re.compile(r"[0-9]{3}"),
    "txnTime": re.compile(r"[0-9]{14}"),
}


def status_of(resp_code: str) -> Status:
    """The status a respCode means (00/A6 succeeded, 03/04/05 pending, any other failed)."""
    if resp_code in _SUCCEEDED:
        return Status.SUCCEEDED
    return Status.PENDING if resp_code in _PENDING else Status.FAILED


def _field(fields: dict[str, str], name: str, *, required: bool = True) -> str | None:
    value = fields.get(name, "")
    if not value:
        if required:
            raise MalformedNotification(f"verified, but {name} is missing")
        return None
    if not _SHAPES[name].fullmatch(value):
        raise MalformedNotification(f"verified, but {name} is not in UnionPay's format: {value[:40]!r}")
    return value


def _time(text: str) -> datetime:
    try:
        return beijing_time(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise MalformedNotification(f"verified, but txnTime is not a yyyyMMddHHmmss time: {text!r}") from None


def to_result(
    provider: str, account: str, fields: dict[str, str], source: Source, key_id: str
) -> PaymentResult | UnhandledEvent:
    """The result of one verified message; MalformedNotification when a field is not UnionPay's shape."""
    is_return = source is Source.RETURN
    txn_type = str(_field(fields, "txnType"))
    kind = TXN_TYPES.get(txn_type)
    if kind is None and not is_return:
        return _unhandled(provider, account, fields, txn_type, key_id)
    kind = kind or Kind.PAYMENT
    is_refund = kind is Kind.REFUND
    _field(fields, "txnSubType", required=False)
    merchant_id = _field(fields, "merId")
    order_id = str(_field(fields, "orderId"))
    resp_code = str(_field(fields, "respCode"))
    query_id = _field(fields, "queryId", required=not is_return)
    trade = _field(fields, "origQryId", required=not is_return) if is_refund else query_id
    fen = _field(fields, "txnAmt", required=not is_return)
    amount = Decimal(fen).scaleb(-2) if fen is not None else None
    currency_code = _field(fields, "currencyCode", required=False) or "156"
    currency = _CURRENCIES.get(currency_code)
    if currency is None:
        raise MalformedNotification(f"verified, but currencyCode {currency_code} is not supported (156, CNY)")
    at = _time(str(_field(fields, "txnTime")))

    if is_return:
        status, provider_status = Status.PENDING, RETURN_STATUS
    else:
        status, provider_status = status_of(resp_code), resp_code
    succeeded = status is Status.SUCCEEDED
    return PaymentResult(
        provider=provider,
        account=account,
        kind=kind,
        status=status,
        provider_status=provider_status,
        order_id=order_id,
        transaction_id=trade,
        refund_id=order_id if is_refund else None,
        provider_refund_id=query_id if is_refund else None,
        amount=amount if not is_refund or txn_type in _WHOLE_AMOUNT else None,
        currency=currency,
        refund_amount=amount if is_refund else None,
        paid_at=at if succeeded and not is_refund else None,
        refunded_at=at if succeeded and is_refund else None,
        merchant_id=merchant_id,
        source=source,
        event_id=make_event_id(
            account, kind, trade or f"orderId:{order_id}", order_id if is_refund else None, provider_status
        ),
        key_id=key_id,
        raw=fields,  # validation copies it
    )


def _unhandled(
    provider: str, account: str, fields: dict[str, str], txn_type: str, key_id: str
) -> UnhandledEvent:
    # Verified, so acknowledged whatever it holds: its fields are read as they are, not refused by shape.
    event_type = f"{txn_type}/{fields.get('txnSubType') or '-'}"
    trade = fields.get("queryId") or fields.get("orderId") or fields.get("txnTime")
    return UnhandledEvent(
        provider=provider,
        account=account,
        event_type=event_type,
        event_id=make_event_id(account, UNHANDLED_KIND, event_type, trade, fields.get("respCode")),
        key_id=key_id,
        raw=fields,
    )
