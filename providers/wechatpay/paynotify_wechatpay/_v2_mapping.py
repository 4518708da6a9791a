"""The fields of a WeChat Pay API v2 payment or refund, once believed, as a `PaymentResult`.

One mapping for both ways the news comes: a notification (verified, or decrypted and checked, by
`_v2_provider`) and a query answer (verified by `_v2_api`). The caller decides the state, from
result_code / refund_status of a notification or trade_state / refund_status_$n of an answer;
everything else (shapes, amounts, times, event_id) is read here, so the same state gives the same
result and the same event_id whichever way it came. Out-of-shape fields raise InvalidContent with
the fields as `raw` (see `_v2_provider` for the field table).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import cast

from paynotify import (
    Account,
    InvalidContent,
    Kind,
    MalformedNotification,
    PaymentResult,
    Status,
    beijing_time,
    make_event_id,
)
from paynotify_wechatpay._shapes import id_problem
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings

__all__ = [
    "PAYMENT_STATUSES",
    "REFUND_STATUSES",
    "invalid",
    "known",
    "payment_result",
    "refund_result",
    "required",
    "shown",
]

PAYMENT_STATUSES = {"SUCCESS": Status.SUCCEEDED, "FAIL": Status.FAILED}
REFUND_STATUSES = {"SUCCESS": Status.SUCCEEDED, "CHANGE": Status.FAILED, "REFUNDCLOSE": Status.CLOSED}
_FEN = re.compile(r"[0-9]{1,18}")  # fen as a 64-bit integer; more digits would round in Decimal
_TIME_END = ("%Y%m%d%H%M%S", re.compile(r"[0-9]{14}"), "yyyyMMddHHmmss")
_SUCCESS_TIME = ("%Y-%m-%d %H:%M:%S", re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"),
                 "yyyy-MM-dd HH:mm:ss")  # fmt: skip
# Sent when present, never signed apart: a total_fee that is not fen is refused, so are these.
_OTHER_PAYMENT_FEES = ("cash_fee", "settlement_total_fee", "coupon_fee")
# WeChat Pay's own bounds (申请退款金额 <= 订单金额; 退款金额 <= 申请退款金额; 应结订单金额 <= 订单金额).
_REFUND_BOUNDS = (
    ("refund_fee", "total_fee"),
    ("settlement_refund_fee", "refund_fee"),
    ("settlement_total_fee", "total_fee"),
)
_SHOWN_LENGTH = 64


def shown(value: str) -> str:
    """A received (untrusted) value as it may appear in an error message: quoted and bounded."""
    return repr(value if len(value) <= _SHOWN_LENGTH else value[:_SHOWN_LENGTH] + "...")


def required(fields: dict[str, str], name: str, what: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise MalformedNotification(f"{what} has no {name}")
    return value


def _yuan(fields: dict[str, str], name: str, what: str) -> Decimal:
    value = required(fields, name, what)
    if not _FEN.fullmatch(value):
        raise MalformedNotification(
            f"{what} {name} is {shown(value)}, not a whole number of fen (1-18 digits)"
        )
    return Decimal(value).scaleb(-2)


def _id(fields: dict[str, str], name: str, what: str, *, needed: bool = True) -> str | None:
    value = required(fields, name, what) if needed else fields.get(name)
    if not value:
        return None
    rule = id_problem(name, value)
    if rule is not None:
        raise MalformedNotification(f"{what} {name} is {shown(value)}, not {rule}")
    return value


def known(fields: dict[str, str], name: str, what: str, values: dict[str, Status]) -> str:
    """`fields[name]`, one of `values`' keys, or MalformedNotification."""
    value = required(fields, name, what)
    if value not in values:
        raise MalformedNotification(f"{what} {name} is {shown(value)}, not one of {', '.join(values)}")
    return value


def _at_most(fields: dict[str, str], smaller: str, larger: str, what: str) -> None:
    # Both are digit strings already; compared as numbers.
    if fields.get(smaller) and fields.get(larger) and int(fields[smaller]) > int(fields[larger]):
        raise MalformedNotification(
            f"{what} {smaller} {fields[smaller]} is more than {larger} {fields[larger]}"
        )


def _time(fields: dict[str, str], name: str, what: str, form: tuple[str, re.Pattern[str], str]) -> datetime:
    value = required(fields, name, what)
    fmt, pattern, label = form
    try:
        if not pattern.fullmatch(value):
            raise ValueError(value)
        return beijing_time(value, fmt)
    except ValueError:
        raise MalformedNotification(f"{what} {name} is {shown(value)}, not a {label} time") from None


def _event_id(
    account: str, kind: Kind, trade: str | None, refund: str | None, status: str | None
) -> str | None:
    """The event_id of a notification refused for its content, when its parts are there at all."""
    if not trade or not status:
        return None
    return make_event_id(account, kind, trade, refund, status)


def payment_result(
    provider: str,
    account: Account[WeChatPayV2Settings],
    fields: dict[str, str],
    *,
    provider_status: str,
    status: Status,
    what: str,
) -> PaymentResult:
    """The payment in `fields`, in state (`provider_status`, `status`); `raw` = `fields`."""
    try:
        succeeded = status is Status.SUCCEEDED
        order_id = cast(str, _id(fields, "out_trade_no", what))
        transaction_id = _id(fields, "transaction_id", what, needed=succeeded)
        amount = _yuan(fields, "total_fee", what) if succeeded or fields.get("total_fee") else None
        for name in _OTHER_PAYMENT_FEES:
            if fields.get(name):
                _yuan(fields, name, what)
        paid_at = _time(fields, "time_end", what, _TIME_END) if succeeded or fields.get("time_end") else None
    except MalformedNotification as exc:
        raise invalid(exc, account, fields, Kind.PAYMENT, fields, provider_status) from None
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.PAYMENT,
        status=status,
        provider_status=provider_status,
        order_id=order_id,
        transaction_id=transaction_id,
        amount=amount,
        currency=fields.get("fee_type") or "CNY",
        paid_at=paid_at,
        payer_id=fields.get("openid") or fields.get("sub_openid") or None,
        app_id=fields.get("appid") or None,
        merchant_id=fields.get("mch_id") or None,
        event_id=make_event_id(account.name, Kind.PAYMENT, transaction_id or order_id, None, provider_status),
        raw=fields,  # validation copies it
    )


def refund_result(
    provider: str,
    account: Account[WeChatPayV2Settings],
    fields: dict[str, str],
    *,
    raw: dict[str, str],
    provider_status: str,
    status: Status,
    app_id: str,
    merchant_id: str,
    complete: bool,
    what: str,
) -> PaymentResult:
    """The refund in `fields` (a notification's decrypted req_info, or one refund of an answer).

    `complete`: every field a refund notification always carries is required (settlement_refund_fee
    among them), a check against spliced ciphertexts; a signed query answer needs only its own.
    """
    try:
        order_id = cast(str, _id(fields, "out_trade_no", what))
        refund_id = cast(str, _id(fields, "out_refund_no", what))
        transaction_id = _id(fields, "transaction_id", what)
        provider_refund_id = _id(fields, "refund_id", what)
        amount = _yuan(fields, "total_fee", what)
        refund_amount = _yuan(fields, "refund_fee", what)
        if complete or fields.get("settlement_refund_fee"):
            _yuan(fields, "settlement_refund_fee", what)
        if fields.get("settlement_total_fee"):
            _yuan(fields, "settlement_total_fee", what)
        for smaller, larger in _REFUND_BOUNDS:
            _at_most(fields, smaller, larger, what)
        success_time = (
            _time(fields, "success_time", what, _SUCCESS_TIME) if fields.get("success_time") else None
        )
    except MalformedNotification as exc:
        raise invalid(exc, account, raw, Kind.REFUND, fields, provider_status) from None
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.REFUND,
        status=status,
        provider_status=provider_status,
        order_id=order_id,
        transaction_id=transaction_id,
        refund_id=refund_id,
        provider_refund_id=provider_refund_id,
        amount=amount,
        refund_amount=refund_amount,
        refunded_at=success_time if status is Status.SUCCEEDED else None,
        app_id=app_id,
        merchant_id=merchant_id,
        event_id=make_event_id(
            account.name, Kind.REFUND, transaction_id or order_id, refund_id, provider_status
        ),
        raw=raw,
    )


def invalid(
    exc: MalformedNotification,
    account: Account[WeChatPayV2Settings],
    raw: dict[str, str],
    kind: Kind,
    fields: dict[str, str],
    provider_status: str | None,
) -> InvalidContent:
    """A believed message out of its documented shapes: InvalidContent, with the event_id of the
    state it claims when its parts are there (so its retries are one refused event)."""
    trade = fields.get("transaction_id") or fields.get("out_trade_no")
    refund = fields.get("out_refund_no") if kind is Kind.REFUND else None
    event_id = _event_id(account.name, kind, trade, refund, provider_status)
    if kind is Kind.REFUND and "sign" not in raw:
        # Unsigned, a refund's outer fields are anyone's to vary (nonce_str, an element added):
        # only what was checked or decrypted is kept, so the variants are one record.
        raw = {**{name: raw[name] for name in ("return_code", "appid", "mch_id") if name in raw}, **fields}
    if "sign" in raw:  # verified case-blind: each casing of the hex would be a record of its own
        raw = {**raw, "sign": raw["sign"].upper()}
    return InvalidContent(exc.message, account=account.name, raw=raw, event_id=event_id)
