"""What the buyer's browser sees after a sync return: a redirect or a plain page, never `success`.

The page is in Chinese or English, as the browser's Accept-Language prefers; Chinese when it says
nothing either way, since the buyers of these providers mostly read Chinese.
"""

from __future__ import annotations

import html
from typing import Literal
from urllib.parse import quote

from paynotify._http import Reply
from paynotify._result import PaymentResult

__all__ = ["SECURITY_HEADERS", "Language", "default_return_reply", "page_language", "return_failure_reply"]

SECURITY_HEADERS = {
    # The page has no script, style, image or form of its own: nothing needs allowing.
    "content-security-policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # The query holds the buyer's signed trade details: neither cached nor sent on as a Referer.
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}
"""On every page and redirect paynotify answers a sync return with (an `on_return` handler's
reply is the application's own)."""

Language = Literal["zh", "en"]

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""

# Chinese punctuation is full-width on purpose.
_THANKS: dict[Language, tuple[str, str]] = {
    "zh": ("感谢您的付款", "订单 {order}：我们正在确认您的付款，您可以关闭此页面。"),  # noqa: RUF001
    "en": ("Thank you", "Order {order}: we are confirming your payment. You may close this page."),
}
_NOT_VALID: dict[Language, tuple[str, str]] = {
    "zh": ("支付链接无效", "无法验证此支付链接。如果您已付款，您的订单仍会更新。"),  # noqa: RUF001
    "en": (
        "Payment link not valid",
        "This payment link could not be verified. If you paid, your order will still be updated.",
    ),
}


def page_language(accept_language: str | None) -> Language:
    """`zh` or `en`, whichever the header ranks higher (by q, then the earlier); `zh` when there is
    no header or it names neither."""
    ranked: list[tuple[float, int, Language]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = _quality(params)
        if primary in ("zh", "en") and q > 0:
            ranked.append((q, -position, "zh" if primary == "zh" else "en"))
    return max(ranked)[2] if ranked else "zh"


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def _page(lang: Language, texts: dict[Language, tuple[str, str]], status: int, order: str = "") -> Reply:
    title, text = texts[lang]
    body = _PAGE.format(lang="zh-CN" if lang == "zh" else "en", title=title, text=text.format(order=order))
    headers = {"content-language": "zh-CN" if lang == "zh" else "en", "vary": "Accept-Language"}
    headers.update(SECURITY_HEADERS)
    return Reply(status, body.encode(), "text/html; charset=utf-8", headers)


def default_return_reply(
    result: PaymentResult, return_url: str | None, accept_language: str | None = None
) -> Reply:
    """Redirect to the account's `return_url` (with `{order_id}` filled in), or show a neutral page.

    The page says the payment is being confirmed: a return is not proof of payment, only the
    async notification is.
    """
    if return_url:
        location = return_url.replace("{order_id}", quote(result.order_id, safe=""))
        return Reply(303, b"", None, {"location": location, **SECURITY_HEADERS})
    return _page(page_language(accept_language), _THANKS, 200, html.escape(result.order_id))


def return_failure_reply(status: int = 400, accept_language: str | None = None) -> Reply:
    return _page(page_language(accept_language), _NOT_VALID, status)
