"""Delivering a recorded event again, in this process (`Notifier.redeliver`: `paynotify events
retry|replay` and the console's actions), through the pipeline's one settle path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paynotify._errors import ConfigurationError, DeliveryFailed
from paynotify._result import PaymentResult
from paynotify._stores.base import ClaimState, EventState

if TYPE_CHECKING:
    from paynotify._pipeline import Pipeline

__all__ = ["redeliver"]


async def redeliver(pipeline: Pipeline, event_id: str, *, replay: bool = False) -> bool:
    """Deliver a recorded event again now, in this process (`paynotify events retry|replay`).

    A retry runs the subscribers that have not succeeded on it (a dead-lettered or released
    event); a replay runs every subscriber again, even on a completed event, and re-checks a
    rejected one with the account's current settings first (`CheckFailed` if it is refused
    again). Returns False when the event is unknown, in flight elsewhere, or not eligible.
    A failed attempt raises `DeliveryFailed` and leaves the event where the next attempt
    finds it; `StoreError` when the subscribers ran but the store could not record it (the
    event handed back, as on every path).
    """
    event = await pipeline.store.get(event_id)
    if event is None or event.state is EventState.UNHANDLED or event.kind == "unhandled":
        return False  # nothing a subscriber takes (an unhandled type, or refused content)
    if event.state is EventState.REJECTED:
        if not replay:
            return False  # a retry never bypasses the checks
        await _recheck(pipeline, event.result())
    if not await pipeline.store.requeue(event_id, replay=replay):
        return False
    result = event.result()
    claim = await pipeline.store.claim(result, lease_seconds=pipeline.options.lease_seconds)
    if claim.state is not ClaimState.NEW or claim.token is None:
        return False
    error = await pipeline.settle(result, claim.token, claim.done_subscribers, attempts=claim.attempts)
    if error is not None:
        raise DeliveryFailed(f"event {event_id}: {error}", account=event.account)
    return True


async def _recheck(pipeline: Pipeline, result: PaymentResult) -> None:
    account = pipeline.accounts.get(result.account)
    if account is None:
        raise ConfigurationError(f"event {result.event_id}: account {result.account!r} is not configured")
    refusal = await pipeline.refusal(result, account)
    if refusal is not None:
        await pipeline.store.record(result, EventState.REJECTED, reason=str(refusal))
        raise refusal
