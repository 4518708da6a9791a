"""`Notifier.expect`, and the closing of an expectation when a final state of it is delivered.

A final state closes its expectation however it came: the provider's notification, a query by
anyone (the sweeper, `paynotify query`, the merchant's code), on inline or queued delivery. The
pipeline calls `close_delivered` once per delivered event, after its completion is recorded; the
store's `settle` is a no-op when nothing is open, so a copy of the event changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from paynotify import Expectation, ExpectationStore, Kind, PaymentResult, Status, Store
from paynotify.recovery._query import query_api

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["close_delivered", "expect", "expectations_of", "final_outcome", "key_of", "unix_time"]

log = logging.getLogger("paynotify")


def unix_time(value: datetime | timedelta | float, *, now: float) -> float:
    """`until` or `at` as Unix seconds: an aware datetime, a timedelta from `now`, or seconds."""
    if isinstance(value, timedelta):
        return now + value.total_seconds()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give an aware datetime (with its time zone): a naive one is ambiguous")
        return value.timestamp()
    return float(value)


def key_of(result: PaymentResult) -> tuple[str, str, str | None] | None:
    """The expectation a result answers: a payment's order, or that refund of it; None for others."""
    if result.kind is Kind.PAYMENT:
        return (result.account, result.order_id, None)
    if result.kind is Kind.REFUND and result.refund_id is not None:
        return (result.account, result.order_id, result.refund_id)
    return None


def final_outcome(result: PaymentResult) -> str | None:
    """The outcome a result closes its expectation with (its status), or None while pending."""
    return None if result.status is Status.PENDING else result.status.value


def expectations_of(store: Store) -> ExpectationStore | None:
    """The store's expectations, or None for a store that keeps none (a third party's)."""
    try:
        return store.expectations
    except NotImplementedError:
        return None


async def close_delivered(store: Store, result: PaymentResult) -> None:
    """Close the expectation a delivered final `result` answers. Never raises: the delivery is
    done either way, and an expectation left open is closed by the sweeper's next question (the
    answer is then a duplicate)."""
    key = key_of(result)
    outcome = final_outcome(result)
    if key is None or outcome is None:
        return
    expectations = expectations_of(store)
    if expectations is None:
        return
    account, order_id, refund_id = key
    try:
        closed = await expectations.settle(account, order_id, refund_id=refund_id, outcome=outcome)
    except Exception as exc:
        log.warning("event %s: its expectation could not be closed (the sweeper will): %s",
                    result.event_id, exc)  # fmt: skip
        return
    if closed:
        log.info("expectation of %s %r on account %r settled by its %s: %s", result.kind.value,
                 refund_id or order_id, account, result.source.value, outcome)  # fmt: skip


async def expect(
    notifier: Notifier,
    account: str,
    order_id: str,
    *,
    amount: Decimal | str | int,
    currency: str,
    refund_id: str | None,
    until: datetime | timedelta | float,
    at: datetime | None,
    first_due: float | None,
    now: float,
) -> Expectation:
    query_api(notifier, account)  # UnknownAccount, or ConfigurationError: it could never be asked
    expectations = expectations_of(notifier.store)
    if expectations is None:
        raise NotImplementedError(f"{type(notifier.store).__name__} keeps no expectations")
    return await expectations.expect(
        account, order_id, amount=amount, currency=currency, refund_id=refund_id,
        until=unix_time(until, now=now), at=None if at is None else unix_time(at, now=now),
        first_due=now + notifier.options.first_query_after if first_due is None else first_due, now=now,
    )  # fmt: skip
