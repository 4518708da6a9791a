"""A WeChat Pay v3 combined-order payment (合单支付): one TRANSACTION.* notification, one
`PaymentResult` per sub-order, each its own state transition.

Resource: combine_appid, combine_mchid, combine_out_trade_no, combine_payer_info.openid and
`sub_orders[]`, each with mchid, out_trade_no, transaction_id, trade_state, success_time and
amount {total_amount, payer_amount, currency} in fen.

Each sub-order is read by the same reader as a single payment (`_v3_mapping.read_payment`), so it
is held to the same rules: trade_state of the table (another value is refused, never `pending`),
out_trade_no and transaction_id of their documented shapes, amounts in whole fen, and when the
buyer paid a transaction_id, an amount and success_time. A sub-order or combined field out of shape
refuses the notification as `InvalidContent` (recorded `rejected` with the reason, which names the
sub-order; acknowledged), with the event_id that sub-order would have had.

Per sub-order: order_id = its out_trade_no, transaction_id, status from its trade_state, amount =
amount.total_amount / 100, paid_at = success_time, payer_id = combine_payer_info.openid, app_id =
combine_appid, merchant_id = combine_mchid (the merchant the notification is for, whose account
checks it; the sub-order's own mchid is in raw["mchid"]). raw = the envelope's fields, the
combined fields (combine_out_trade_no among them), then the sub-order's. event_id = account +
payment + (transaction_id or out_trade_no) + trade_state + the sub-order's mchid: a resend of the
notification repeats every sub-order's event id, so only the sub-orders not delivered yet are
delivered again.
"""

from __future__ import annotations

from typing import Any

from paynotify import InvalidContent, Kind, MalformedNotification, PaymentResult, make_event_id
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_mapping import (
    SUB_ORDER_AMOUNT,
    TRADE_STATES,
    Account3,
    Resource,
    _object,
    _optional,
    _raw,
    _required,
    read_payment,
)

__all__ = ["combined_results", "is_combined"]


def is_combined(resource: Resource) -> bool:
    return "sub_orders" in resource and "combine_out_trade_no" in resource


def combined_results(
    account: Account3, envelope: Envelope, resource: Resource, *, provider: str, key_id: str
) -> list[PaymentResult]:
    sub_orders = resource.get("sub_orders")
    try:
        if (
            not isinstance(sub_orders, list)
            or not sub_orders
            or not all(isinstance(s, dict) for s in sub_orders)
        ):
            raise MalformedNotification("combined-order resource sub_orders is not a list of objects")
        app_id = _required(resource, "combine_appid")
        merchant_id = _required(resource, "combine_mchid")
        _required(resource, "combine_out_trade_no")
        payer = _optional(_object(resource, "combine_payer_info"), "openid")
    except MalformedNotification as exc:
        raise _refused(account, envelope, resource, exc.message, None) from None
    combined: dict[str, Any] = {k: v for k, v in resource.items() if k != "sub_orders"}
    results = []
    for index, sub in enumerate(sub_orders):
        try:
            results.append(
                _sub_order(account, envelope, combined, sub, (app_id, merchant_id, payer), provider, key_id)
            )
        except MalformedNotification as exc:
            raise _refused(account, envelope, resource, f"sub_orders[{index}]: {exc.message}", sub) from None
    return results


def _refused(
    account: Account3, envelope: Envelope, resource: Resource, message: str, sub: Resource | None
) -> InvalidContent:
    """The whole notification refused (recorded `rejected`), with the event_id of the sub-order
    out of shape when its parts are there."""
    return InvalidContent(
        message, account=account.name, raw=_raw(envelope, resource), event_id=_refused_event_id(account, sub)
    )


def _sub_order(
    account: Account3,
    envelope: Envelope,
    combined: dict[str, Any],
    sub: Resource,
    combined_ids: tuple[str, str, str | None],
    provider: str,
    key_id: str,
) -> PaymentResult:
    app_id, merchant_id, payer = combined_ids
    paid = read_payment(sub, SUB_ORDER_AMOUNT)
    sub_mchid = _required(sub, "mchid")
    raw = envelope.outer_fields()
    raw.update(combined)
    raw.update(sub)
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.PAYMENT,
        status=TRADE_STATES[paid.trade_state],
        provider_status=paid.trade_state,
        order_id=paid.order_id,
        transaction_id=paid.transaction_id,
        amount=paid.amount,
        currency=paid.currency,
        paid_at=paid.paid_at,
        payer_id=payer,
        app_id=app_id,
        merchant_id=merchant_id,
        event_id=make_event_id(
            account.name,
            Kind.PAYMENT,
            paid.transaction_id or paid.order_id,
            None,
            paid.trade_state,
            sub_mchid,
        ),
        key_id=key_id,
        raw=raw,
    )


def _refused_event_id(account: Account3, sub: Resource | None) -> str | None:
    """The event_id the refused sub-order would have had, when its parts are strings at all."""
    if sub is None:
        return None
    trade = sub.get("transaction_id") or sub.get("out_trade_no")
    state, mchid = sub.get("trade_state"), sub.get("mchid")
    if not (isinstance(trade, str) and trade and isinstance(state, str) and state and isinstance(mchid, str)):
        return None
    return make_event_id(account.name, Kind.PAYMENT, trade, None, state, mchid)
