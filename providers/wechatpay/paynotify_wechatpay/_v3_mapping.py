"""A decrypted WeChat Pay API v3 transaction or refund resource, as a `PaymentResult`.

| event_type     | resource field             | kind / status       | provider_status |
|----------------|----------------------------|---------------------|-----------------|
| TRANSACTION.*  | trade_state SUCCESS        | payment / succeeded | SUCCESS         |
| TRANSACTION.*  | trade_state REFUND         | payment / succeeded | REFUND          |
| TRANSACTION.*  | trade_state NOTPAY         | payment / pending   | NOTPAY          |
| TRANSACTION.*  | trade_state USERPAYING     | payment / pending   | USERPAYING      |
| TRANSACTION.*  | trade_state CLOSED         | payment / closed    | CLOSED          |
| TRANSACTION.*  | trade_state REVOKED        | payment / closed    | REVOKED         |
| TRANSACTION.*  | trade_state PAYERROR       | payment / failed    | PAYERROR        |
| TRANSACTION.*  | trade_state, other value   | InvalidContent, never a result        |
| REFUND.*       | refund_status SUCCESS      | refund / succeeded  | SUCCESS         |
| REFUND.*       | refund_status ABNORMAL     | refund / failed     | ABNORMAL        |
| REFUND.*       | refund_status CLOSED       | refund / closed     | CLOSED          |
| REFUND.*       | refund_status PROCESSING   | refund / pending    | PROCESSING      |
| REFUND.*       | refund_status, other value | InvalidContent, never a result        |

trade_state REFUND (转入退款) means the buyer paid and a refund was then requested: the payment
did succeed, so it is `succeeded` (with its own event_id, like Alipay's TRADE_FINISHED); the
refund itself arrives as a REFUND.* notification. Subscribers that fulfil on `is_paid` must be
idempotent per order_id anyway. `closed` would tell a merchant to cancel an order that was paid.

Payment fields: order_id = out_trade_no, transaction_id, amount = amount.total / 100, currency =
amount.currency (CNY when absent), paid_at = success_time (RFC 3339), payer_id = payer.openid
(service provider: payer.sp_openid, else payer.sub_openid), app_id / merchant_id = appid / mchid
(service provider: sp_appid / sub_mchid, the merchant whose order it is). transaction_id,
amount.total and success_time are required when the buyer paid (SUCCESS, REFUND).

Refund fields: order_id = out_trade_no, refund_id = out_refund_no, provider_refund_id =
refund_id, amount = amount.total / 100 (the order), refund_amount = amount.refund / 100 (this
refund), refunded_at = success_time when SUCCESS, merchant_id = mchid (service provider:
sub_mchid). A refund resource carries no appid: app_id is the account's own (appid, or sp_appid),
so the pipeline's app_id check passes and its merchant check is the one that decides.

Shapes (`_shapes`, WeChat Pay's documentation): transaction_id and refund_id digits, out_trade_no
and out_refund_no of the documented alphabets and lengths, amounts (total, payer_total, refund,
payer_refund) integers of fen >= 0 with refund <= total, times RFC 3339, states of the tables
above. A decrypted resource that breaks one raises InvalidContent with `raw` as below and the
event_id when its parts are there.

event_id = account + kind + (transaction_id or out_trade_no) + (out_refund_no for a refund) +
provider_status (+ sub_mchid for a service provider, whose sub-merchants' out_trade_no may
coincide), as in the v2 provider. raw = the decrypted resource plus the envelope's id,
create_time, event_type, resource_type and summary (a resource field wins a name clash).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

from paynotify import (
    Account,
    InvalidContent,
    Kind,
    MalformedNotification,
    PaymentResult,
    Status,
    VerificationError,
    make_event_id,
)
from paynotify_wechatpay._shapes import ID_RULES, id_problem
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__all__ = [
    "REFUND_STATUSES",
    "SINGLE_AMOUNT",
    "SUB_ORDER_AMOUNT",
    "TRADE_STATES",
    "PaymentFields",
    "event_kind",
    "read_payment",
    "to_result",
]

TRADE_STATES = {
    "SUCCESS": Status.SUCCEEDED,
    "REFUND": Status.SUCCEEDED,
    "NOTPAY": Status.PENDING,
    "USERPAYING": Status.PENDING,
    "CLOSED": Status.CLOSED,
    "REVOKED": Status.CLOSED,
    "PAYERROR": Status.FAILED,
}
REFUND_STATUSES = {
    "SUCCESS": Status.SUCCEEDED,
    "ABNORMAL": Status.FAILED,
    "CLOSED": Status.CLOSED,
    "PROCESSING": Status.PENDING,
}
_PAID = frozenset({"SUCCESS", "REFUND"})
_MAX_FEN = 10**18  # a 64-bit amount; more digits would round in Decimal's default context
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_SHOWN_LENGTH = 64
_ID_MATCH = {name: match for name, (match, _) in ID_RULES.items()}

Resource = Mapping[str, Any]
Account3 = Account[WeChatPayV3Settings]


def event_kind(event_type: str) -> Kind | None:
    """The kind of result an event type becomes; None for any other event (an UnhandledEvent)."""
    if event_type.startswith("TRANSACTION."):
        return Kind.PAYMENT
    if event_type.startswith("REFUND."):
        return Kind.REFUND
    return None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "..."


def _optional(resource: Resource, name: str) -> str | None:
    """A string field, or None when it is absent or empty."""
    value = resource.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedNotification(f"decrypted resource {name} is {_shown(value)}, not a string")
    return value


def _required(resource: Resource, name: str) -> str:
    value = resource.get(name)
    if type(value) is str and value:  # the usual case, without a second call (JSON makes no subclasses)
        return value
    value = _optional(resource, name)
    if value is None:
        raise MalformedNotification(f"decrypted resource has no {name}")
    return value


def _text(resource: Resource, name: str, *, required: bool) -> str | None:
    return _required(resource, name) if required else _optional(resource, name)


def _id(resource: Resource, name: str, *, required: bool = True) -> str | None:
    value = resource.get(name)
    if type(value) is str and _ID_MATCH[name](value) is not None:  # the usual case: one lookup, one match
        return value
    return _checked_id(resource, name, required)


def _checked_id(resource: Resource, name: str, required: bool) -> str | None:
    """`_id` for anything else: None when optional and absent or empty, or the message naming the rule."""
    value = _text(resource, name, required=required)
    if value is not None:
        rule = id_problem(name, value)
        if rule is not None:
            raise MalformedNotification(f"decrypted resource {name} is {_shown(value)}, not {rule}")
    return value


def _state(resource: Resource, name: str, known: Mapping[str, Status]) -> str:
    value = resource.get(name)
    if type(value) is str and value in known:  # the usual case (a str first: a list is unhashable)
        return value
    value = _required(resource, name)
    if value not in known:
        raise MalformedNotification(
            f"decrypted resource {name} is {_shown(value)}, not one of {', '.join(known)}"
        )
    return value


def _object(resource: Resource, name: str) -> Resource:
    value = resource.get(name, {})
    if not isinstance(value, dict):
        raise MalformedNotification(f"decrypted resource {name} is not an object")
    return value


def _yuan(amount: Resource, name: str, *, required: bool) -> Decimal | None:
    value = amount.get(name)
    if type(value) is int and 0 <= value < _MAX_FEN:  # the usual case (a bool is not of type int)
        return Decimal(value).scaleb(-2)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_FEN:
        raise MalformedNotification(f"decrypted resource amount.{name} is {_shown(value)}, not whole fen")
    return Decimal(value).scaleb(-2)


def _check_fen(amount: Resource, name: str) -> None:
    """An optional amount that is only checked (payer_total, payer_refund): no Decimal is made for it."""
    value = amount.get(name)
    if value is not None and not (type(value) is int and 0 <= value < _MAX_FEN):
        _yuan(amount, name, required=False)  # raises, naming the field


def _time(resource: Resource, name: str, *, required: bool) -> datetime | None:
    value = resource.get(name)
    if type(value) is str and _RFC3339.fullmatch(value):  # the usual case, without the helpers' calls
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # a date that does not exist: the error below
    value = _text(resource, name, required=required)
    if value is None:
        return None
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedNotification(f"decrypted resource {name} is {_shown(value)}, not RFC 3339") from None


def _check_mode(resource: Resource, service_provider: bool) -> None:
    """A direct merchant's resource has mchid, a service provider's sp_mchid: say which was expected."""
    if service_provider and "sp_mchid" not in resource and "mchid" in resource:
        raise MalformedNotification(
            "decrypted resource is a direct merchant's (mchid, no sp_mchid) but this account is a service "
            "provider's (sp_mchid is set)"
        )
    if not service_provider and "sp_mchid" in resource:
        raise MalformedNotification(
            "decrypted resource is a service provider's (sp_mchid) but this account is a direct merchant's; "
            "configure sp_mchid and sp_appid instead of mchid and appid"
        )


def _check_partner(resource: Resource, settings: WeChatPayV3Settings, kind: Kind) -> None:
    """A service provider's resource must name it; these ids are not checked by the pipeline."""
    received = _required(resource, "sp_mchid")
    if received != settings.sp_mchid:
        raise VerificationError(
            f"decrypted resource is for sp_mchid {_shown(received)}, this account is sp_mchid "
            f"{settings.sp_mchid!r}"
        )
    if settings.sub_appid is not None and kind is Kind.PAYMENT:
        sub_appid = _optional(resource, "sub_appid")
        if sub_appid != settings.sub_appid:
            raise VerificationError(
                f"payment is for sub_appid {_shown(sub_appid)}, this account accepts sub_appid "
                f"{settings.sub_appid!r} only"
            )


def _merchant(resource: Resource, service_provider: bool) -> str:
    return _required(resource, "sub_mchid" if service_provider else "mchid")


def _payer(resource: Resource, service_provider: bool) -> str | None:
    payer = _object(resource, "payer")
    names = ("sp_openid", "sub_openid") if service_provider else ("openid",)
    for name in names:
        if payer.get(name):
            return str(payer[name])
    return None


def _raw(envelope: Envelope, resource: Resource) -> dict[str, Any]:
    raw = envelope.outer_fields()
    raw.update(resource)
    return raw


def _event_id(account: Account3, kind: Kind, trade: str, refund: str | None,
              status: str, resource: Resource, service_provider: bool) -> str:  # fmt: skip
    if not service_provider:
        return make_event_id(account.name, kind, trade, refund, status)
    # A service provider's sub-merchants number their orders independently: keep them apart.
    return make_event_id(account.name, kind, trade, refund, status, _required(resource, "sub_mchid"))


class PaymentFields(NamedTuple):
    """What one payment says, read by `read_payment`: a single order's or a combined order's
    sub-order (one reader, so the two can never be checked differently)."""

    trade_state: str
    order_id: str
    transaction_id: str | None
    amount: Decimal | None
    currency: str
    paid_at: datetime | None


SINGLE_AMOUNT = ("total", "payer_total")
"""The amount fields of a single payment (amount.total, amount.payer_total)."""
SUB_ORDER_AMOUNT = ("total_amount", "payer_amount")
"""The amount fields of a combined order's sub-order (amount.total_amount, amount.payer_amount)."""


def read_payment(resource: Resource, amount_names: tuple[str, str] = SINGLE_AMOUNT) -> PaymentFields:
    """trade_state (of the table), out_trade_no and transaction_id (of their documented shapes),
    the amount in fen, currency and success_time; transaction_id, the amount and success_time are
    required when the buyer paid. Raises MalformedNotification naming the field and its rule."""
    trade_state = _state(resource, "trade_state", TRADE_STATES)
    order_id = cast(str, _id(resource, "out_trade_no"))
    paid = trade_state in _PAID
    transaction_id = _id(resource, "transaction_id", required=paid)
    total, payer = amount_names
    amount = _object(resource, "amount")
    _check_fen(amount, payer)
    return PaymentFields(
        trade_state,
        order_id,
        transaction_id,
        _yuan(amount, total, required=paid),
        _optional(amount, "currency") or "CNY",
        _time(resource, "success_time", required=paid),
    )


def payment_result(
    account: Account3, envelope: Envelope, resource: Resource, *, provider: str, key_id: str
) -> PaymentResult:
    settings = account.settings
    partner = settings.service_provider  # read once: every step below depends on it
    _check_mode(resource, partner)
    if partner:
        _check_partner(resource, settings, Kind.PAYMENT)
    paid = read_payment(resource)
    trade_state, order_id, transaction_id = paid.trade_state, paid.order_id, paid.transaction_id
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.PAYMENT,
        status=TRADE_STATES[trade_state],
        provider_status=trade_state,
        order_id=order_id,
        transaction_id=transaction_id,
        amount=paid.amount,
        currency=paid.currency,
        paid_at=paid.paid_at,
        payer_id=_payer(resource, partner),
        app_id=_required(resource, "sp_appid" if partner else "appid"),
        merchant_id=_merchant(resource, partner),
        event_id=_event_id(
            account, Kind.PAYMENT, transaction_id or order_id, None, trade_state, resource, partner
        ),
        key_id=key_id,
        raw=_raw(envelope, resource),
    )


def refund_result(
    account: Account3, envelope: Envelope, resource: Resource, *, provider: str, key_id: str
) -> PaymentResult:
    settings = account.settings
    partner = settings.service_provider  # read once: every step below depends on it
    _check_mode(resource, partner)
    if partner:
        _check_partner(resource, settings, Kind.REFUND)
    refund_status = _state(resource, "refund_status", REFUND_STATUSES)
    status = REFUND_STATUSES[refund_status]
    order_id = cast(str, _id(resource, "out_trade_no"))
    refund_id = cast(str, _id(resource, "out_refund_no"))
    transaction_id = _id(resource, "transaction_id", required=False)
    provider_refund_id = _id(resource, "refund_id", required=False)
    trade = transaction_id or order_id
    amount = _object(resource, "amount")
    total = _yuan(amount, "total", required=True)
    refund = _yuan(amount, "refund", required=True)
    _check_fen(amount, "payer_total")
    _check_fen(amount, "payer_refund")
    if refund is not None and total is not None and refund > total:
        raise MalformedNotification(
            f"decrypted resource amount.refund {refund} is more than amount.total {total}"
        )
    refunded_at = _time(resource, "success_time", required=False)
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.REFUND,
        status=status,
        provider_status=refund_status,
        order_id=order_id,
        transaction_id=transaction_id,
        refund_id=refund_id,
        provider_refund_id=provider_refund_id,
        amount=total,
        currency=_optional(amount, "currency") or "CNY",
        refund_amount=refund,
        refunded_at=refunded_at if status is Status.SUCCEEDED else None,
        app_id=settings.expected_app_id(),
        merchant_id=_merchant(resource, partner),
        event_id=_event_id(account, Kind.REFUND, trade, refund_id, refund_status, resource, partner),
        key_id=key_id,
        raw=_raw(envelope, resource),
    )


def to_result(
    kind: Kind, account: Account3, envelope: Envelope, resource: Resource, *,
    provider: str, key_id: str,
) -> PaymentResult:  # fmt: skip
    build = payment_result if kind is Kind.PAYMENT else refund_result
    try:
        return build(account, envelope, resource, provider=provider, key_id=key_id)
    except InvalidContent:
        raise
    except MalformedNotification as exc:
        raise InvalidContent(
            exc.message,
            account=account.name,
            raw=_raw(envelope, resource),
            event_id=_refused_event_id(kind, account, resource),
        ) from None


def _refused_event_id(kind: Kind, account: Account3, resource: Resource) -> str | None:
    """The event_id of a resource refused for its content, when its parts are strings at all."""
    trade = resource.get("transaction_id") or resource.get("out_trade_no")
    refund = resource.get("out_refund_no") if kind is Kind.REFUND else None
    status = resource.get("trade_state" if kind is Kind.PAYMENT else "refund_status")
    scope = resource.get("sub_mchid") if account.settings.service_provider else None
    parts = (trade, refund, status, scope)
    if not trade or not status or not all(part is None or isinstance(part, str) for part in parts):
        return None
    return make_event_id(account.name, kind, trade, refund, status, *([scope] if scope is not None else []))
