"""What the pipeline tells an observer: each notification's outcome, how long verification, the store
and each subscriber took, and stages to trace. The core knows no metrics or tracing library:
`paynotify.ops.Instrumentation` implements this with prometheus_client and OpenTelemetry.

Without an observer the pipeline measures nothing (one `is None` test per notification); with one
whose `tracing` is false it opens no stages (one attribute read per stage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any

__all__ = ["Observer", "Outcome"]

_NOTHING = contextlib.nullcontext()


class Outcome(StrEnum):
    """How one HTTP delivery ended, the `outcome` label of `paynotify_notifications_total`; or how one
    query of a provider's API did (`paynotify_queries_total`): an answer with a result ends as a
    notification of it would, the others as the last four."""

    DELIVERED = "delivered"
    """Verified and every subscriber succeeded (inline), acknowledged."""
    QUEUED = "queued"
    """Verified and recorded for the dispatcher (queued delivery), acknowledged."""
    DUPLICATE = "duplicate"
    """A copy of an event already recorded: acknowledged, not delivered again."""
    IN_FLIGHT = "in_flight"
    """Another delivery of the event holds its lease: the provider is asked to retry."""
    REFUSED_SIGNATURE = "refused_signature"
    """Bad, missing or unverifiable signature, wrong key, outside the replay window."""
    MALFORMED = "malformed"
    """Not the provider's format (nothing verified): the failure reply."""
    REJECTED_CONTENT = "rejected_content"
    """Verified, but content out of its documented shape: recorded `rejected`, acknowledged (on
    channel `return`: the failure page, nothing recorded)."""
    REJECTED_CHECK = "rejected_check"
    """Verified, refused by an account check or check hook: recorded `rejected`, acknowledged."""
    UNHANDLED = "unhandled"
    """Verified, not a payment, refund or transfer: recorded `unhandled`, acknowledged."""
    TOO_LARGE = "too_large"
    UNKNOWN_ACCOUNT = "unknown_account"
    DELIVERY_FAILED = "delivery_failed"
    """A subscriber, hook or the provider plugin raised: the provider is asked to retry."""
    STORE_UNAVAILABLE = "store_unavailable"
    """The store did not answer: the provider is asked to retry."""
    RETURN = "return"
    """A verified sync return (the buyer's browser) answered with a page (a forged, malformed or
    out-of-shape one ends as `refused_signature`, `malformed` or `rejected_content`, on channel
    `return`)."""
    NOT_A_NOTIFICATION = "not_notification"
    """Verified, but not a notification (a sync return posted to notify): the failure reply,
    never recorded."""
    QUERY_REFUSED = "query_refused"
    """A query's answer did not verify (forged, re-serialised, unsigned, stale): never believed."""
    NOT_FOUND = "not_found"
    """A query's verified answer: the provider knows no such order or refund (yet)."""
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    """The provider's API was not reached within the deadline (refused, timed out, 5xx)."""
    PROVIDER_ERROR = "provider_error"
    """The provider's API answered with an error of its own, or with something out of its format."""


class Observer:
    """The default observer notices nothing; subclasses override what they measure. No method may
    raise or block: they run on the request path."""

    tracing: bool = False
    """Whether `stage` and `annotate` record anything now. The pipeline calls them only while this
    is true, so an observer that traces nothing (or not yet: no SDK installed) costs no stages; it
    may change at any time, and a notification in progress may then miss some of its stages."""

    def notification(self, provider: str, account: str, outcome: Outcome, seconds: float) -> None:
        """One HTTP delivery ended with `outcome` after `seconds` (provider and account are `-` when
        no configured account answered: URL segments are not trusted as labels)."""

    def answered(self, provider: str, account: str, channel: str, outcome: Outcome, seconds: float) -> None:
        """One HTTP request on `channel` (`notify`, `return`; `-` when no account answered) ended
        with `outcome` after `seconds`. The pipeline calls this; by default it calls
        `notification`, so an observer that does not tell channels apart overrides that alone."""
        self.notification(provider, account, outcome, seconds)

    def query(self, provider: str, account: str, outcome: Outcome, seconds: float) -> None:
        """One query of a provider's API (`Notifier.query`) ended with `outcome` after `seconds`."""

    def verification(self, provider: str, seconds: float) -> None:
        """The provider's `parse` (verification first, then normalization) took `seconds`."""

    def recovered(self, provider: str, account: str) -> None:
        """The sweeper's question was first with a final state of an expectation (its notification
        had not come): it was delivered (or queued) from the provider's answer."""

    def subscriber(self, name: str, seconds: float, *, failed: bool) -> None:
        """Subscriber `name` ran for `seconds` on one event."""

    def stage(self, name: str, attributes: Mapping[str, str] | None = None) -> AbstractContextManager[Any]:
        """A stage of handling (`paynotify.notification`, `paynotify.verify`, `paynotify.store.claim`,
        `paynotify.subscriber`, ...): a tracer opens a span for it, current while it runs."""
        return _NOTHING

    def annotate(self, attributes: Mapping[str, str]) -> None:
        """Attributes learnt during the stage that is current (an event id, the outcome)."""
