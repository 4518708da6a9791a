"""`Notifier.query`: ask the provider about an order or a refund, believe only what verifies, and
deliver what it says through the pipeline a notification takes.

A verified answer with a result enters the pipeline after verification (`Pipeline.admit`): the
account's checks, then the store's claim on the event id, then the subscribers. The provider's
client gives the answer the event id a notification of that state has, so the store makes the two
one event: whichever comes first is delivered, the other is a duplicate (or, while the first is
being delivered, in flight), on every store and across processes.

An answer that does not verify is never believed: logged (its cause, never its body), counted as
`query_refused`, and raised to the caller as the `VerificationError` it is.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from paynotify import (
    Account,
    ConfigurationError,
    Outcome,
    ProviderApi,
    ProviderApiError,
    ProviderUnavailable,
    QueryAnswer,
    Send,
    UnknownAccount,
    VerificationError,
)

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["ask", "query_api"]

log = logging.getLogger("paynotify")

_FAILURES: tuple[tuple[type[Exception], Outcome], ...] = (
    (VerificationError, Outcome.QUERY_REFUSED),
    (ProviderUnavailable, Outcome.PROVIDER_UNAVAILABLE),
    (ProviderApiError, Outcome.PROVIDER_ERROR),
)


def query_api(notifier: Notifier, account_name: str) -> tuple[Account[Any], ProviderApi[Any]]:
    """The account and its provider's API client, or why it cannot be asked."""
    account = notifier.accounts.get(account_name)
    if account is None:
        known = ", ".join(sorted(notifier.accounts)) or "none"
        raise UnknownAccount(f"no account {account_name!r} (configured: {known})")
    provider = account.provider
    api = provider.api()
    if api is None:
        raise ConfigurationError(
            f"account {account.name!r}: provider {provider.name} has no API client, it cannot be queried"
        )
    if not api.can_query(account):
        raise ConfigurationError(
            f"account {account.name!r} cannot query {provider.name}: its settings lack what a query "
            "needs (the merchant's signing key; see the provider's page in the docs)"
        )
    return account, api


async def ask(
    notifier: Notifier,
    send: Send,
    account_name: str,
    order_id: str,
    *,
    refund_id: str | None = None,
    at: datetime | None = None,
) -> QueryAnswer:
    """Ask, verify, and deliver a result through the pipeline; the answer with its `outcome`."""
    account, api = query_api(notifier, account_name)
    observer = notifier.pipeline.observer
    started = time.perf_counter()
    what = f"refund {refund_id!r}" if refund_id is not None else f"order {order_id!r}"
    try:
        if refund_id is None:
            answer = await api.query_payment(send, account, order_id, at=at)
        else:
            answer = await api.query_refund(send, account, refund_id, order_id=order_id, at=at)
        mislabeled = answer.result is not None and (
            answer.result.account != account.name or answer.result.provider != account.provider.name
        )
        if mislabeled:
            # Delivered, it would be recorded under another account's name.
            raise ProviderApiError(
                f"account {account.name!r}: the {account.provider.name} client answered for another account",
                account=account.name,
            )
    except (VerificationError, ProviderApiError) as exc:
        outcome = next(outcome for kind, outcome in _FAILURES if isinstance(exc, kind))
        refused = isinstance(exc, VerificationError)
        if refused:
            exc.account = exc.account or account.name
        # The cause only: an answer's body is never logged, believed or not.
        log.warning("query of %s on account %r (%s) %s: %s", what, account.name, account.provider.name,
                    "refused, the answer does not verify" if refused else "failed", exc,
                    extra=_fields(account, outcome, str(exc)))  # fmt: skip
        if observer is not None:
            observer.query(account.provider.name, account.name, outcome, time.perf_counter() - started)
        raise
    result = answer.result
    if result is None:
        outcome = Outcome.NOT_FOUND
    else:
        outcome = await notifier.pipeline.admit(result, account)
    log.info("queried %s on account %r: %s", what, account.name, outcome.value,
             extra=_fields(account, outcome, None, result.event_id if result else None))  # fmt: skip
    if observer is not None:
        observer.query(account.provider.name, account.name, outcome, time.perf_counter() - started)
    return dataclasses.replace(answer, outcome=outcome)


def _fields(
    account: Account[Any], outcome: Outcome, cause: str | None, event_id: str | None = None
) -> dict[str, str | None]:
    """The structured log fields (paynotify.ops.JsonFormatter), as the pipeline's: never a secret."""
    return {"account": account.name, "provider": account.provider.name, "outcome": outcome.value,
            "event_id": event_id, "cause": cause}  # fmt: skip
