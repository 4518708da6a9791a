"""The one typed event every provider's notification becomes."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "BEIJING",
    "Kind",
    "PaymentResult",
    "Source",
    "Status",
    "UnhandledEvent",
    "beijing_time",
    "make_event_id",
]

# China has used UTC+8 without daylight saving since 1991; a fixed offset avoids needing tzdata.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


class Kind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    TRANSFER = "transfer"
    """Money the merchant sent (WeChat Pay merchant transfers, 商家转账): `amount` is what was sent,
    `order_id` the merchant's bill number, `payer_id` the receiving user."""


class Status(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    CLOSED = "closed"
    FAILED = "failed"


class Source(StrEnum):
    NOTIFY = "notify"
    RETURN = "return"
    QUERY = "query"


def make_event_id(account: str, kind: Kind | str, *parts: str | None) -> str:
    """Identify one state transition, the same for every retry of it.

    `parts` are the provider's trade number, refund request number and raw status; `None` stands
    for a part the notification does not carry.
    """
    # A Kind is a str whose text is its value: join reads it as it is.
    text = "\x1f".join([account, kind, *[p or "" for p in parts]])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PaymentResult(BaseModel):
    """A verified payment, refund or transfer notification, the same shape for every provider.

    >>> result.kind, result.status, result.amount          # doctest: +SKIP
    (<Kind.PAYMENT: 'payment'>, <Status.SUCCEEDED: 'succeeded'>, Decimal('88.88'))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    account: str
    kind: Kind
    status: Status
    provider_status: str
    order_id: str
    transaction_id: str | None = None
    refund_id: str | None = None
    provider_refund_id: str | None = None
    amount: Decimal | None = None
    currency: str = "CNY"
    refund_amount: Decimal | None = None
    paid_at: AwareDatetime | None = None
    refunded_at: AwareDatetime | None = None
    payer_id: str | None = None
    app_id: str | None = None
    merchant_id: str | None = None
    source: Source = Source.NOTIFY
    event_id: str
    key_id: str | None = None
    """Which configured key verified the notification (a key id, certificate serial or public key
    id): logged with every delivery so an operator can tell when an old key may be retired."""
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def is_paid(self) -> bool:
        """True for a payment that succeeded, as the provider itself said (its notification, or its
        signed answer to a query): the only state in which to fulfil an order. Never for a return,
        which the buyer's browser brings."""
        paid = self.kind is Kind.PAYMENT and self.status is Status.SUCCEEDED
        return paid and self.source is not Source.RETURN


class UnhandledEvent(BaseModel):
    """A verified notification of a type no `PaymentResult` describes (e.g. a new WeChat v3 event type).

    It is acknowledged, logged and offered to `Notifier.on_unhandled` hooks; never to subscribers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    account: str
    event_type: str
    event_id: str
    key_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


# The formats providers send, zero-padded as they send them: read without strptime, which costs
# more than the rest of a notification's normalization. Anything else goes to strptime.
_FAST_FORMATS = {
    "%Y-%m-%d %H:%M:%S": re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)()"),
    "%Y-%m-%d %H:%M:%S.%f": re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{1,6})"),
    "%Y%m%d%H%M%S": re.compile(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)()"),
}


def beijing_time(text: str, fmt: str) -> datetime:
    """Parse a provider's Beijing wall-clock time into an aware datetime (ValueError if it is not one).

    >>> beijing_time("2015-04-28 15:45:57", "%Y-%m-%d %H:%M:%S").isoformat()
    '2015-04-28T15:45:57+08:00'
    """
    pattern = _FAST_FORMATS.get(fmt)
    match = pattern.fullmatch(text) if pattern is not None else None
    if match is None:
        return datetime.strptime(text, fmt).replace(tzinfo=BEIJING)
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, BEIJING)
