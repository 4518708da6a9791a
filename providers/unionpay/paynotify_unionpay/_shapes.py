"""The documented shapes of UnionPay's fields, and the rule that keeps a sign string unambiguous.

Why after verification is not enough: the sign string joins `k=v` with `&` and escapes nothing, so
the same signed bytes can be cut into fields another way and still verify. A value can swallow the
fields sorted after it (`signPubKeyCert` holding `...-----END CERTIFICATE-----&traceNo=...`), or a
name can take the start of its value (`accNo=ORRS` with the rest as value). Two rules close that:

- structure, for every field: a name holds no `=` or `&`; a value holds `&` only inside a `{...}` or
  `[...]` group and leaves no group open. These are the groups UnionPay's own SDK parser reads
  (`{k=v&k=v}` in `reserved` and its kin), and its demo tells merchants to keep `&={}[]` out of
  `reqReserved`. With them a sign string has one partition only: two cuts that agree up to a
  value would disagree on where it ends, and the longer value would then hold an `&` right after
  a closed prefix. So no field can have swallowed another, whatever its name.
- shapes, for the fields UnionPay documents (全渠道 specification, N = digits, AN = letters and
  digits: queryId AN21, traceNo N6, traceTime MMDDhhmmss, txnAmt N1..12, respCode AN2, ...; lengths
  a little wider where merchants' and UnionPay's own messages differ, as orderId's 8-32 or 8-40):
  an id, amount, code or time out of its pattern is not UnionPay's.

Both hold only for verified fields, and a breach raises InvalidContent (recorded `rejected`, then
acknowledged), never a failure reply: a resend would be refused the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["FREE_TEXT", "SHAPES", "field_problem", "shape_problem", "shown", "structure_problem"]

_DIGITS_2 = (r"[0-9]{2}", "2 digits")
_FEN = (r"[0-9]{1,12}", "fen: 1-12 digits, no sign or decimal point")
_CURRENCY = (r"[0-9A-Za-z]{3}", "3 letters or digits (ISO 4217)")
_MMDD = (r"[0-9]{4}", "MMDD: 4 digits")
_RESP_CODE = (r"[0-9A-Za-z]{2}", "2 letters or digits")
_QUERY_ID = (r"[0-9A-Za-z]{1,32}", "1-32 letters or digits")

SHAPES: dict[str, tuple[str, str]] = {
    "txnType": _DIGITS_2,
    "txnSubType": _DIGITS_2,
    "channelType": _DIGITS_2,
    "signMethod": _DIGITS_2,
    "bizType": (r"[0-9]{6}", "6 digits"),
    "accessType": (r"[0-9]", "1 digit"),
    "issuerIdentifyMode": (r"[0-9]", "1 digit"),
    "merId": (r"[0-9A-Za-z]{1,32}", "1-32 letters or digits"),
    "orderId": (r"[0-9A-Za-z]{8,40}", "8-40 letters or digits (no '-' or '_')"),
    "queryId": _QUERY_ID,
    "origQryId": _QUERY_ID,
    "certId": (r"[0-9]{1,128}", "1-128 digits"),
    "txnTime": (r"[0-9]{14}", "yyyyMMddHHmmss: 14 digits"),
    "traceTime": (r"[0-9]{10}", "MMddHHmmss: 10 digits"),
    "traceNo": (r"[0-9]{6}", "6 digits"),
    "settleDate": _MMDD,
    "exchangeDate": _MMDD,
    "txnAmt": _FEN,
    "settleAmt": _FEN,
    "currencyCode": _CURRENCY,
    "settleCurrencyCode": _CURRENCY,
    "exchangeRate": (r"[0-9]{1,8}", "1-8 digits"),
    "respCode": _RESP_CODE,
    "origRespCode": _RESP_CODE,
    "payCardType": (r"[0-9A-Za-z]{2}", "2 letters or digits"),
    "payType": (r"[0-9]{4}", "4 digits"),
    "accNo": (r"[0-9A-Za-z+/=*]{1,1024}", "a masked or encrypted card number: letters, digits, '+/=*'"),
}
"""field -> (pattern, the rule as an error says it). Checked on payments, refunds and returns."""

FREE_TEXT = ("respMsg", "origRespMsg", "reqReserved", "reserved", "payCardIssueName", "bindId")
"""Fields without a documented alphabet (text, or the merchant's own): held to the structure only,
as is every field UnionPay may add."""

_EACH = {name: re.compile(pattern).fullmatch for name, (pattern, _) in SHAPES.items()}
_NAMES = tuple(SHAPES)
_ABSENT = ("",) * len(_NAMES)
# Every shape at once, as Alipay's: the values in SHAPES' order joined by NUL (which no shape
# admits, so a value holding one cannot shift the others), each may be empty. One match instead of
# thirty on a genuine message; the per-field patterns run only to name the field out of shape.
_ALL = re.compile("\x00".join(f"(?:{pattern})?" for pattern, _ in SHAPES.values())).fullmatch
# Outside a group anything but `&` and an opener; a group runs to the first closer of its kind
# (UnionPay's parser does not nest them). The alternatives start with distinct characters: linear.
_VALUE = re.compile(r"(?:[^&{\[]|\{[^}]*\}|\[[^\]]*\])*").fullmatch
_SHOWN = 24


def shown(value: str) -> str:
    """`value` for an error message: its repr, cut short (a value may be long or a fold)."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def structure_problem(fields: Mapping[str, str]) -> str | None:
    """Why the fields could be another cut of their sign string (field and rule), or None."""
    # Whole-message scans first (str's own search, much faster than a regex's): most values hold
    # none of `&{[`, and no name holds `=` or `&`.
    names = "\x00".join(fields)
    if "=" in names or "&" in names:
        name = next(name for name in fields if "=" in name or "&" in name)
        return f"field name {shown(name)} holds '=' or '&' (no UnionPay name does)"
    values = "\x00".join(fields.values())
    if "&" not in values and "{" not in values and "[" not in values:
        return None
    for name, value in fields.items():
        if ("&" in value or "{" in value or "[" in value) and _VALUE(value) is None:
            return (
                f"{name} {shown(value)} holds '&' outside a {{...}} or [...] group, or leaves one open "
                "(it could have swallowed the fields after it)"
            )
    return None


def field_problem(fields: Mapping[str, str], name: str) -> str | None:
    """What is wrong with the field `name`: missing or empty, or out of its documented shape."""
    value = fields.get(name)
    if not value:
        return f"{name} is missing (UnionPay always sends it)"
    check = _EACH.get(name)
    if check is not None and check(value) is None:
        return f"{name} {shown(value)} is not {SHAPES[name][1]}"
    return None


def shape_problem(fields: Mapping[str, str], required: tuple[str, ...]) -> str | None:
    """What is wrong with the verified `fields`: a `required` one missing or empty, or a documented
    one out of its shape (field and rule); None when all have their shape."""
    get = fields.get
    if not all(map(get, required)):  # map: the lookups in C
        name = next(name for name in required if not get(name))
        return f"{name} is missing (UnionPay always sends it)"
    if _ALL("\x00".join(map(get, _NAMES, _ABSENT))) is not None:
        return None
    for name in _EACH:  # in SHAPES' order: the ids and amounts a result is made of come first
        if fields.get(name):
            fault = field_problem(fields, name)
            if fault is not None:
                return fault
    return None
