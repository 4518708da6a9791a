"""A WeChat Pay v3 combined-order payment (合单支付): one TRANSACTION.* notification, one
`PaymentResult` per sub-order, each its own state transition.

Resource: combine_appid, combine_mchid, combine_out_trade_no, combine_payer_info.openid and
`sub_orders[]`, each with mchid, out_trade_no, transaction_id, trade_state, success_time and
amount {total_amount, payer_amount, currency} in fen.

Per sub-order: order_id = its out_trade_no, transaction_id, status from its trade_state (the table of
`_v3_mapping`), amount = amount.total_amount / 100, paid_at = success_time, payer_id =
combine_payer_info.openid, app_id = combine_appid, merchant_id = combine_mchid (the merchant the
notification is for, whose account checks it; the sub-order's own mchid is in raw["mchid"]). raw =
the envelope's fields, the combined fields (combine_out_trade_no among them), then the sub-order's.
event_id = account + payment + (transaction_id or out_trade_no) + trade_state + the sub-order's
mchid: a resend of the notification repeats every sub-order's event id, so only the sub-orders not
delivered yet are delivered again.
"""

from __future__ import annotations

from typing import Any

from paynotify import Kind, MalformedNotification, PaymentResult, Status, make_event_id
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_mapping import (
    _PAID,
    TRADE_STATES,
    Account3,
    Resource,
    _object,
    _optional,
    _required,
    _text,
    _time,
    _yuan,
)

__all__ = ["combined_results", "is_combined"]


def is_combined(resource: Resource) -> bool:
    return "sub_orders" in resource and "combine_out_trade_no" in resource


def combined_results(
    account: Account3, envelope: Envelope, resource: Resource, *, provider: str, key_id: str
) -> list[PaymentResult]:
    sub_orders = resource.get("sub_orders")
    if not isinstance(sub_orders, list) or not sub_orders or not all(isinstance(s, dict) for s in sub_orders):
        raise MalformedNotification("combined-order resource sub_orders is not a list of objects")
    combined: dict[str, Any] = {k: v for k, v in resource.items() if k != "sub_orders"}
    app_id = _required(resource, "combine_appid")
    merchant_id = _required(resource, "combine_mchid")
    _required(resource, "combine_out_trade_no")
    payer = _optional(_object(resource, "combine_payer_info"), "openid")
    return [
        _sub_order(account, envelope, combined, sub, (app_id, merchant_id, payer), provider, key_id)
        for sub in sub_orders
    ]


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
    trade_state = _required(sub, "trade_state")
    order_id = _required(sub, "out_trade_no")
    sub_mchid = _required(sub, "mchid")
    paid = trade_state in _PAID
    transaction_id = _text(sub, "transaction_id", required=paid)
    amount = _object(sub, "amount")
    raw = envelope.outer_fields()
    raw.update(combined)
    raw.update(sub)
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.PAYMENT,
        status=TRADE_STATES.get(trade_state, Status.PENDING),
        provider_status=trade_state,
        order_id=order_id,
        transaction_id=transaction_id,
        amount=_yuan(amount, "total_amount", required=paid),
        currency=_optional(amount, "currency") or "CNY",
        paid_at=_time(sub, "success_time", required=paid),
        payer_id=payer,
        app_id=app_id,
        merchant_id=merchant_id,
        event_id=make_event_id(
            account.name, Kind.PAYMENT, transaction_id or order_id, None, trade_state, sub_mchid
        ),
        key_id=key_id,
        raw=raw,
    )
