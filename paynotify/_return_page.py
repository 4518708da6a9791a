"""What the buyer's browser sees after a sync return: a redirect or a plain page, never `success`."""

from __future__ import annotations

import html
from urllib.parse import quote

from paynotify._http import Reply
from paynotify._result import PaymentResult

__all__ = ["default_return_reply", "return_failure_reply"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""


def default_return_reply(result: PaymentResult, return_url: str | None) -> Reply:
    """Redirect to the account's `return_url` (with `{order_id}` filled in), or show a neutral page.

    The page says the payment is being confirmed: a return is not proof of payment, only the
    async notification is.
    """
    if return_url:
        return Reply.redirect(return_url.replace("{order_id}", quote(result.order_id, safe="")))
    text = f"Order {html.escape(result.order_id)}: we are confirming your payment. You may close this page."
    return Reply.html(_PAGE.format(title="Thank you", text=text))


def return_failure_reply(status: int = 400) -> Reply:
    text = "This payment link could not be verified. If you paid, your order will still be updated."
    return Reply.html(_PAGE.format(title="Payment link not valid", text=text), status)
