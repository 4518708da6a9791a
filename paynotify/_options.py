"""How a Notifier delivers: frozen, checked once when made.

>>> options = Options(delivery="queued", backoff_seconds=5, max_attempts=4)
>>> [options.retry_delay(attempts) for attempts in (1, 2, 3, 4)]
[5.0, 10.0, 20.0, None]
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, TypedDict

from paynotify._errors import ConfigurationError

__all__ = ["DEFAULT_BODY_LIMIT", "Delivery", "OptionValues", "Options"]

DEFAULT_BODY_LIMIT = 64 * 1024
Delivery = Literal["inline", "queued"]


_NOT_NUMBERS = ("delivery", "dispatcher", "expectations", "sweeper", "reconcile", "reconcile_heal",
                "reconcile_after")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """`delivery="inline"` acknowledges a notification only after every subscriber succeeded (the
    provider's resends drive redelivery); `"queued"` records it durably, acknowledges at once and
    lets a dispatcher deliver it, retrying with exponential backoff from `backoff_seconds` up to
    `max_backoff_seconds`, dead-lettering after `max_attempts`. `dispatcher=False` leaves queued
    events to other processes (`paynotify worker`). Settled events are purged after
    `retention_days`, longer than any provider's retry window. `close_timeout` is how long
    closing waits for deliveries in progress before handing them back. A body larger than
    `body_limit` bytes is answered 413; one not received within `body_timeout` seconds, 408.
    A question to a provider's API (`Notifier.query`) gets `query_timeout` seconds in all, within
    which it is sent up to `query_attempts` times while the provider cannot be reached or answers 5xx.
    `expectations` lets `Notifier.expect` record awaited payments and refunds, and a delivered final
    state close them; `sweeper` asks the providers about those overdue, at most `sweep_rate` questions
    a second per account (None: in `paynotify serve` and `paynotify worker`, not in your own process).
    An expectation is first asked about `first_query_after` seconds after `expect` (a minute: its
    notification usually comes first; a second or less to see the sweeper at work locally).
    `reconcile` reconciles yesterday (Beijing) of every account with bills once a day, after
    `reconcile_after` ("HH:MM", Beijing), healing when `reconcile_heal`, each run within
    `reconcile_timeout` seconds (None: in serve and worker, as the sweeper; docs/reconciliation.md).
    """

    delivery: Delivery = "inline"
    body_limit: int = DEFAULT_BODY_LIMIT
    body_timeout: float = 10.0
    lease_seconds: float = 60.0
    max_attempts: int = 12
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    dispatcher: bool = True
    concurrency: int = 4
    retention_days: float = 30.0
    close_timeout: float = 10.0
    query_timeout: float = 5.0
    query_attempts: int = 3
    expectations: bool = True
    sweeper: bool | None = None
    sweep_rate: float = 1.0
    first_query_after: float = 60.0
    reconcile: bool | None = None
    reconcile_heal: bool = True
    reconcile_after: str = "10:30"
    reconcile_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.delivery not in ("inline", "queued"):
            raise ConfigurationError(f"delivery must be 'inline' or 'queued', not {self.delivery!r}")
        if not isinstance(self.dispatcher, bool):
            raise ConfigurationError(f"dispatcher must be true or false, not {self.dispatcher!r}")
        if not isinstance(self.expectations, bool) or self.sweeper not in (True, False, None):
            raise ConfigurationError("expectations and sweeper must be true or false")
        if self.reconcile not in (True, False, None) or not isinstance(self.reconcile_heal, bool):
            raise ConfigurationError("reconcile and reconcile_heal must be true or false")
        hours, _, minutes = str(self.reconcile_after).partition(":")
        if not (isinstance(self.reconcile_after, str) and hours.isdigit() and minutes.isdigit()
                and len(minutes) == 2 and int(hours) < 24 and int(minutes) < 60):  # fmt: skip
            raise ConfigurationError(
                f"reconcile_after must be a time like 10:30, not {self.reconcile_after!r}"
            )
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _NOT_NUMBERS:
                continue
            whole = field.type == "int"
            kinds = (int,) if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds):
                kind = "a whole number" if whole else "a number"
                raise ConfigurationError(f"{field.name} must be {kind}, not {value!r}")
            if not value > 0:  # also refuses NaN
                raise ConfigurationError(f"{field.name} must be positive, not {value!r}")

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds from a failed queued attempt to the next, after `attempts` attempts in all;
        None when the budget is spent and the event is dead-lettered.

        The first retry waits `backoff_seconds`, each later one twice as long, capped at
        `max_backoff_seconds`.
        """
        if attempts >= self.max_attempts:
            return None
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempts - 1)))


class OptionValues(TypedDict, total=False):
    """`Options`' fields as keyword arguments (`Notifier(store, **values)`), so mypy checks them."""

    delivery: Delivery
    body_limit: int
    body_timeout: float
    lease_seconds: float
    max_attempts: int
    backoff_seconds: float
    max_backoff_seconds: float
    dispatcher: bool
    concurrency: int
    retention_days: float
    close_timeout: float
    query_timeout: float
    query_attempts: int
    expectations: bool
    sweeper: bool | None
    sweep_rate: float
    first_query_after: float
    reconcile: bool | None
    reconcile_heal: bool
    reconcile_after: str
    reconcile_timeout: float
