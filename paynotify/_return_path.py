"""The sync return's own short path: verify, check, render. A return is the buyer's browser coming
back, not a notification: nothing is recorded, acknowledged or dispatched, and whatever goes wrong
the person gets a page (never a provider's `success`/`fail`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from paynotify._errors import CheckFailed, MalformedNotification, VerificationError
from paynotify._http import InboundRequest, Reply
from paynotify._observe import Outcome
from paynotify._provider import Account
from paynotify._refusals import RefusalLog, refused_outcome
from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._return_page import default_return_reply, return_failure_reply
from paynotify._subscribers import ReturnHandler, call_maybe_async

__all__ = ["answer_return"]

log = logging.getLogger("paynotify")

Parse = Callable[[Account[Any], InboundRequest], PaymentResult | Sequence[PaymentResult] | UnhandledEvent]
Refusal = Callable[[PaymentResult, Account[Any]], Awaitable[CheckFailed | None]]


async def answer_return(
    account: Account[Any],
    request: InboundRequest,
    *,
    parse: Parse,
    refusal: Refusal,
    refusals: RefusalLog,
    handler: ReturnHandler | None,
) -> tuple[Reply, Outcome]:
    """The page (or redirect) for one sync return, and how it is counted: `return` when it
    verified and passed the checks, else as a refused notification would be (`refused_signature`,
    `malformed`, `rejected_content`), on channel `return`."""
    lang = request.headers.get("accept-language")  # the page is for a person, in their language
    try:
        parsed = parse(account, request)
    except (MalformedNotification, VerificationError) as exc:
        exc.account = exc.account or account.name
        outcome = refused_outcome(exc)
        refusals.refused(account, outcome, exc, request)
        return return_failure_reply(400, lang), outcome
    except Exception:
        log.exception("account %r: provider %s failed on a sync return", account.name, account.provider.name)
        return return_failure_reply(500, lang), Outcome.RETURN
    if not isinstance(parsed, PaymentResult):  # an unhandled type, or several results: no page of an order
        return return_failure_reply(400, lang), Outcome.RETURN
    try:
        refused = await refusal(parsed, account)
    except Exception:
        log.exception("account %r: a check hook failed on %s", account.name, parsed.event_id)
        return return_failure_reply(500, lang), Outcome.RETURN
    if refused is not None:
        return return_failure_reply(400, lang), Outcome.RETURN
    return await _render(parsed, account, lang, handler), Outcome.RETURN


async def _render(
    result: PaymentResult, account: Account[Any], lang: str | None, handler: ReturnHandler | None
) -> Reply:
    default = default_return_reply(result, account.settings.return_url, lang)
    if handler is None:
        return default
    try:
        reply = await call_maybe_async(handler, result)
    except Exception:
        log.exception("return handler failed for order %s", result.order_id)
        return default
    if isinstance(reply, Reply):
        return reply
    if isinstance(reply, str):
        return Reply.redirect(reply)
    return default
