"""What the pipeline's log lines carry: the structured fields `paynotify.ops.JsonFormatter` puts out
(account, provider, outcome, event id, cause), never a secret or a body. Warnings about refused
requests are sampled (`paynotify._sampling`)."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, cast

from paynotify._observe import Outcome
from paynotify._provider import Account
from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._sampling import Sampler

__all__ = ["describe", "entry_fields", "fields", "log_delivered", "refusal_sampler", "warn_refused"]

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


def refusal_sampler() -> Sampler:
    """A pipeline's sampler of refusal warnings: the first 10 a minute for each account, outcome
    and channel, then one line with the count left out (anyone can send what is refused)."""
    return Sampler(_suppressed, limit=10, window=60.0)


def warn_refused(
    sampler: Sampler,
    account: Account[Any],
    outcome: Outcome,
    channel: str,
    message: str,
    *args: object,
    event_id: str | None = None,
    cause: str,
) -> None:
    if sampler.allow((account.name, account.provider.name, outcome.value, channel)):
        log.warning(message, *args, extra=fields(account, outcome, event_id, cause=cause))


def _suppressed(key: Hashable, count: int, window: float) -> None:
    account, provider, outcome, channel = cast("tuple[str, str, str, str]", key)
    log.warning(
        "%d more %s warnings on account %r (%s channel) left out of the log in %g s",
        count, outcome, account, channel, window,
        extra={"account": account, "provider": provider, "outcome": outcome, "event_id": None,
               "cause": f"{count} suppressed"},
    )  # fmt: skip
