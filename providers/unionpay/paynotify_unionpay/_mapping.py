"""Verified UnionPay fields -> `PaymentResult` (consume, refund, consume undo) or `UnhandledEvent`.

| txnType | what            | kind    | transaction_id | refund_id | amount | refund_amount |
|---------|-----------------|---------|----------------|-----------|--------|---------------|
| 01      | 消费 consume      | payment | queryId        | -         | txnAmt | -             |
| 04      | 退货 refund       | refund  | origQryId      | orderId   | -      | txnAmt        |
| 31      | 消费撤销 undo     | refund  | origQryId      | orderId   | txnAmt | txnAmt        |
| other   | 79, 00, 02, 03, 32, 33, 11, 12, ... | UnhandledEvent `txnType/txnSubType` | | | |

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

Every message is first held to the structure that keeps its sign string cut one way, and a mapped
kind to the documented shapes (`_shapes`); a breach raises InvalidContent with the verified fields,
which the pipeline records `rejected` and acknowledges. An unmapped txnType is held to the structure
only: its fields belong to a kind paynotify does not read.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from paynotify import (
    InvalidContent,
    Kind,
    PaymentResult,
    Source,
    Status,
    UnhandledEvent,
    beijing_time,
    make_event_id,
)
from paynotify_unionpay._shapes import field_problem, shape_problem, shown, structure_problem

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

# What a back-end notification of each kind always carries; a front return may lack the
# transaction's ids and amount (a failed payment's page), never the order's.
_RETURN_REQUIRED = ("txnType", "merId", "orderId", "respCode", "txnTime")
_REQUIRED = {
    Kind.PAYMENT: (*_RETURN_REQUIRED, "queryId", "txnAmt"),
    Kind.REFUND: (*_RETURN_REQUIRED, "queryId", "origQryId", "txnAmt"),
}


def status_of(resp_code: str) -> Status:
    """The status a respCode means (00/A6 succeeded, 03/04/05 pending, any other failed)."""
    if resp_code in _SUCCEEDED:
        return Status.SUCCEEDED
    return Status.PENDING if resp_code in _PENDING else Status.FAILED


def _read(fields: dict[str, str], kind: Kind, is_return: bool) -> datetime | str:
    """txnTime as an aware datetime when every field has its shape, else what is wrong."""
    fault = shape_problem(fields, _RETURN_REQUIRED if is_return else _REQUIRED[kind])
    if fault is not None:
        return fault
    code = fields.get("currencyCode") or "156"
    if code not in _CURRENCIES:
        return f"currencyCode {code} is not supported (156, CNY)"
    try:
        return beijing_time(fields["txnTime"], "%Y%m%d%H%M%S")
    except ValueError:
        return f"txnTime {shown(fields['txnTime'])} is not a yyyyMMddHHmmss time"


def _event_parts(fields: dict[str, str], kind: Kind, provider_status: str) -> list[str | None]:
    """The event_id parts after the account and kind (the order's id when the trade's is absent)."""
    is_refund = kind is Kind.REFUND
    order_id = fields.get("orderId", "")
    trade = fields.get("origQryId" if is_refund else "queryId") or f"orderId:{order_id}"
    return [trade, order_id if is_refund else None, provider_status]


def to_result(
    provider: str, account: str, fields: dict[str, str], source: Source, key_id: str
) -> PaymentResult | UnhandledEvent:
    """The result of one verified message; InvalidContent (with the fields, and the event_id a
    well-formed copy would have when its ids have their shapes) when it is not UnionPay's shape."""
    is_return = source is Source.RETURN
    # The structure first, for every kind: until it holds, the fields may be another cut of what
    # UnionPay signed, and even the txnType that picks the kind may have been swallowed.
    fault = structure_problem(fields) or field_problem(fields, "txnType")
    if fault is not None:
        raise InvalidContent(f"verified, but {fault}", account=account, raw=fields)
    txn_type = fields["txnType"]
    kind = TXN_TYPES.get(txn_type)
    if kind is None and not is_return:
        return _unhandled(provider, account, fields, txn_type, key_id)
    kind = kind or Kind.PAYMENT
    provider_status = RETURN_STATUS if is_return else fields.get("respCode", "")
    at = _read(fields, kind, is_return)
    if isinstance(at, str):
        fault = at
        ids = ("orderId", "respCode", "origQryId" if kind is Kind.REFUND else "queryId")
        told = not any(field_problem(fields, name) for name in ids)
        raise InvalidContent(
            f"verified, but {fault}",
            account=account,
            raw=fields,
            event_id=make_event_id(account, kind, *_event_parts(fields, kind, provider_status))
            if told
            else None,
        )

    is_refund = kind is Kind.REFUND
    order_id = fields["orderId"]
    query_id = fields.get("queryId") or None
    fen = fields.get("txnAmt")
    amount = Decimal(fen).scaleb(-2) if fen else None
    status = Status.PENDING if is_return else status_of(provider_status)
    succeeded = status is Status.SUCCEEDED
    return PaymentResult(
        provider=provider,
        account=account,
        kind=kind,
        status=status,
        provider_status=provider_status,
        order_id=order_id,
        transaction_id=(fields.get("origQryId") or None) if is_refund else query_id,
        refund_id=order_id if is_refund else None,
        provider_refund_id=query_id if is_refund else None,
        amount=amount if not is_refund or txn_type in _WHOLE_AMOUNT else None,
        currency=_CURRENCIES[fields.get("currencyCode") or "156"],
        refund_amount=amount if is_refund else None,
        paid_at=at if succeeded and not is_refund else None,
        refunded_at=at if succeeded and is_refund else None,
        merchant_id=fields["merId"],
        source=source,
        event_id=make_event_id(account, kind, *_event_parts(fields, kind, provider_status)),
        key_id=key_id,
        raw=fields,  # validation copies it
    )


def _unhandled(
    provider: str, account: str, fields: dict[str, str], txn_type: str, key_id: str
) -> UnhandledEvent:
    # Verified and cut one way only (structure_problem): acknowledged whatever its other fields
    # hold, as their meaning belongs to a kind paynotify does not read.
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
