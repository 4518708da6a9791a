"""The documented shapes of Alipay's notification fields, checked after verification.

Why after verification matters: the V1 signed content joins `k=v` with `&` and escapes neither, so
the same signed bytes can be split into fields another way (`trade_no=1&trade_status=X` as one
value of trade_no, or `total_amount=...` swallowed by the field sorted before it) and still verify.
Every field Alipay gives a shape to is held to it, so that a value can never carry a separator of
the signed content; the fields an event depends on must be present, so none can be swallowed.

Shapes, from Alipay's open platform documentation (异步通知参数, alipay.trade.* requests):
- trade_no: Alipay's trade number, String(64), digits ("2013112011001004330000121536").
- out_trade_no: "64个字符以内, 仅支持字母、数字、下划线"; `-` is accepted as well, as merchants use it.
- out_biz_no: the refund request number (out_request_no), String(64), no documented alphabet:
  printable ASCII without the separators `&` and `=`, so no merchant's number is refused.
- app_id, auth_app_id: String(32) digits; seller_id: String(30) digits (2088 + 12 digits).
- notify_id: String(128), letters and digits.
- amounts: yuan, "精确到小数点后 2 位": digits, at most two decimals, no sign, no exponent.
- times: `yyyy-MM-dd HH:mm:ss`; gmt_refund may add milliseconds.
- trade_status: WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["AMOUNT_FIELDS", "SHAPED_FIELDS", "TRADE_STATUSES", "problem"]

TRADE_STATUSES = frozenset({"WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED"})
_PAID = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})

AMOUNT_FIELDS = (
    "total_amount",
    "receipt_amount",
    "invoice_amount",
    "buyer_pay_amount",
    "point_amount",
    "refund_fee",
    "send_back_fee",
)

# (pattern, the rule as an error message says it), walked in this order when one is out of shape.
_SHAPES: dict[str, tuple[str, str]] = {
    "trade_no": (r"[0-9]{1,64}", "1-64 digits"),
    "out_trade_no": (r"[A-Za-z0-9_-]{1,64}", "1-64 letters, digits, '_' or '-'"),
    "out_biz_no": (r"[!-%'-<>-~]{1,64}", "1-64 printable ASCII characters other than '&' and '='"),
    "app_id": (r"[0-9]{1,32}", "1-32 digits"),
    "auth_app_id": (r"[0-9]{1,32}", "1-32 digits"),
    "seller_id": (r"[0-9]{1,30}", "1-30 digits"),
    "notify_id": (r"[A-Za-z0-9]{1,128}", "1-128 letters or digits"),
    **{
        name: (r"[0-9]{1,11}(?:\.[0-9]{1,2})?", "yuan: digits with at most two decimals, no sign")
        for name in AMOUNT_FIELDS
    },
    **{
        name: (r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", "a 'yyyy-MM-dd HH:mm:ss' time")
        for name in ("notify_time", "gmt_create", "gmt_payment", "gmt_close", "timestamp")
    },
    "gmt_refund": (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,3})?",
        "a 'yyyy-MM-dd HH:mm:ss[.SSS]' time",
    ),
}
_NAMES = tuple(_SHAPES)
_ABSENT = ("",) * len(_NAMES)
# Every shape at once: the values in _NAMES order, joined by NUL (which no shape admits, so a value
# holding one cannot shift the others), each may be empty. One match instead of twenty is most of
# the cost on a genuine notification; the per-field patterns only run to name the field out of shape.
_ALL = re.compile("\x00".join(f"(?:{pattern})?" for pattern, _ in _SHAPES.values())).fullmatch
_EACH = {name: re.compile(pattern).fullmatch for name, (pattern, _) in _SHAPES.items()}
SHAPED_FIELDS = frozenset({*_SHAPES, "trade_status"})
"""Every field whose value is checked (tests that make up fields avoid these names)."""

# Always in an async notification (Alipay's table marks them 必填): a value in a free-text field
# sorted before one of them cannot swallow it unnoticed.
_NOTIFY_REQUIRED = ("notify_id", "notify_type", "app_id", "trade_no", "out_trade_no")
_SHOWN = 24


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def problem(fields: Mapping[str, str], *, is_return: bool) -> str | None:
    """What is wrong with the verified `fields` (field and rule), or None when all have their shape."""
    get = fields.get
    if not is_return:
        for name in _NOTIFY_REQUIRED:
            if not get(name):
                return f"{name} is missing (Alipay always sends it)"
    elif not get("out_trade_no"):
        return "out_trade_no is missing (Alipay always sends it)"
    if _ALL("\x00".join(map(get, _NAMES, _ABSENT))) is None:  # map: the lookups in C
        for name in _NAMES:
            value = get(name)
            if value and _EACH[name](value) is None:
                return f"{name} {_shown(value)} is not {_SHAPES[name][1]}"
    status = get("trade_status")
    if status:
        if status not in TRADE_STATUSES:
            return f"trade_status {_shown(status)} is not one of {', '.join(sorted(TRADE_STATUSES))}"
        if status in _PAID and not get("total_amount"):
            return f"trade_status {status} without total_amount (a paid trade always has one)"
    return None
