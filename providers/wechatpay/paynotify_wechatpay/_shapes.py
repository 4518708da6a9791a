"""The documented shapes of WeChat Pay's identifiers and states, shared by API v2 and v3.

From WeChat Pay's API documentation (统一下单 / 申请退款 / 支付结果通知 / 退款结果通知):
- transaction_id (微信支付订单号) String(32) and refund_id (微信退款单号) String(32): digits.
- out_trade_no (商户订单号) String(32): "只能是数字、大小写字母_-|*" (v2); v3 lists `_-*`, and an
  order made through v2 keeps its `|` when notified through v3, so both take v2's alphabet.
- out_refund_no (商户退款单号) String(64): "只能是数字、大小写字母_-|*@".

Checked only after verification or decryption: they are what keep a value that came out of a
spliced or re-split message from passing as an id, and what a subscriber may put in a URL or a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["ID_RULES", "id_problem"]

ID_RULES: dict[str, tuple[Callable[[str], object], str]] = {
    "transaction_id": (re.compile(r"[0-9]{1,32}").fullmatch, "1-32 digits"),
    "refund_id": (re.compile(r"[0-9]{1,32}").fullmatch, "1-32 digits"),
    "out_trade_no": (re.compile(r"[0-9A-Za-z_|*-]{1,32}").fullmatch, "1-32 letters, digits or _-|*"),
    "out_refund_no": (re.compile(r"[0-9A-Za-z_|*@-]{1,64}").fullmatch, "1-64 letters, digits or _-|*@"),
}
"""Field name -> (fullmatch, the rule as an error message says it)."""


def id_problem(name: str, value: str) -> str | None:
    """The rule `value` breaks as WeChat Pay's `name`, or None when it has the documented shape."""
    match, rule = ID_RULES[name]
    return None if match(value) is not None else rule
