"""What the pipeline's log lines carry: the structured fields `paynotify.ops.JsonFormatter` puts out
(account, provider, outcome, event id, cause), never a secret or a body."""

from __future__ import annotations

import logging
from typing import Any

from paynotify._observe import Outcome
from paynotify._provider import Account
from paynotify._result import PaymentResult, UnhandledEvent

__all__ = ["describe", "entry_fields", "fields", "log_delivered"]

log = logging.getLogger("paynotify")


def log_delivered(result: PaymentResult) -> None:
    if not log.isEnabledFor(logging.INFO):  # the arguments cost more than the check
        return
    log.info(
        "delivered %s %s/%s order %s (%s), verified with key %s",
        result.provider,
        *describe(result),
        result.key_id or "-",
        extra=entry_fields(result, Outcome.DELIVERED),
    )


def fields(
    account: Account[Any], outcome: Outcome, event_id: str | None, *, cause: str
) -> dict[str, str | None]:
    """What a structured log line carries (paynotify.ops.JsonFormatter): never a secret."""
    return {"account": account.name, "provider": account.provider.name, "outcome": outcome.value,
            "event_id": event_id, "cause": cause}  # fmt: skip


def entry_fields(
    entry: PaymentResult | UnhandledEvent, outcome: Outcome, cause: str | None = None
) -> dict[str, str | None]:
    return {"account": entry.account, "provider": entry.provider, "outcome": outcome.value,
            "event_id": entry.event_id, "cause": cause}  # fmt: skip


def describe(result: PaymentResult) -> tuple[str, str, str, str]:
    return result.kind.value, result.status.value, result.order_id, result.event_id
