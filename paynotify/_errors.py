"""The exceptions paynotify raises.

    PaynotifyError
    ├── ConfigurationError          bad account settings, bad config file
    │   └── ProviderNotFound        a provider name no plugin registers
    ├── UnknownAccount              a request for an account nobody added        -> 404
    │   └── UnknownChannel          a known account, a channel its provider lacks -> 404 naming its channels
    ├── NotificationError           a delivery the provider must be told about
    │   ├── PayloadTooLarge         body over the limit                     -> 413
    │   ├── MalformedNotification   not the provider's format               -> failure reply
    │   │   └── InvalidContent      verified, but a field has not its documented shape
    │   │   │                       -> recorded `rejected` with the verified fields, then ack
    │   │   └── NotANotification    verified, but not a notification (a sync return posted to notify)
    │   │                           -> failure reply, counted, logged sampled, never recorded
    │   ├── VerificationError       bad, missing or unverifiable signature  -> failure reply
    │   ├── CheckFailed             verified, refused by an account check   -> ack, not dispatched
    │   ├── InFlight                the same event is handled elsewhere     -> failure reply, retry
    │   └── DeliveryFailed          a subscriber raised                     -> failure reply, retry
    ├── StoreError                  the store could not be read or written  -> failure reply, retry
    │   └── UnstorableContent       verified content no store can hold (a lone surrogate)
    │                               -> the provider's malformed reply
    ├── ProviderApiError            an outbound call to a provider's API gave no usable answer
    │   └── ProviderUnavailable     not reached in time (refused, timed out, 5xx): try later
    └── BillFormatError             a provider's bill is not in its format: names the line

Messages name the account, the rule and the key id involved; they never contain a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BillFormatError",
    "CheckFailed",
    "ConfigurationError",
    "DeliveryFailed",
    "InFlight",
    "InvalidContent",
    "MalformedNotification",
    "NotANotification",
    "NotificationError",
    "PayloadTooLarge",
    "PaynotifyError",
    "ProviderApiError",
    "ProviderNotFound",
    "ProviderUnavailable",
    "StoreError",
    "UnknownAccount",
    "UnknownChannel",
    "UnstorableContent",
    "VerificationError",
]


class PaynotifyError(Exception):
    """Base class of every exception paynotify raises on purpose."""


class ConfigurationError(PaynotifyError, ValueError):
    """An account, a provider or a config file is set up wrongly."""


class ProviderNotFound(ConfigurationError, LookupError):
    """No provider plugin is registered under the requested name."""


class UnknownAccount(PaynotifyError, LookupError):
    """A request names an account that was never added."""


class UnknownChannel(UnknownAccount):
    """A request names an account that exists, on a channel its provider does not serve
    (`POST /shop/foo`); `channels` are the ones it does."""

    def __init__(self, message: str, *, account: str, channels: frozenset[str]) -> None:
        super().__init__(message)
        self.account = account
        self.channels = channels


class NotificationError(PaynotifyError):
    """A notification that cannot be accepted as it is.

    `account` is filled in by the pipeline when the provider did not know it.
    """

    def __init__(self, message: str, *, account: str | None = None) -> None:
        super().__init__(message)
        self.account = account

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        if self.account is None:
            return self.message
        return f"account {self.account!r}: {self.message}"


class PayloadTooLarge(NotificationError):
    """The body is larger than the configured limit."""


class MalformedNotification(NotificationError):
    """The request is not in the provider's format (bad encoding, missing fields, bad XML)."""


class InvalidContent(MalformedNotification):
    """Verified, but a field does not have its documented shape (an amount that is not a decimal
    with two places, an id with characters the provider never sends, a paid state without an amount).

    Raised by a provider after verification, with the verified fields in `raw` and, when it can be
    told, `event_id`: the pipeline records the fields as `rejected`, so nothing verified goes
    unseen, and acknowledges the provider once they are on record (a resend would be refused the
    same way); while the store cannot take them, it gives the failure reply.
    """

    def __init__(
        self,
        message: str,
        *,
        account: str | None = None,
        raw: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message, account=account)
        self.raw: dict[str, Any] = dict(raw or {})
        self.event_id = event_id


class NotANotification(InvalidContent):
    """Verified, but not a notification at all: a signed sync return (which every buyer's browser
    is given) posted to the notify URL. Never recorded: re-encoding its bytes keeps the signature
    valid, so each copy would be a row any buyer can add; the pipeline counts it
    (`not_notification`), logs it at a sampled rate and gives the failure reply."""


class VerificationError(NotificationError):
    """The signature is missing, malformed, made with another key, or outside the replay window."""


class CheckFailed(NotificationError):
    """A verified notification was refused by an account check or the merchant's check hook.

    Retrying cannot change the answer, so the provider is acknowledged and nothing is dispatched.
    """


class InFlight(NotificationError):
    """Another delivery of the same event holds the claim; the provider should retry later."""


class DeliveryFailed(NotificationError):
    """A subscriber raised; the event is released so the provider's retry delivers it again."""


class StoreError(PaynotifyError):
    """The store is unreachable or returned something it should not have."""


class UnstorableContent(StoreError):
    """The event cannot be serialised for the store (e.g. text with a lone surrogate): no retry can
    store it, so the provider is told the notification is malformed."""


class ProviderApiError(PaynotifyError):
    """The provider answered a query with an error of its own (its code and message in the text),
    or with something that is not its API's format. Never raised for an answer that fails
    verification: that is a `VerificationError`, and it is never believed."""

    def __init__(self, message: str, *, account: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.account = account
        self.code = code


class ProviderUnavailable(ProviderApiError):
    """The provider's API could not be reached within the deadline (connection refused, timeout,
    a 5xx): a later attempt may succeed."""


class BillFormatError(PaynotifyError, ValueError):
    """A downloaded bill that is not in its provider's format (a malformed line, a summary that
    does not add up, a truncated file): nothing of it is believed.

    `line` is the 1-based line number in the provider's file (0 when the file as a whole is wrong).
    """

    def __init__(self, message: str, *, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
