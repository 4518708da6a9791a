"""The contract of a provider's outbound API client: ask the provider, believe only what verifies.

A provider that can be asked about an order (or a refund) returns a `ProviderApi` from
`Provider.api()`. Like `Provider.parse`, the client does no I/O of its own: it builds `ApiRequest`s,
hands them to the `Send` callable the core gives it (which owns the connection pool, the deadline
and the retries), and verifies each `ApiResponse` on its exact bytes before it reads a field. So a
third-party provider implements the same four methods, and tests drive a client with an emulator.

    class MyApi(ProviderApi[MySettings]):
        def can_query(self, account):
            return account.settings.private_key is not None

        async def query_payment(self, send, account, order_id, *, at=None):
            response = await send(ApiRequest("POST", url, headers, body))
            fields = verify(response.body, account.settings.public_key)  # VerificationError if not
            return QueryAnswer(result=to_result(fields, source=Source.QUERY), raw=fields)

The answer's `PaymentResult` carries `source="query"` and the same `event_id` a notification of
that state would carry, so a queried payment and a notified one are one event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from paynotify._errors import ProviderApiError
from paynotify._observe import Outcome
from paynotify._result import PaymentResult

if TYPE_CHECKING:
    from datetime import date

    from paynotify._bills import Bill, Download
    from paynotify._provider import Account, AccountSettings

__all__ = ["ApiRequest", "ApiResponse", "ProviderApi", "QueryAnswer", "Send", "Upkeep"]

SettingsT = TypeVar("SettingsT", bound="AccountSettings")


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request to a provider's API, exactly as it must be sent (signed already)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """The provider's answer: status, headers (names in lower case) and the exact body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


Send = Callable[[ApiRequest], Awaitable[ApiResponse]]
"""Sends one request within the core's deadline; raises `ProviderUnavailable` when it cannot."""


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """What the provider said about one order or refund, after its signature verified.

    `result` is None when the provider knows no such order (not, or not yet, created there).
    `raw` holds the verified fields the result was read from (never a secret). `outcome` is what
    `Notifier.query` did with the answer (`delivered`, `duplicate`, `queued`, `rejected_check`, ...,
    `not_found`); a provider's client leaves it None.
    """

    result: PaymentResult | None
    raw: Mapping[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None

    @property
    def found(self) -> bool:
        return self.result is not None


class Upkeep(Protocol):
    """What an account keeps running while the Notifier is open (`ProviderApi.upkeep`)."""

    def watch(self) -> None:
        """The account's settings were replaced (`update_account`): follow the new ones."""

    async def aclose(self) -> None:
        """Stop: the Notifier closes, or the account is gone."""


class ProviderApi(ABC, Generic[SettingsT]):
    """A provider's outbound API client. One instance serves every account of that provider."""

    @abstractmethod
    def can_query(self, account: Account[SettingsT]) -> bool:
        """Whether the account has what a query needs (the merchant's signing key, say)."""

    @abstractmethod
    async def query_payment(
        self, send: Send, account: Account[SettingsT], order_id: str, *, at: datetime | None = None
    ) -> QueryAnswer:
        """Ask for the payment of the merchant's order `order_id` (`at`: when it was made, for a
        provider whose query needs the original time, UnionPay).

        Raises `VerificationError` when the answer does not verify, `ProviderApiError` when the
        provider answers with an error of its own, `ProviderUnavailable` when it cannot be reached.
        """

    @abstractmethod
    async def query_refund(
        self,
        send: Send,
        account: Account[SettingsT],
        refund_id: str,
        *,
        order_id: str | None = None,
        at: datetime | None = None,
    ) -> QueryAnswer:
        """Ask for the merchant's refund request `refund_id` (of order `order_id`, for a provider
        whose refund query needs it, Alipay). Raises as `query_payment`."""

    def needs_confirmation(self, account: Account[SettingsT], result: PaymentResult) -> bool:
        """Whether `result`, read from a notification, must be confirmed by asking the provider
        before it is believed: its notification is not authenticated on its own (WeChat Pay v2
        refunds). Called on every notification, so cheap and synchronous; False by default."""
        return False

    async def confirm(self, send: Send, account: Account[SettingsT], result: PaymentResult) -> str | None:
        """Ask the provider about the notified `result` (only when `needs_confirmation`): None when
        its answer states the same, else why not (the event is recorded `rejected` with that
        reason, never delivered). Raises as `query_payment` when there is no verified answer."""
        return None

    async def upkeep(self, send: Send, account: Callable[[], Account[SettingsT]]) -> Upkeep | None:
        """Start what the account needs kept current while the Notifier is open (WeChat Pay v3: its
        platform certificates, downloaded at start and again on an unknown serial); None when
        nothing (the default). `account` returns the account as it is now. Bounded by `send`'s
        deadline, and never raising for a provider that cannot be reached: it logs and serves."""
        return None

    def can_fetch_bills(self, account: Account[SettingsT]) -> bool:
        """Whether the account can download its daily bills (`fetch_bill`); False by default."""
        return False

    async def fetch_bill(
        self, send: Send, download: Download, account: Account[SettingsT], day: date
    ) -> Bill:
        """Fetch the trade bill (payments and refunds) of `day`, a Beijing calendar date: the signed
        answers through `send`, verified like a query's; the file through `download`. Raises as
        `query_payment`, and `ProviderApiError` when the provider offers no bill for that day (not
        published yet, or no trade: say which in the message). See `paynotify._bills`."""
        raise ProviderApiError(f"{type(self).__name__} offers no bills")
